"""The isolated set-up every benchmark shares, taken down at the end, and the machine it ran on.

Isolation: a RabbitMQ vhost of each run's own (`shop_jobs_bench_<random>`, created empty and
deleted at the end; BENCH_RABBITMQ_VHOST names one), an SQLite database in a temporary folder
(migrated by `manage.py migrate` in a subprocess) and SMTP sinks on free ports. The demo's
queues, database and outbox are never touched.
"""

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

from bench.broker import wait_for_broker
from bench.environment import BROKER_URL, MANAGEMENT_API, VHOST, Environment
from bench.processes import stop_everything
from bench.stats import say
from testkit import rabbitmq
from testkit.processes import ROOT


def set_up():
    """Empty vhost, migrated database, Django set up in this process; returns the Environment.

    This process plays the publisher (the web process of the throughput and priority
    benchmarks), so it gets the same settings as the processes it starts.
    """
    folder = Path(tempfile.mkdtemp(prefix="shop-jobs-bench-"))
    wait_for_broker()
    rabbitmq.ManagementAPI(BROKER_URL, MANAGEMENT_API).recreate_vhost(VHOST)
    env = Environment(
        dir=folder,
        broker_url=rabbitmq.with_vhost(BROKER_URL, VHOST),
        database_url=f"sqlite:///{folder / 'bench.sqlite3'}",
    )
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=env.database_url,
        CELERY_BROKER_URL=env.broker_url,
        VAR_DIR=str(folder),
        MEDIA_ROOT=str(folder / "media"),
        STATIC_ROOT=str(folder / "static"),
        # Production-like: DEBUG off (no query log in web or workers), plain HTTP on loopback.
        DEBUG="false",
        SECRET_KEY="benchmark-only-secret-key-" + "x" * 40,
        SECURE_SSL_REDIRECT="false",
        LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "INFO"),
    )
    # With DEBUG off, as a deployment does; side by side, they touch different things.
    commands = [
        subprocess.Popen([sys.executable, "manage.py", command, "--noinput", "-v", "0"], cwd=ROOT)
        for command in ("migrate", "collectstatic")
    ]
    for command in commands:
        if command.wait() != 0:
            raise subprocess.CalledProcessError(command.returncode, command.args)
    import django

    django.setup()
    from config import queues
    from config.celery import app

    with app.connection_for_write() as connection:
        queues.declare_topology(connection)
    return env


def tear_down(env):
    """Close this process's broker connections; remove the folder unless BENCH_KEEP is set."""
    from config.celery import app

    stop_everything()
    app.pool.force_close_all()
    try:  # nothing left behind can reconnect to the benchmark's queues
        api = rabbitmq.ManagementAPI(BROKER_URL, MANAGEMENT_API)
        api.call("DELETE", f"/vhosts/{urllib.parse.quote(VHOST, safe='')}")
    except OSError as exc:
        say(f"could not delete the vhost {VHOST}: {exc!r}")
    if os.environ.get("BENCH_KEEP"):
        say(f"kept {env.dir} (BENCH_KEEP)")
    else:
        shutil.rmtree(env.dir, ignore_errors=True)


def machine():
    import celery
    import django
    import gunicorn
    import kombu

    api = rabbitmq.ManagementAPI(BROKER_URL, MANAGEMENT_API)
    return {
        "cores": os.cpu_count(),
        "rabbitmq": api.call("GET", "/overview").get("rabbitmq_version"),
        "celery": celery.__version__,
        "kombu": kombu.__version__,
        "django": django.__version__,
        "gunicorn": gunicorn.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }

"""The real processes a benchmark starts (workers, SMTP sinks, gunicorn), and their stopping.

The processes are the ones the tests start (testkit/processes.py), run from this checkout with
environment variables, as in production: DEBUG off. Also the alternatives to our worker
configuration that ALT=1 measures beside it (WORKER_VARIANTS).
"""

import atexit
import json
import sys
import urllib.request
from contextlib import contextmanager

from bench.broker import retry_on_broker_drop
from bench.environment import ALT
from testkit.faults import free_port
from testkit.processes import ServiceProcess, SmtpSink, Worker, wait_for

# Every process a benchmark starts, recorded the moment it is spawned: whatever goes wrong
# afterwards, stop_everything() (called by the runner, and at exit) leaves none behind.
STARTED = []


def spawned(process):
    STARTED.append(process)
    return process


def stop_everything():
    stop_all([p for p in STARTED if p.proc is not None])
    STARTED.clear()


atexit.register(stop_everything)


@contextmanager
def running():
    """Every process started inside the block is stopped when the block ends, however it ends."""
    first = len(STARTED)
    try:
        yield
    finally:
        stop_all(STARTED[first:])
        del STARTED[first:]


# Alternatives to our worker configuration, measured beside it with ALT=1 (config/ is not
# changed by a benchmark): settings overridden through bench/settings_variant.py. Task events
# on is what our workers do while Flower watches them (it turns them on).
WORKER_VARIANTS = {
    "alt: task events on": {"CELERY_WORKER_SEND_TASK_EVENTS": True},
    "alt: prefetch 2": {"CELERY_WORKER_PREFETCH_MULTIPLIER": 2},
    "alt: prefetch 4": {"CELERY_WORKER_PREFETCH_MULTIPLIER": 4},
}
if not ALT:
    WORKER_VARIANTS = {}


def variant_env(overrides):
    """Environment for a process running config.settings with `overrides`."""
    return {
        "DJANGO_SETTINGS_MODULE": "bench.settings_variant",
        "BENCH_SETTINGS": json.dumps(overrides),
    }


def worker_sides():
    """Our worker and each alternative of WORKER_VARIANTS: {label: start_worker options}."""
    return {"ours": {}, **{label: variant_env(o) for label, o in WORKER_VARIANTS.items()}}


def start_worker(
    env, name, *, app_module="config", queues=("emails",), concurrency=2, args=(), wait=True,
    **extra,
):  # fmt: skip
    """A real `celery -A <app_module> worker`, like the tests' but for any app module.

    `args` are more command-line options (e.g. the Procfile's); `extra` goes into the worker's
    environment (e.g. a variant's settings). With wait=False it is only spawned: wait_ready()
    it, with others started beside it (on 2 cores, starting them side by side is faster).
    """
    worker = Worker(
        env.app,
        queues,
        env=env.service_env(**extra),
        log_path=env.log(name),
        concurrency=concurrency,
    )
    worker.args[worker.args.index("config")] = app_module
    worker.args += list(args)
    spawned(worker).start(wait=False)
    if wait:
        wait_ready(worker)
    return worker


def wait_ready(*processes):
    """Wait until every one of `processes` (workers, gunicorns) answers."""
    for process in processes:
        retry_on_broker_drop(process.wait_ready)


def start_email_workers(env, name, sides, envs=None):
    """An SMTP sink, and a worker per side ({label: start_worker options}) that sends to it.

    `envs` ({label: Environment}) runs a side's worker on a broker of its own (broker_side());
    the others run in `env`. Returns (sink, {label: worker}); stopped at the end of the
    `running()` block around it.
    """
    envs = envs or {}
    sink = start_sink(env, f"{name}-sink")
    workers = {
        label: start_worker(
            envs.get(label, env), f"{name}-{n}", EMAIL_PORT=sink.port, wait=False, **options
        )
        for n, (label, options) in enumerate(sides.items())
    }
    wait_ready(*workers.values())
    return sink, workers


def start_sink(env, name="smtp-sink", latency=0.0):
    sink = spawned(
        SmtpSink(
            port=free_port(),
            maildir=env.dir / name,
            control=env.dir / f"{name}.json",
            # The sink is the demo's stand-in for a mail provider: its command is in demo/,
            # which DEBUG off leaves out unless asked for, as compose's smtp-sink does.
            env=env.service_env(DEMO="1"),
            log_path=env.log(name),
        )
    ).start()
    if latency:
        # The command line sets latency 0 at start; the sink reads its knobs for every message.
        sink.set(latency=latency)
    return sink


class Gunicorn(ServiceProcess):
    """The shop served by gunicorn (sync workers), with the settings module given."""

    name = "gunicorn"

    def __init__(self, env, name, settings_module="config.settings", workers=1, **extra):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [
            sys.executable, "-m", "gunicorn", "config.wsgi:application",
            "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
            "--log-level", "warning",
        ]  # fmt: skip
        super().__init__(
            args,
            env.service_env(DJANGO_SETTINGS_MODULE=settings_module, **extra),
            env.log(name),
        )

    def start(self, wait=True):
        spawned(self)
        super().start()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self):
        def answers():
            self.assert_running()
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_for(answers, 60, interval=0.2, message=f"gunicorn on port {self.port}")


def stop_all(processes):
    for process in reversed(processes):
        if process.proc is not None and not process._log.closed:
            process.stop()

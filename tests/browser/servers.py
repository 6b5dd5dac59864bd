"""The processes a browser talks to: the shop's web server (Flower is in testkit/processes.py), run
as the demo runs them.

The shop is served by `manage.py runserver --noreload`, the Procfile's `web` line, in a process
of its own pointed at the test database, like the workers: not by pytest-django's live_server,
a thread of the test process. The pages are then served as the demo serves them. live_server
would run under the test process's settings, where pytest-django turns DEBUG off (no /mailbox/)
and Django's test server serves the media files itself, so a shop that stopped serving its
pictures would still pass; and its database connections would live in the process whose
flushes empty the tables between tests.
"""

import sys
import urllib.parse
from contextlib import contextmanager

from config.celery import app as celery_app
from jobs import pause
from jobs.dashboard import queue_counts
from testkit.processes import ServiceProcess, http_get, wait_for


def database_url(settings_dict):
    """A DATABASE_URL for other processes, from a connection's settings (the test database)."""
    s = settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    user = urllib.parse.quote(s["USER"] or "")
    password = urllib.parse.quote(s["PASSWORD"] or "")
    credentials = f"{user}:{password}@" if user else ""
    return f"postgres://{credentials}{s['HOST'] or 'localhost'}:{s['PORT'] or 5432}/{s['NAME']}"


class WebServer(ServiceProcess):
    name = "web server"

    def __init__(self, port, env, log_path):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        args = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
        super().__init__(args, env, log_path)

    def wait_ready(self, timeout=60):
        def answers():
            self.assert_running()
            return http_get(self.url + "/healthz", timeout=2)[0] == 200

        wait_for(answers, timeout, interval=0.2, message="the web server to answer /healthz")


@contextmanager
def consumer_paused(worker, queue):
    """Pause `queue` for the block, as staff do from the dashboard (jobs/pause.py): `worker`
    stops taking its messages, which wait in the queue, so that a page can be looked at while
    its job is still queued.

    Not Celery's bare cancel_consumer: the shop's workers put a consumer cancelled behind
    their back again within JOBS_PAUSE_SYNC_SECONDS, while a pause holds.
    """
    pause.pause(celery_app, queue, by="a browser test")
    wait_for(lambda: _consumers(queue) == 0, message=f"{worker.nodename} to leave {queue}")
    try:
        yield
    finally:
        pause.resume(celery_app, queue, by="a browser test")
        wait_for(lambda: _consumers(queue) > 0, message=f"{worker.nodename} to consume {queue}")


def _consumers(queue):
    return queue_counts([queue])[queue][1]

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
    """Stop `worker` taking messages from `queue` for the block; they wait in the queue.

    Celery's remote control (cancel_consumer / add_consumer) does it without restarting the
    worker, so a page can be looked at while its job is still queued.
    """
    _control(celery_app.control.cancel_consumer, worker, queue)
    try:
        yield
    finally:
        _control(celery_app.control.add_consumer, worker, queue)


def _control(command, worker, queue):
    replies = command(queue, destination=[worker.nodename], reply=True, timeout=5)
    answer = next((r[worker.nodename] for r in replies if worker.nodename in r), None)
    assert answer and "ok" in answer, f"{command.__name__}({queue!r}) answered {replies!r}"

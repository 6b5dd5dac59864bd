"""The processes a browser talks to: the shop's web server and Flower, run as the demo runs them.

The shop is served by `manage.py runserver --noreload`, the Procfile's `web` line, in a process
of its own pointed at the test database, like the workers: not by pytest-django's live_server,
a thread of the test process. The pages are then served as the demo serves them. live_server
would run under the test process's settings, where pytest-django turns DEBUG off (no /outbox/)
and Django's test server serves the media files itself, so a shop that stopped serving its
pictures would still pass; and its database connections would live in the process whose
flushes empty the tables between tests.
"""

import base64
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager

from config.celery import app as celery_app
from tests.processes import ServiceProcess, wait_for


def database_url(settings_dict):
    """A DATABASE_URL for other processes, from a connection's settings (the test database)."""
    s = settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    user = urllib.parse.quote(s["USER"] or "")
    password = urllib.parse.quote(s["PASSWORD"] or "")
    credentials = f"{user}:{password}@" if user else ""
    return f"postgres://{credentials}{s['HOST'] or 'localhost'}:{s['PORT'] or 5432}/{s['NAME']}"


def http_get(url, user=None, password=None, timeout=5):
    """(status, body) of a GET; status None when nothing answers."""
    request = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return None, b""


class WebServer(ServiceProcess):
    name = "web server"

    def __init__(self, port, env, log_path):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        args = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
        super().__init__(args, env, log_path)

    def start(self, timeout=60):
        super().start()

        def answers():
            self.assert_running()
            return http_get(self.url + "/healthz", timeout=2)[0] == 200

        wait_for(answers, timeout, interval=0.2, message="the web server to answer /healthz")
        return self


class Flower(ServiceProcess):
    """Flower behind basic auth, started as the Procfile starts it."""

    name = "flower"

    def __init__(self, port, env, log_path, user="watcher", password="flower-test-password"):
        self.port, self.user, self.password = port, user, password
        self.url = f"http://127.0.0.1:{port}"
        args = [
            sys.executable, "-m", "celery", "-A", "config", "flower",
            "--address=127.0.0.1", f"--port={port}", f"--basic-auth={user}:{password}",
        ]  # fmt: skip
        super().__init__(args, env, log_path)

    def start(self, timeout=60):
        super().start()

        def answers():
            self.assert_running()
            return http_get(self.url + "/healthcheck", timeout=2)[0] == 200  # no login needed

        wait_for(answers, timeout, interval=0.2, message="Flower to answer /healthcheck")
        return self

    def api(self, path):
        status, body = http_get(self.url + path, self.user, self.password)
        return json.loads(body) if status == 200 else None

    def wait_until_it_hears_from(self, worker, timeout=60):
        """Wait until Flower has had an event (a heartbeat) from `worker`.

        Flower lists only the tasks whose events it received, and it receives nothing from
        before its event consumer started: once a worker's heartbeat has come in, the next
        task's events will too.
        """

        def heard():
            self.assert_running()
            return (self.api("/api/workers?status=1") or {}).get(worker.nodename)

        wait_for(heard, timeout, interval=0.5, message=f"Flower to hear from {worker.nodename}")


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

"""The real processes the integration tests run: Celery workers, celery beat, the SMTP sink, Flower.

Each runs from this checkout with the same settings module as the demo, pointed by
environment variables at the test database, the test vhost and the test's SMTP port.
"""

import base64
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# Every wait's limit is multiplied by this: a timeout here only bounds a hang, and a machine
# running two test runs side by side (scripts/run-tests.sh) is slower than one running one.
TIMEOUT_SCALE = float(os.environ.get("TEST_TIMEOUT_SCALE", "1"))


def wait_for(predicate, timeout=30.0, interval=0.1, message="condition"):
    """Poll `predicate` until it returns something truthy; return that, or fail the test."""
    timeout *= TIMEOUT_SCALE
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def http_get(url, user=None, password=None, timeout=5):
    """(status, body) of a GET, with basic auth if `user` is given; status None when nothing
    answers."""
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


class ServiceProcess:
    name = "process"

    def __init__(self, args, env, log_path):
        self.args = args
        self.env = env
        self.log_path = Path(log_path)
        self.proc = None

    def start(self, wait=True):
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches its children
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self):
        """Return once the process can do its work; a subclass says how to tell."""

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def assert_running(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")

    def stop(self, timeout=20):
        """Warm shutdown (SIGTERM), then SIGKILL for whatever is left of the group."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self):
        """SIGKILL the whole process group at once.

        For the end of a test: a Celery worker's warm shutdown takes over 3 s even when it is
        idle, and what it would finish no longer matters (the next test purges the queues).
        """
        if self.proc:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
            if not self._log.closed:
                self._log.close()


class ListeningProcess(ServiceProcess):
    """A server on a TCP port of this machine: ready once it accepts connections there."""

    port = None

    def wait_ready(self, timeout=30):
        def listening():
            self.assert_running()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                return False
            return True

        wait_for(listening, timeout, message=f"the {self.name} to listen")


class Worker(ServiceProcess):
    name = "worker"

    def __init__(self, app, queues, env, log_path, concurrency=2, task_events=False, options=()):
        """`options`: more command-line options, which win over the ones above (the Procfile's
        for a process: shipped_worker_options)."""
        self.app = app
        self.nodename = f"test-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        args = [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "--queues", ",".join(queues),
            "--concurrency", str(concurrency),
            "--hostname", self.nodename,
            "--loglevel", "INFO",
            "--without-mingle", "--without-gossip",
            *(["--task-events"] if task_events else []),
            *options,
        ]  # fmt: skip
        super().__init__(args, env, log_path)

    def wait_ready(self, timeout=60):
        def answers():
            self.assert_running()
            return self.app.control.ping(destination=[self.nodename], timeout=0.5)

        wait_for(answers, timeout, message=f"worker {self.nodename} to answer ping")

    def sends_task_events(self):
        """True once the worker sends task events: started with them, or told to by Flower."""
        log = self.log()
        return "task events: ON" in log or "Events of group {task} enabled by remote" in log

    def is_idle(self):
        """True when the worker runs, holds and schedules nothing (ETA retries included)."""
        inspect = self.app.control.inspect([self.nodename], timeout=1)
        for held in (inspect.active(), inspect.reserved(), inspect.scheduled()):
            if held is None or held.get(self.nodename):
                return False
        return True


class Beat(ServiceProcess):
    name = "beat"

    def __init__(self, env, log_path, pidfile):
        args = [
            sys.executable, "-m", "celery", "-A", "config", "beat",
            "--loglevel", "INFO", "--pidfile", str(pidfile),
        ]  # fmt: skip
        super().__init__(args, env, log_path)


class SmtpSink(ListeningProcess):
    name = "SMTP sink"

    def __init__(self, port, maildir, control, env, log_path):
        self.port = port
        self.maildir = Path(maildir)
        self.control = Path(control)
        args = [
            sys.executable, "manage.py", "smtp_sink", "--port", str(port),
            "--maildir", str(maildir), "--control", str(control),
        ]  # fmt: skip
        super().__init__(args, env, log_path)

    def messages(self):
        from demo.maildir import list_messages

        return list_messages(self.maildir)

    def count(self):
        """How many messages it holds, without reading them."""
        from demo.maildir import message_keys

        return len(message_keys(self.maildir))

    def set(self, **knobs):
        from demo.smtp_sink import update_controls

        update_controls(self.control, **knobs)


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

    def wait_ready(self, timeout=60):
        def answers():
            self.assert_running()
            return self.get("/healthcheck", auth=False, timeout=2)[0] == 200  # no login needed

        wait_for(answers, timeout, interval=0.2, message="Flower to answer /healthcheck")

    def get(self, path, auth=True, timeout=5):
        """(status, body) of a GET of `path`, logged in unless `auth` is false."""
        if auth:
            return http_get(self.url + path, self.user, self.password, timeout=timeout)
        return http_get(self.url + path, timeout=timeout)

    def api(self, path):
        status, body = self.get(path)
        return json.loads(body) if status == 200 else None

    def wait_until_it_hears_from(self, worker, timeout=60):
        """Wait until Flower has heard from `worker` and turned its task events on.

        Flower lists only the tasks whose events it received. It receives nothing from before
        its event consumer started, and a worker sends no task events until Flower's
        `enable_events` (every 5 s) reaches it (they are off in config/settings.py). Once a
        heartbeat has come in and the worker has said so, the next task's events will come.
        """

        def heard():
            self.assert_running()
            workers = self.api("/api/workers?status=1") or {}
            return workers.get(worker.nodename) and worker.sends_task_events()

        wait_for(heard, timeout, interval=0.5, message=f"Flower to hear from {worker.nodename}")


# What a worker's command line says about where it runs, not how: each test and benchmark
# sets these itself.
NOT_SHIPPED = {"--queues", "-Q", "--hostname", "-n", "--loglevel", "-l"}


def shipped_worker_options(process):
    """The options of the Procfile's `process` (`worker-emails`, say) that shape the worker:
    its pool, concurrency and limits, so a test or a benchmark runs the worker as shipped."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            args = shlex.split(command)
            args = args[args.index("worker") + 1 :]
            options = []
            while args:
                option = args.pop(0)
                value = [args.pop(0)] if args and not args[0].startswith("-") else []
                if option not in NOT_SHIPPED:
                    options += [option, *value]
            return options
    raise KeyError(f"no {process} in the Procfile")

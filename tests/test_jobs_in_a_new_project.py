"""`jobs/` copied into a brand-new Django project, following docs/use-jobs-in-your-project.md.

The steps are read from that page, not repeated here: every `# path` code block is written
into a project made with `django-admin startproject`, and its console commands are run. Only
where things run is the test's own: an empty vhost of its own, and a mail server on a free
port that it starts when it wants the mail server back. Then, through a real worker:

- a job asked for in a transaction is published once the transaction commits, and one asked
  for in a transaction rolled back is neither written nor published;
- while the mail server is down it is retried (a TransientError), and once the server is back
  it is done, and the email went out once;
- a job that cannot succeed (a PermanentError) fails at once and is parked in `default.dead`,
  where `manage.py deadletters list` shows it with its reason.
"""

import os
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message

from testkit import rabbitmq
from testkit.processes import ROOT, wait_for
from tests.conftest import BROKER_URL, MANAGEMENT_API, TEST_VHOST

DOCS_PAGE = ROOT / "docs" / "use-jobs-in-your-project.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def steps(page):
    """[(path, text)] of the page's `# path` Python blocks, and its console commands."""
    files, commands = [], []
    for language, body in BLOCK.findall(page.read_text()):
        if language == "python":
            first, _, rest = body.partition("\n")
            assert first.startswith("# ") and first.endswith(".py"), (
                f"a block without a path: {body}"
            )
            files.append((first[2:], rest))
        elif language == "console":
            commands += [line[2:] for line in body.splitlines() if line.startswith("$ ")]
    return files, commands


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Mailbox(Message):
    def __init__(self):
        super().__init__()
        self.messages = []

    def handle_message(self, message):
        self.messages.append(message)


@pytest.fixture
def project(tmp_path):
    """A new project with jobs/ copied in and the page's steps applied; its environment."""
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite", str(tmp_path)], check=True
    )
    shutil.copytree(ROOT / "jobs", tmp_path / "jobs", ignore=shutil.ignore_patterns("__pycache__"))
    files, commands = steps(DOCS_PAGE)
    for path, text in files:
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a") as out:  # settings.py is added to; new files are created
            out.write("\n" + text)
    vhost = f"{TEST_VHOST}_new_project"
    api = rabbitmq.ManagementAPI(BROKER_URL, MANAGEMENT_API)
    api.recreate_vhost(vhost)
    mail_port = free_port()
    # The mail server's port is the test's: a settings module of its own on top of the page's.
    (tmp_path / "mysite" / "test_settings.py").write_text(
        f"from mysite.settings import *  # noqa\nEMAIL_PORT = {mail_port}\n"
    )
    env = {
        # Only the new project on the path: it must not import anything of this one.
        **{
            k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")
        },
        "CELERY_BROKER_URL": rabbitmq.with_vhost(BROKER_URL, vhost),
        "DJANGO_SETTINGS_MODULE": "mysite.test_settings",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    try:
        yield tmp_path, commands, env, mail_port
    finally:
        api.delete_vhost(vhost)


def run(command, cwd, env):
    args = shlex.split(command)
    if args[0] == "python":
        args[0] = sys.executable
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def job_count(directory):
    with sqlite3.connect(directory / "db.sqlite3") as db:
        return db.execute("SELECT COUNT(*) FROM jobs_job").fetchone()[0]


def job_row(directory, username):
    """(state, attempts, last_error) of the welcome job of `username`'s user."""
    with sqlite3.connect(directory / "db.sqlite3") as db:
        return db.execute(
            "SELECT state, attempts, last_error FROM jobs_job JOIN auth_user"
            " ON key = 'welcome:' || auth_user.id WHERE username = ?",
            (username,),
        ).fetchone()


def test_a_new_project_runs_jobs_as_the_docs_page_says(project):
    directory, commands, env, mail_port = project
    assert commands[0].startswith("pip install")  # what this checkout has installed already
    migrate, worker_command, list_dead_letters = commands[1:]

    migrated = run(migrate, directory, env)
    assert migrated.returncode == 0, migrated.stderr
    worker = subprocess.Popen(
        [*shlex.split(worker_command), "--pool", "solo", "--hostname", "new-project@%h"],
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    mailbox = Mailbox()
    server = Controller(mailbox, hostname="127.0.0.1", port=mail_port)
    try:
        # A sign-up rolled back asks for nothing: the job is written with the user, or not at all.
        shell(
            directory,
            env,
            "from django.db import transaction\n"
            "with transaction.atomic():\n"
            "    sign_up('eve', 'eve@example.com')\n"
            "    transaction.set_rollback(True)",
        )
        assert job_count(directory) == 0

        # With the mail server down, the welcome email is retried.
        shell(directory, env, "sign_up('ada', 'ada@example.com')")
        retrying = wait_for(
            lambda: (row := job_row(directory, "ada")) and row[0] == "retrying" and row,
            timeout=60,
            message="the job retrying while the mail server is down",
        )
        assert "the mail server did not take it" in retrying[2]
        assert mailbox.messages == []

        server.start()
        done = wait_for(
            lambda: (row := job_row(directory, "ada")) and row[0] == "succeeded" and row,
            timeout=60,
            message="the job done once the mail server is back",
        )
        assert done[1] >= 2
        assert [m["To"] for m in mailbox.messages] == ["ada@example.com"]

        # No email address: no retry helps; the job fails at once and is parked.
        shell(directory, env, "sign_up('bob', '')")
        failed = wait_for(
            lambda: (row := job_row(directory, "bob")) and row[0] == "failed" and row,
            timeout=60,
            message="the job failed for good",
        )
        assert failed[1] == 1 and "has no email address" in failed[2]
        listed = wait_for(
            lambda: (
                "greetings.send_welcome" in (out := run(list_dead_letters, directory, env).stdout)
                and out
            ),
            timeout=30,
            message="the dead letter listed",
        )
        assert "default.dead: 1 message(s)" in listed
        assert "has no email address" in listed
        assert [m["To"] for m in mailbox.messages] == ["ada@example.com"]  # nothing for eve
        assert job_count(directory) == 2
    finally:
        if server.loop.is_running():
            server.stop()
        os.killpg(worker.pid, signal.SIGTERM)
        print(worker.communicate(timeout=30)[0])  # shown if the test failed


def shell(directory, env, statements):
    script = f"from greetings.services import sign_up\n{statements}"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr

"""Fixtures for tests on the real thing: RabbitMQ, worker processes, beat, an SMTP server.

Isolation: the tests use a vhost of their own (TEST_RABBITMQ_VHOST, recreated empty at the
start of the run), a test database and SMTP sinks on free ports, so they never touch the
demo's queues, database or outbox.
"""

import os
import urllib.parse
import uuid

import pytest
from django.db import connection

from config import queues
from config.celery import app as celery_app
from testkit import rabbitmq
from testkit.faults import TcpProxy, free_port
from testkit.processes import Beat, SmtpSink, Worker

BROKER_URL = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
TEST_VHOST = os.environ.get("TEST_RABBITMQ_VHOST", "shop_jobs_test")
MANAGEMENT_API = os.environ.get("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672/api")
TEST_BROKER_URL = rabbitmq.with_vhost(BROKER_URL, TEST_VHOST)


def use_broker(url):
    """Point this process's Celery app at `url`.

    Celery reads the CELERY_BROKER_URL environment variable before its own configuration,
    so setting app.conf.broker_url alone is not enough when the variable is set.
    """
    os.environ["CELERY_BROKER_URL"] = url
    celery_app.conf.broker_url = url
    assert celery_app.connection_for_write().as_uri(include_password=True) == url


# Whatever the test process publishes goes to the test vhost, never to the demo's.
use_broker(TEST_BROKER_URL)


class Broker:
    """The test vhost, reached directly (`url`) or through a proxy that can cut it off."""

    def __init__(self, url, proxy):
        self.url = url
        self.proxy = proxy
        parts = urllib.parse.urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        self.proxied_url = urllib.parse.urlunsplit(
            parts._replace(netloc=f"{userinfo}@127.0.0.1:{proxy.port}")
        )

    def depth(self, queue):
        return rabbitmq.queue_depth(self.url, queue)

    def peek(self, queue, limit=100):
        return rabbitmq.peek(self.url, queue, limit)

    def purge_all(self):
        names = [q.name for q in queues.TASK_QUEUES + queues.DEAD_LETTER_QUEUES]
        # On quorum queues a retry waits in Celery's delay queues, declared by the first worker:
        # one left by the last test would land in this test's queues when it is due.
        delayed = [f"celery_delayed_{level}" for level in range(28)] if queues.QUORUM else []
        rabbitmq.purge(self.url, names + delayed, missing_ok=delayed)


@pytest.fixture(autouse=True)
def fresh_outbox(monkeypatch):
    """Each test starts with the outbox's circuit breaker closed, whatever the last one did,
    and outside any web request (one whose streamed response a test never read to the end
    would otherwise keep the jobs of the next test waiting for its end)."""
    from jobs import outbox

    monkeypatch.setattr(outbox, "_broker_failed_until", 0.0)
    outbox._this_request.waiting = None


@pytest.fixture(autouse=True)
def no_held_mail_connection():
    """Each test opens its own connection to the mail server: the one this thread keeps
    between emails (notifications/emails.py) may point at the last test's sink, or be its fake."""
    from notifications import emails

    emails.close_mail_connection()
    yield
    emails.close_mail_connection()


@pytest.fixture(scope="session")
def rabbitmq_vhost():
    api = rabbitmq.ManagementAPI(BROKER_URL, MANAGEMENT_API)
    try:
        api.recreate_vhost(TEST_VHOST)
    except OSError as exc:
        pytest.fail(
            f"RabbitMQ's management API does not answer at {MANAGEMENT_API} ({exc}). "
            "`make test` starts RabbitMQ and enables the management plugin.",
            pytrace=False,
        )
    parts = urllib.parse.urlsplit(TEST_BROKER_URL)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672).start()
    broker = Broker(TEST_BROKER_URL, proxy)
    # The test process plays the web server: it reaches the broker through the proxy, so a
    # test can take the broker away from the shop and give it back.
    use_broker(broker.proxied_url)
    with celery_app.connection_for_write() as conn:
        queues.declare_topology(conn)
    yield broker
    celery_app.pool.force_close_all()
    proxy.stop()
    # Whatever the run's outcome: a leftover test vhost would show in Flower and the
    # management UI of whoever runs the suite.
    api.delete_vhost(TEST_VHOST)


@pytest.fixture
def broker(rabbitmq_vhost):
    """The test vhost with every work and dead-letter queue empty."""
    if rabbitmq_vhost.proxy._server is None:
        rabbitmq_vhost.proxy.restore()
    rabbitmq_vhost.purge_all()
    return rabbitmq_vhost


@pytest.fixture
def operator(db):
    """A test client logged in as "operator", staff with every permission (the admin's too)."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_superuser("operator", "operator@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def product(db):
    from shop.models import Product

    return Product.objects.create(name="Blue Mug", slug="blue-mug", price="12.50")


@pytest.fixture
def database_url(transactional_db):
    """A DATABASE_URL that points other processes at this test's database."""
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    user = urllib.parse.quote(s["USER"] or "")
    password = urllib.parse.quote(s["PASSWORD"] or "")
    credentials = f"{user}:{password}@" if user else ""
    return f"postgres://{credentials}{s['HOST'] or 'localhost'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def smtp_sink(tmp_path, database_url):
    sink = SmtpSink(
        port=free_port(),
        maildir=tmp_path / "outbox",
        control=tmp_path / "smtp-sink.json",
        env=dict(os.environ, DATABASE_URL=database_url),
        log_path=tmp_path / "smtp-sink.log",
    ).start()
    yield sink
    sink.stop()


@pytest.fixture
def media_root(settings, tmp_path):
    """Uploaded and generated files of this test, shared with its worker processes."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def process_env(broker, database_url, tmp_path):
    """Environment for a process of this test (beat, a scaler): its database and vhost."""
    return dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker.url,
        VAR_DIR=str(tmp_path),
    )


@pytest.fixture
def service_env(process_env, smtp_sink, media_root):
    """Environment for a worker or beat process of this test, with its mail server and files."""
    return dict(
        process_env,
        MEDIA_ROOT=str(media_root),
        EMAIL_PORT=str(smtp_sink.port),
        # Short backoff so that a test sees several retries in seconds.
        JOB_RETRY_BACKOFF_SECONDS="0.2",
        JOB_RETRY_BACKOFF_MAX_SECONDS="2",
    )


@pytest.fixture
def start_worker(service_env, tmp_path):
    """Start a real Celery worker: start_worker(queues=("emails",), concurrency=2, **env).

    options=shipped_worker_options("worker-emails") runs it with the Procfile's pool and limits.

    task_events=True starts it with `--task-events` (`-E`), for a test that reads them.
    """
    started = []

    def start(
        queues=(queues.EMAILS, queues.MAINTENANCE), concurrency=2, wait=True, task_events=False,
        options=(), **env,
    ):  # fmt: skip
        worker = Worker(
            celery_app,
            queues,
            env={**service_env, **env},
            log_path=tmp_path / f"worker-{len(started)}.log",
            concurrency=concurrency,
            task_events=task_events,
            options=options,
        )
        started.append(worker)
        return worker.start(wait=wait)

    yield start
    for worker in started:
        worker.kill()


@pytest.fixture
def start_beat(service_env, tmp_path):
    started = []

    def start(**env):
        beat = Beat(
            env={**service_env, **env},
            log_path=tmp_path / "beat.log",
            pidfile=tmp_path / f"beat-{uuid.uuid4().hex[:6]}.pid",
        )
        started.append(beat)
        return beat.start()

    yield start
    for beat in started:
        beat.kill()

"""The order-confirmation job end to end: real RabbitMQ, real worker, real SMTP server."""

import threading
import time
from contextlib import contextmanager

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection, transaction

from config.celery import app as celery_app
from jobs.models import Job
from notifications.tasks import send_order_confirmation
from shop import services
from shop.models import Order
from testkit.processes import shipped_worker_options, wait_for
from tests.flows import checkout, confirmation_job, place_order, wait_for_job_state

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def test_checkout_sends_one_confirmation_email(client, broker, smtp_sink, start_worker, product):
    start_worker()
    order = checkout(client, product)

    messages = wait_for(smtp_sink.messages, timeout=20, message="the confirmation email")
    job = wait_for_job_state(order, Job.State.SUCCEEDED)
    assert len(messages) == 1
    assert messages[0]["to"] == "ada@example.com"
    assert f"#{order.pk}" in messages[0]["subject"]
    assert job.attempts == 1
    assert job.outcome["message_id"] == messages[0]["message_id"]

    page = client.get(order.get_absolute_url()).content.decode()
    assert "sent at" in page and "on attempt 1" in page
    # Nothing else is on its way: the queue is empty and no second email arrives.
    wait_for(lambda: broker.depth("emails") == 0, message="an empty emails queue")
    time.sleep(1)
    assert len(smtp_sink.messages()) == 1


@contextmanager
def serving_a_request():
    """What Django's WSGI handler and server do around a request: request_started when it
    comes in, request_finished once the response has been written (as the test client does,
    without closing the test's database connection)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        request_started.send(sender=WSGIHandler)
        yield
        request_finished.send(sender=WSGIHandler)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def test_a_requests_jobs_are_published_once_its_response_has_gone_out(broker, product):
    with serving_a_request():
        order = place_order(product)
        # Committed, and the customer's response can go: nothing waits for RabbitMQ yet.
        assert confirmation_job(order).state == Job.State.PENDING
        assert broker.depth("emails") == 0
    assert confirmation_job(order).state == Job.State.QUEUED
    assert broker.depth("emails") == 1

    # Outside a request (a worker, a management command, beat) there is no response to wait for.
    order = place_order(product)
    assert confirmation_job(order).state == Job.State.QUEUED
    assert broker.depth("emails") == 2


def test_the_publish_after_the_response_uses_the_requests_database_connection(broker, product):
    """Django closes the request's connection at request_finished (DB_CONN_MAX_AGE 0): the
    publish comes before that, or it would open a second connection, idle until the next
    request. Here the signals are sent with Django's own receivers connected, as a server does."""
    assert connection.settings_dict["CONN_MAX_AGE"] == 0
    request_started.send(sender=WSGIHandler)
    order = place_order(product)
    request_finished.send(sender=WSGIHandler)
    assert connection.connection is None, "a connection was left open after the request"
    assert confirmation_job(order).state == Job.State.QUEUED


def test_publishing_at_the_commit_is_a_setting_away(broker, product, settings):
    settings.OUTBOX_PUBLISH_AFTER_RESPONSE = False
    with serving_a_request():
        order = place_order(product)
        assert confirmation_job(order).state == Job.State.QUEUED
        assert broker.depth("emails") == 1


def test_rolled_back_order_publishes_nothing(broker, product):
    with pytest.raises(RuntimeError), transaction.atomic():
        services.place_order(
            customer_name="Rolled Back",
            email="rollback@example.com",
            shipping_address="Nowhere",
            items=[(product, 1)],
        )
        raise RuntimeError("the payment failed after the order was written")

    assert not Order.objects.exists()
    assert not Job.objects.exists()
    assert broker.depth("emails") == 0

    # The same call, committed, does publish: the measurement above can see a message.
    services.place_order(
        customer_name="Committed",
        email="ok@example.com",
        shipping_address="Somewhere",
        items=[(product, 1)],
    )
    wait_for(lambda: broker.depth("emails") == 1, timeout=5, message="one published message")
    [message] = broker.peek("emails")
    assert message["headers"]["task"] == "notifications.send_order_confirmation"
    assert message["properties"]["priority"] == 9


def test_transient_smtp_failures_are_retried_and_the_email_sent_once(
    client, broker, smtp_sink, start_worker, product
):
    smtp_sink.set(fail_next=2)
    start_worker()
    order = checkout(client, product)

    job = wait_for_job_state(order, Job.State.SUCCEEDED)
    assert job.attempts == 3
    assert len(smtp_sink.messages()) == 1
    assert "on attempt 3" in job.describe()
    wait_for(lambda: broker.depth("emails") == 0, message="an empty emails queue")
    assert len(smtp_sink.messages()) == 1


def test_permanent_failure_is_dead_lettered_with_its_history(
    client, broker, smtp_sink, start_worker, product
):
    smtp_sink.set(reject_next=1)
    start_worker()
    order = checkout(client, product)

    job = wait_for_job_state(order, Job.State.FAILED)
    assert "550" in job.last_error
    assert job.attempts == 1, "a permanent failure is not retried"
    [dead] = wait_for(lambda: broker.peek("emails.dead"), message="a dead letter")
    assert dead["headers"]["id"] == job.task_id
    [death] = dead["headers"]["x-death"]
    assert death["queue"] == "emails"
    assert death["reason"] == "rejected"
    assert death["count"] == 1
    assert smtp_sink.messages() == []
    assert "failed: " in client.get(order.get_absolute_url()).content.decode()


def test_confirmation_for_a_missing_order_is_dead_lettered(broker, smtp_sink, start_worker):
    start_worker()
    result = send_order_confirmation.delay(987654)

    [dead] = wait_for(lambda: broker.peek("emails.dead"), message="a dead letter")
    assert dead["headers"]["id"] == result.id
    assert "does not exist" in Job.objects.get(key="order_confirmation:987654").last_error


def test_retries_that_run_out_are_dead_lettered(client, broker, smtp_sink, start_worker, product):
    smtp_sink.set(fail_next=100)
    start_worker(JOB_MAX_RETRIES="2")
    order = checkout(client, product)

    job = wait_for_job_state(order, Job.State.FAILED)
    assert job.attempts == 3
    assert job.last_error.startswith("gave up after 3 attempts: SMTP 451")
    wait_for(lambda: broker.peek("emails.dead"), message="a dead letter")
    assert smtp_sink.messages() == []


def test_the_same_message_delivered_twice_sends_one_email(
    client, broker, smtp_sink, start_worker, product
):
    order = checkout(client, product)  # no worker yet: the message waits in the queue
    job = confirmation_job(order)
    for _ in range(2):  # two more copies of the very same message
        send_order_confirmation.apply_async(args=[order.pk], task_id=job.task_id)
    assert broker.depth("emails") == 3

    worker = start_worker(concurrency=2)
    wait_for_job_state(order, Job.State.SUCCEEDED)
    # Copies that found the job claimed come back until they see it done; wait for them all.
    wait_for(
        lambda: broker.depth("emails") == 0 and worker.is_idle(),
        timeout=30,
        message="every copy to be processed",
    )
    assert len(smtp_sink.messages()) == 1
    assert confirmation_job(order).attempts == 1


class StartedTasks:
    """Records the order in which the worker starts tasks, from Celery's event stream."""

    def __init__(self):
        self.ids = []
        self.listening = threading.Event()

    def __enter__(self):
        self.connection = celery_app.connection_for_read()
        self.receiver = celery_app.events.Receiver(
            self.connection, handlers={"task-started": lambda event: self.ids.append(event["uuid"])}
        )
        self.receiver.on_consume_ready = lambda *args, **kwargs: self.listening.set()
        self.thread = threading.Thread(target=self.receiver.capture, daemon=True)
        self.thread.start()
        assert self.listening.wait(10), "could not listen to the worker's events"
        return self

    def __exit__(self, *exc):
        self.receiver.should_stop = True
        self.thread.join(5)
        self.connection.release()


@pytest.mark.parametrize(
    "options",
    [
        pytest.param((), id="prefork"),
        pytest.param(shipped_worker_options("worker-emails"), id="shipped"),
    ],
)
def test_confirmation_overtakes_a_backlog_of_low_priority_jobs(
    client, broker, smtp_sink, start_worker, product, options
):
    from jobs.tasks import noop

    backlog = 2000
    with celery_app.producer_or_acquire() as producer:
        for i in range(backlog):
            noop.apply_async(args=[f"filler-{i}"], producer=producer)
    order = checkout(client, product)  # published last, behind the whole backlog
    job = confirmation_job(order)
    assert broker.depth("emails") == backlog + 1

    with StartedTasks() as started:
        start_worker(queues=("emails",), concurrency=2, task_events=True, options=options)
        wait_for(lambda: len(started.ids) >= backlog + 1, timeout=120, message="all tasks")

    ahead = started.ids.index(job.task_id)
    assert ahead <= backlog // 100, f"{ahead} low-priority jobs started before the confirmation"
    assert confirmation_job(order).state == Job.State.SUCCEEDED

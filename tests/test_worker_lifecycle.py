"""A mail server that is away for a while, and workers that are told to stop."""

import os
import signal
import time

import pytest

from config import queues
from jobs.models import Job
from testkit.processes import SmtpSink, wait_for
from tests.flows import checkout, confirmation_job, wait_for_job_state

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

SMTP_OUTAGE_SECONDS = float(os.environ.get("TEST_SMTP_OUTAGE_SECONDS", 60))


def test_emails_wait_out_a_mail_server_outage_and_arrive_once(
    client, broker, smtp_sink, start_worker, product
):
    # Backoff scaled so that the retries span the outage: 1, 2, 4, 8, 8, ... seconds.
    start_worker(
        JOB_RETRY_BACKOFF_SECONDS="1", JOB_RETRY_BACKOFF_MAX_SECONDS="8", JOB_MAX_RETRIES="30"
    )
    smtp_sink.stop()
    orders = [checkout(client, product, email=f"c{i}@example.com") for i in range(3)]

    wait_for(
        lambda: all(confirmation_job(o).state == Job.State.RETRYING for o in orders),
        message="the jobs to start retrying",
    )
    time.sleep(SMTP_OUTAGE_SECONDS)
    assert all(confirmation_job(o).state != Job.State.FAILED for o in orders)

    back = SmtpSink(
        smtp_sink.port, smtp_sink.maildir, smtp_sink.control, smtp_sink.env, smtp_sink.log_path
    ).start()
    try:
        for order in orders:
            job = wait_for_job_state(order, Job.State.SUCCEEDED, timeout=30)
            assert job.attempts > 2
        assert sorted(m["to"] for m in back.messages()) == sorted(o.email for o in orders)
    finally:
        back.stop()


def test_warm_shutdown_finishes_the_running_job(client, broker, smtp_sink, start_worker, product):
    smtp_sink.set(latency=2)
    worker = start_worker()
    order = checkout(client, product)
    wait_for(lambda: confirmation_job(order).state == Job.State.STARTED, message="the send")

    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=30) == 0
    assert confirmation_job(order).state == Job.State.SUCCEEDED
    assert len(smtp_sink.messages()) == 1


def test_warm_shutdown_loses_no_scheduled_retry(client, broker, smtp_sink, start_worker, product):
    smtp_sink.set(fail_next=1)
    worker = start_worker(JOB_RETRY_BACKOFF_SECONDS="8")  # first retry 4 to 8 s later
    order = checkout(client, product)
    wait_for(lambda: confirmation_job(order).state == Job.State.RETRYING, message="a retry")
    if queues.QUORUM:
        # Celery's native delayed delivery: the retry waits in the broker's delay queues, and
        # the worker holds nothing that a stop could lose.
        wait_for(lambda: delayed_messages(broker) == 1, message="the retry waiting in the broker")
        assert worker.is_idle()
    else:
        # The worker holds the retry, unacknowledged, until it is due.
        wait_for(lambda: not worker.is_idle(), message="the retry to be held by the worker")

    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=30) == 0
    if not queues.QUORUM:
        wait_for(lambda: broker.depth("emails") == 1, timeout=10, message="the retry back in queue")
    # A new worker picks the retry up when it is due and sends the email once.
    start_worker()
    job = wait_for_job_state(order, Job.State.SUCCEEDED, timeout=30)
    assert job.attempts == 2
    assert len(smtp_sink.messages()) == 1


def delayed_messages(broker):
    """Messages waiting in Celery's delay queues (celery_delayed_0 to celery_delayed_27)."""
    return sum(broker.depth(f"celery_delayed_{level}") for level in range(28))

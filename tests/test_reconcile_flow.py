"""Self-healing, end to end: a job whose message is lost is published again once, and done once
(jobs/reconcile.py). Real RabbitMQ, real workers, real SMTP server; the message is lost for
real (its queue purged, as by hand), the worker killed for real (SIGKILL)."""

import os
import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import reconcile
from jobs.models import Job, JobEvent
from testkit.processes import wait_for
from tests.flows import confirmation_job, place_order, wait_for_job_state

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def rescues(job):
    return list(JobEvent.objects.filter(job=job, kind=JobEvent.Kind.RESCUED))


def test_a_queued_job_whose_message_was_lost_is_published_again_and_sent_once(
    broker, smtp_sink, start_worker, product, settings
):
    settings.JOBS_RESCUE_QUEUED_AFTER_SECONDS = 0
    order = place_order(product)  # no worker yet: the message waits in RabbitMQ
    wait_for(lambda: broker.depth("emails") == 1, message="the confirmation in RabbitMQ")
    assert reconcile.rescue_stuck_jobs().republished == [], "a waiting message is not lost"

    broker.purge_all()  # the message is gone; the job still says QUEUED
    job = confirmation_job(order)
    # (The order's message to the warehouse, on its own queue, was lost and is rescued too.)
    assert job.key in reconcile.rescue_stuck_jobs().republished
    # Once: the copy waits in the queue now, and a second round leaves the job alone.
    assert reconcile.rescue_stuck_jobs().republished == []
    assert broker.depth("emails") == 1

    start_worker()
    wait_for_job_state(order, Job.State.SUCCEEDED)
    assert [m["to"] for m in smtp_sink.messages()] == ["ada@example.com"]
    (rescued,) = rescues(job)
    assert "its queue holds no message" in rescued.detail


def test_a_job_whose_worker_died_and_whose_message_was_lost_runs_again_once(
    broker, smtp_sink, start_worker, product, settings
):
    settings.JOBS_RESCUE_GRACE_SECONDS = 0
    smtp_sink.set(latency=30)  # the mail server is slow: the worker is caught mid-send
    worker = start_worker(concurrency=1)
    order = place_order(product)
    wait_for_job_state(order, Job.State.STARTED)

    os.killpg(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait()
    broker.purge_all()  # RabbitMQ gave the unacknowledged message back; it is lost now
    job = confirmation_job(order)
    assert reconcile.rescue_stuck_jobs().republished == [], "its lease still runs"
    # The lease covers the task's hard time limit and a margin; here it has run out.
    Job.objects.filter(pk=job.pk).update(claim_expires_at=timezone.now() - timedelta(seconds=1))

    assert reconcile.rescue_stuck_jobs().republished == [job.key]
    assert confirmation_job(order).state == Job.State.QUEUED
    smtp_sink.set(latency=0)
    start_worker()
    job = wait_for_job_state(order, Job.State.SUCCEEDED)
    assert job.attempts == 2
    assert [m["to"] for m in smtp_sink.messages()] == ["ada@example.com"]
    assert "lease ran out" in rescues(job)[0].detail


def test_a_job_stuck_again_after_its_rescue_is_failed_not_rescued_forever(
    broker, product, settings
):
    settings.JOBS_RESCUE_QUEUED_AFTER_SECONDS = 0
    order = place_order(product)
    wait_for(lambda: broker.depth("emails") == 1, message="the confirmation in RabbitMQ")
    broker.purge_all()
    job = confirmation_job(order)
    assert job.key in reconcile.rescue_stuck_jobs().republished

    broker.purge_all()  # and lost again
    assert job.key in reconcile.rescue_stuck_jobs().failed
    job.refresh_from_db()
    assert job.state == Job.State.FAILED and "stuck again after a rescue" in job.last_error
    assert len(rescues(job)) == 1
    assert reconcile.rescue_stuck_jobs().failed == [], "a failed job is left alone"

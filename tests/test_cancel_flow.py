"""Cancelling jobs end to end: real RabbitMQ, real workers, real SMTP server.

A cancel is recorded in the database and enforced when a worker takes the message
(jobs/cancel.py), so it holds when the worker that was running at the time is gone; Celery's
revoke is kept in the memory of the workers running when it is sent (celery#4300)."""

import os
import signal
import time

import pytest
from django.urls import reverse

from config.celery import app as celery_app
from demo.subscribers import seed_subscribers
from jobs.models import Job, JobEvent
from jobs.tasks import noop
from notifications.models import Delivery, Newsletter
from notifications.newsletters import progress_of
from testkit.processes import wait_for
from tests.flows import confirmation_job, place_order

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def busy_worker(start_worker, broker, seconds=10):
    """A worker whose one process is busy for `seconds`: what is published next waits in the
    broker (prefetch 1), not in the worker."""
    worker = start_worker(queues=("emails",), concurrency=1)
    noop.delay("keeps the worker busy", seconds)
    wait_for(lambda: broker.depth("emails") == 0, message="the worker to take the filler")
    return worker


def wait_until_drained(broker, worker):
    wait_for(lambda: broker.depth("emails") == 0 and worker.is_idle(), timeout=60,
             message="the emails queue to be drained")  # fmt: skip


def kinds_of_events(job):
    return list(JobEvent.objects.filter(job=job).values_list("kind", flat=True))


def test_a_cancel_holds_when_the_worker_restarts_before_the_message_is_delivered(
    broker, smtp_sink, start_worker, operator, product
):
    first = busy_worker(start_worker, broker)
    order = place_order(product)
    job = confirmation_job(order)
    wait_for(lambda: broker.depth("emails") == 1, message="the confirmation in the broker")

    response = operator.post(reverse("admin:jobs_job_cancel", args=[job.pk]))
    assert response.status_code == 302
    assert confirmation_job(order).state == Job.State.CANCELLED

    # The worker dies (kill -9) and another starts: whatever the first knew is gone.
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait()
    second = start_worker(queues=("emails",), concurrency=1)
    wait_for(lambda: "this copy does nothing" in second.log(), message="the message delivered")

    job = confirmation_job(order)
    assert job.state == Job.State.CANCELLED and job.cancelled_by == "operator"
    assert job.attempts == 0 and JobEvent.Kind.STARTED not in kinds_of_events(job)
    assert "was cancelled by operator; this copy does nothing" in second.log()
    time.sleep(1)
    assert smtp_sink.messages() == [], "the cancelled email was not sent"


def test_a_revoke_sent_as_flower_sends_it_ends_the_job_cancelled(
    broker, smtp_sink, start_worker, product
):
    worker = busy_worker(start_worker, broker, seconds=3)
    order = place_order(product)
    job = confirmation_job(order)
    wait_for(lambda: broker.depth("emails") == 1, message="the confirmation in the broker")

    celery_app.control.revoke(job.task_id)  # Flower's "revoke" button sends this

    wait_until_drained(broker, worker)
    job = wait_for(
        lambda: (j := confirmation_job(order)).state == Job.State.CANCELLED and j,
        message="the revoked job to be cancelled",
    )
    assert "revoke" in job.cancelled_by
    assert kinds_of_events(job)[-1] == JobEvent.Kind.CANCELLED
    assert smtp_sink.messages() == []


def test_a_newsletter_cancelled_mid_send_stops_and_counts_who_did_not_get_it(
    broker, smtp_sink, start_worker, operator
):
    recipients = 200
    seed_subscribers(recipients)
    smtp_sink.set(reply_delay=0.05)  # about 20 emails a second, one process
    operator.post(reverse("newsletters:list"), {"subject": "Winter sale", "body": "Mugs!"})
    newsletter = Newsletter.objects.get()
    operator.post(reverse("newsletters:send", args=[newsletter.pk]))
    start_worker(queues=("emails",), concurrency=1, NEWSLETTER_CHUNK_SIZE="50",
                 NEWSLETTER_EMAILS_PER_SECOND="0")  # fmt: skip
    wait_for(lambda: progress_of(newsletter.pk).sent >= 20, message="the sending under way")

    page = operator.post(reverse("newsletters:cancel", args=[newsletter.pk]), follow=True)
    assert "will not get it" in page.content.decode()

    jobs = Job.objects.filter(subject=f"newsletter:{newsletter.pk}")
    wait_for(lambda: not jobs.exclude(state__in=Job.FINAL_STATES).exists(), timeout=60,
             message="every job of the newsletter to end")  # fmt: skip
    newsletter.refresh_from_db()
    progress = progress_of(newsletter.pk)
    received = [m["to"] for m in smtp_sink.messages() if m["subject"] == "Winter sale"]
    assert newsletter.state == Newsletter.State.CANCELLED
    assert progress.remaining == 0 and progress.unknown == 0 and progress.failed == 0
    assert progress.sent + progress.cancelled == recipients
    assert 20 <= progress.sent < 100, "it stopped within the chunk being sent"
    assert len(received) == len(set(received)) == progress.sent, "what the count says was sent"
    assert set(jobs.values_list("state", flat=True)) <= {Job.State.SUCCEEDED, Job.State.CANCELLED}
    stopped = jobs.filter(events__kind=JobEvent.Kind.CANCEL_ASKED).get()
    assert stopped.state == Job.State.CANCELLED, "the running chunk stopped at a stop point"
    cancelled = Delivery.objects.filter(newsletter=newsletter, state=Delivery.State.CANCELLED)
    assert cancelled.count() == progress.cancelled
    assert cancelled.first().error == "cancelled by operator"

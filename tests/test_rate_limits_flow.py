"""The mail provider's limit holds across workers: real RabbitMQ, two real email workers.

Celery's rate_limit is counted per worker (celery#5732): two workers would send at twice the
limit. The newsletter's limit is a slot per email taken from one database row
(jobs/throttle.py), whatever the number of workers and processes."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from demo.subscribers import seed_subscribers
from jobs.models import JobEvent
from notifications.models import Delivery, Newsletter
from testkit.processes import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

LIMIT = 20  # emails a second, for all workers together
RECIPIENTS = 120


def most_in_one_second(times):
    """The most timestamps that fall within any one second (a sliding window)."""
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while (at - times[start]).total_seconds() >= 1:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_two_email_workers_together_stay_under_the_mail_providers_limit(
    broker, smtp_sink, start_worker
):
    seed_subscribers(RECIPIENTS)
    staff = Client()
    staff.force_login(get_user_model().objects.create_user("editor", password="x", is_staff=True))
    staff.post(reverse("newsletters:list"), {"subject": "Winter sale", "body": "Mugs!"})
    newsletter = Newsletter.objects.get()
    limits = {"NEWSLETTER_EMAILS_PER_SECOND": str(LIMIT), "NEWSLETTER_CHUNK_SIZE": "10"}
    workers = [start_worker(queues=("emails",), concurrency=2, **limits) for _ in range(2)]
    staff.post(reverse("newsletters:send", args=[newsletter.pk]))

    wait_for(
        lambda: Newsletter.objects.get(pk=newsletter.pk).state == Newsletter.State.SENT,
        timeout=60, message="the newsletter to be sent",
    )  # fmt: skip
    sent = Delivery.objects.filter(newsletter=newsletter, state=Delivery.State.SENT)
    handed_over = list(sent.values_list("started_at", flat=True))
    assert len(handed_over) == RECIPIENTS == smtp_sink.count()

    # Both workers sent: the limit was shared, not one worker doing everything.
    chunk_starts = JobEvent.objects.filter(kind=JobEvent.Kind.STARTED, job__kind="newsletter_chunk")
    senders = set(chunk_starts.values_list("worker", flat=True))
    assert senders == {worker.nodename for worker in workers}
    # Slots are 1/LIMIT s apart; a process wakes a few ms late for its own. So at most LIMIT
    # in any second, +1 for a window's two ends, +1 for a late waker; each worker alone at the
    # limit (Celery's way) would put twice as many.
    assert most_in_one_second(handed_over) <= LIMIT + 2
    first, last = min(handed_over), max(handed_over)
    assert (RECIPIENTS - 1) / (last - first).total_seconds() <= LIMIT * 1.05

"""Every job keeps a timeline: the order page and the admin show each step it took."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from jobs import deadletters
from jobs.models import Job
from testkit.processes import wait_for
from tests.flows import checkout, confirmation_job, wait_for_job_state

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def steps(job):
    return [(e.kind, e.attempt) for e in job.events.all()]


def test_a_job_retried_then_sent_shows_every_step(client, broker, smtp_sink, start_worker, product):
    smtp_sink.set(fail_next=1)
    worker = start_worker()
    order = checkout(client, product)
    job = wait_for_job_state(order, Job.State.SUCCEEDED)

    assert steps(job) == [
        ("queued", None),
        ("started", 1),
        ("retrying", 1),
        ("started", 2),
        ("succeeded", 2),
    ]
    retry = job.events.get(kind="retrying")
    assert "451" in retry.detail and "next try at" in retry.detail
    assert job.events.get(kind="started", attempt=2).worker == worker.nodename

    page = client.get(order.get_absolute_url()).content.decode()
    assert page.count('class="event-started"') == 2
    assert "will retry (attempt 1)" in page


def test_a_dead_lettered_then_replayed_job_shows_every_step(
    client, broker, smtp_sink, start_worker, product
):
    smtp_sink.set(reject_next=1)
    start_worker()
    order = checkout(client, product)
    job = wait_for_job_state(order, Job.State.FAILED)
    assert steps(job) == [("queued", None), ("started", 1), ("failed", 1), ("dead_lettered", None)]
    assert job.events.get(kind="dead_lettered").detail == "parked in emails.dead"

    wait_for(lambda: broker.peek("emails.dead"), message="the dead letter")
    deadletters.replay("emails.dead")
    job = wait_for_job_state(order, Job.State.SUCCEEDED)
    assert [kind for kind, _ in steps(job)][-3:] == ["replayed", "started", "succeeded"]

    admin = get_user_model().objects.create_superuser("boss", "b@example.com", "pw")
    client.force_login(admin)
    page = client.get(reverse("admin:jobs_job_change", args=[job.pk])).content.decode()
    assert "parked in emails.dead" in page and "with a fresh retry budget" in page


def test_a_checkout_during_an_outage_shows_the_delay(client, broker, product):
    broker.proxy.cut()
    order = checkout(client, product)
    broker.proxy.restore()
    job = confirmation_job(order)
    [event] = job.events.all()
    assert event.kind == "delayed" and event.detail

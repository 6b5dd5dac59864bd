"""Pausing a queue end to end: real RabbitMQ, real workers (jobs/pause.py).

The pause is a row the workers follow, so it holds through a worker's restart; the messages
wait in RabbitMQ and go out when the queue is resumed."""

import os
import signal
import time

import pytest
from django.urls import reverse

from config import queues
from config.celery import app as celery_app
from jobs import topology
from jobs.dashboard import queue_counts
from jobs.models import Job
from testkit.processes import wait_for
from tests.flows import confirmation_job, place_order, wait_for_job_state

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def consumers(queue):
    return queue_counts([queue])[queue][1]


def test_a_paused_queue_keeps_its_work_through_a_worker_restart_until_resumed(
    broker, smtp_sink, start_worker, operator, product, settings
):
    settings.METRICS_TOKEN = "scraper"
    every_queue = topology.work_queue_names(celery_app)  # so that the health check can pass
    worker = start_worker(queues=every_queue)
    assert operator.post(reverse("jobs:queue_pause", args=[queues.EMAILS])).status_code == 302
    wait_for(lambda: consumers(queues.EMAILS) == 0, message="the worker to stop consuming")
    assert consumers(queues.MAINTENANCE) == 1, "only the paused queue is left alone"

    order = place_order(product)
    wait_for(lambda: broker.depth(queues.EMAILS) == 1, message="the confirmation in RabbitMQ")

    # The worker is killed and another starts: it reads the pause before it consumes.
    os.killpg(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait()
    start_worker(queues=every_queue)
    time.sleep(2)  # time enough to take the message, were it consuming
    assert consumers(queues.EMAILS) == 0 and consumers(queues.MAINTENANCE) == 1
    assert broker.depth(queues.EMAILS) == 1
    assert confirmation_job(order).state == Job.State.QUEUED
    assert smtp_sink.messages() == []

    # Paused, not down: the health check, the metrics and the dashboard say so.
    health = operator.get(reverse("jobs:healthz_workers"))
    assert health.status_code == 200 and "emails (paused)" in health.json()["checks"][0]
    scrape = operator.get(reverse("jobs:metrics"), HTTP_AUTHORIZATION="Bearer scraper")
    metrics = scrape.content.decode()
    assert 'shopjobs_queue_paused{queue="emails"} 1.0' in metrics
    assert 'shopjobs_queue_paused{queue="media"} 0.0' in metrics
    panels = operator.get(reverse("jobs:dashboard"), {"partial": "1"}).content.decode()
    assert "paused by operator" in panels

    assert operator.post(reverse("jobs:queue_resume", args=[queues.EMAILS])).status_code == 302
    wait_for_job_state(order, Job.State.SUCCEEDED)
    assert [m["to"] for m in smtp_sink.messages()] == ["ada@example.com"]
    assert consumers(queues.EMAILS) == 1


def test_only_staff_pause_and_only_known_queues(client, operator):
    url = reverse("jobs:queue_pause", args=[queues.EMAILS])
    assert "/login/" in client.post(url)["Location"]
    assert operator.get(url).status_code == 405
    assert operator.post(reverse("jobs:queue_pause", args=["no-such-queue"])).status_code == 404

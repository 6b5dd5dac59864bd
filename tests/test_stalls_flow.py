"""A worker that stays connected but takes nothing (celery#8030), end to end: real RabbitMQ,
real workers. The consumer count cannot see it; the stall check can (jobs/dashboard.py:
stalled_queues), within JOBS_STALL_SECONDS of a job's queueing."""

import os
import signal

import pytest
from django.urls import reverse

from config import queues
from config.celery import app as celery_app
from jobs import topology
from jobs.dashboard import queue_counts
from jobs.models import Job
from testkit.processes import wait_for
from tests.flows import place_order, wait_for_job_state

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

STALL = 3  # seconds, for the test (JOBS_STALL_SECONDS, 120 by default)


def consumers(queue):
    return queue_counts([queue])[queue][1]


def health(client):
    response = client.get(reverse("jobs:healthz_workers"))
    return response.status_code, " ".join(response.json()["checks"])


def test_a_stopped_worker_that_keeps_its_consumer_is_reported_stalled(
    client, broker, smtp_sink, start_worker, product, settings
):
    settings.JOBS_STALL_SECONDS = STALL
    settings.METRICS_TOKEN = "scraper"
    worker = start_worker(queues=topology.work_queue_names(celery_app))
    assert health(client)[0] == 200

    os.killpg(worker.proc.pid, signal.SIGSTOP)  # the whole worker, frozen: no error, no exit
    try:
        order = place_order(product)
        _, checks = wait_for(
            lambda: (answer := health(client))[0] == 503 and answer, timeout=STALL + 10,
            message="the health check to see the stall",
        )  # fmt: skip
        assert f"taking nothing while a job waits over {STALL} s: emails" in checks
        # What a consumer count says meanwhile: the frozen worker is still attached.
        assert consumers(queues.EMAILS) == 1 and "consumers on every queue" in checks
        metrics = client.get(reverse("jobs:metrics"), HTTP_AUTHORIZATION="Bearer scraper")
        assert 'shopjobs_queue_stalled{queue="emails"} 1.0' in metrics.content.decode()
    finally:
        os.killpg(worker.proc.pid, signal.SIGCONT)

    wait_for_job_state(order, Job.State.SUCCEEDED)
    wait_for(lambda: health(client)[0] == 200, message="healthy again")


def test_a_consumer_cancelled_behind_a_workers_back_comes_back_by_itself(
    client, broker, smtp_sink, start_worker, product
):
    worker = start_worker(queues=(queues.EMAILS,), JOBS_PAUSE_SYNC_SECONDS="2")
    celery_app.control.cancel_consumer(queues.EMAILS, destination=[worker.nodename], reply=True)
    wait_for(lambda: consumers(queues.EMAILS) == 0, message="the consumer gone")
    # Connected and answering ping, taking nothing: the health check names the queue.
    assert celery_app.control.ping(destination=[worker.nodename], timeout=2)
    status, checks = health(client)
    assert status == 503 and "no worker consumes queue(s): emails" in checks

    order = place_order(product)
    wait_for_job_state(order, Job.State.SUCCEEDED, timeout=30)
    assert consumers(queues.EMAILS) == 1
    assert "consuming queue emails again" in worker.log()

"""The broker goes away while customers check out: nothing hangs, nothing is lost or doubled."""

import time

import pytest

from jobs.models import Job
from tests.flows import checkout, confirmation_job, wait_for_job_state

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

# The sweeper looks for stranded jobs every second and republishes those older than a second.
FAST_SWEEP = {"OUTBOX_SWEEP_INTERVAL_SECONDS": "1", "OUTBOX_REPUBLISH_AFTER_SECONDS": "1"}


def test_checkout_while_the_broker_is_down_sends_the_email_once_it_is_back(
    client, broker, smtp_sink, start_worker, start_beat, product
):
    # Web, worker and beat all reach RabbitMQ through the proxy, so cutting it is an outage
    # for everyone.
    start_worker(CELERY_BROKER_URL=broker.proxied_url, **FAST_SWEEP)
    start_beat(CELERY_BROKER_URL=broker.proxied_url, **FAST_SWEEP)
    broker.proxy.cut()

    started = time.monotonic()
    order = checkout(client, product)
    assert time.monotonic() - started < 2, "the checkout must not wait for the broker"

    job = confirmation_job(order)
    assert job.state == Job.State.PENDING
    assert job.publish_error
    page = client.get(order.get_absolute_url()).content.decode()
    assert "delayed" in page

    broker.proxy.restore()
    wait_for_job_state(order, Job.State.SUCCEEDED, timeout=60)
    assert len(smtp_sink.messages()) == 1
    time.sleep(2)  # two more sweeps: they must find nothing left to publish
    assert len(smtp_sink.messages()) == 1
    assert confirmation_job(order).attempts == 1

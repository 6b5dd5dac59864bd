"""Health endpoints answer 503 and name what is down when the broker or the workers are."""

import pytest
from django.urls import reverse
from kombu import Connection

from config import queues
from config.celery import app as celery_app
from jobs.dashboard import queue_counts
from testkit.processes import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def test_web_health_is_the_web_and_its_database(client):
    response = client.get(reverse("jobs:healthz"))
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_broker_health_follows_the_broker(client, broker):
    assert client.get(reverse("jobs:healthz_broker")).status_code == 200
    broker.proxy.cut()
    try:
        response = client.get(reverse("jobs:healthz_broker"))
    finally:
        broker.proxy.restore()
        # The cut closed this process's pooled connections too (/healthz/* open their own):
        # a new set, or the next test's first broadcast (its worker's ping) finds one dead.
        celery_app.pool.resize(celery_app.pool.limit, reset=True)
    assert response.status_code == 503
    assert "broker unreachable" in response.json()["down"][0]


def test_worker_health_names_the_queues_nobody_serves(client, broker, smtp_sink, start_worker):
    url = reverse("jobs:healthz_workers")
    response = client.get(url)
    assert response.status_code == 503
    assert "emails" in response.json()["down"][0]

    worker = start_worker(queues=(queues.EMAILS, queues.MAINTENANCE))
    response = client.get(url)
    assert response.status_code == 503
    down = response.json()["down"][0]
    assert "media" in down and "reports" in down and "emails" not in down

    start_worker(queues=(queues.MEDIA, queues.REPORTS, queues.INTEGRATIONS), concurrency=1)
    assert client.get(url).status_code == 200

    worker.stop()
    response = client.get(url)
    assert response.status_code == 503 and "emails" in response.json()["down"][0]


def test_worker_health_asks_rabbitmq_not_the_workers(client, broker, smtp_sink, start_worker):
    # A worker that answers no broadcast (its remote control is off) but consumes every
    # queue: RabbitMQ counts its consumers, and that is what the health check reads.
    worker = start_worker(
        queues=queues.WORK_QUEUE_NAMES,
        options=["--include", "tests.remote_control_off"],
        wait=False,
    )
    wait_for(
        lambda: all(consumers for _, consumers in queue_counts(queues.WORK_QUEUE_NAMES).values()),
        message="the worker to consume every queue",
    )
    assert not celery_app.control.ping(destination=[worker.nodename], timeout=0.5), (
        "the worker answers no broadcast"
    )
    response = client.get(reverse("jobs:healthz_workers"))
    assert response.status_code == 200, response.json()


def test_event_consumer_health_names_the_event_queues_nobody_consumes(client, broker):
    url = reverse("jobs:healthz_consumers")
    response = client.get(url)
    assert response.status_code == 503
    down = response.json()["down"][0]
    assert all(name in down for name in queues.EVENT_QUEUE_NAMES), down

    shop_queue, warehouse_queue = "shop.shipment-dispatched", "warehouse.order-placed"
    assert set(queues.EVENT_QUEUE_NAMES) == {shop_queue, warehouse_queue}
    with Connection(broker.url) as conn:
        channel = conn.channel()
        channel.basic_consume(shop_queue, callback=lambda message: None)
        response = client.get(url)
        assert response.status_code == 503
        down = response.json()["down"][0]
        assert warehouse_queue in down and shop_queue not in down

        other = conn.channel()
        other.basic_consume(warehouse_queue, callback=lambda message: None)
        assert client.get(url).status_code == 200
    assert client.get(url).status_code == 503  # both consumers gone with their connection

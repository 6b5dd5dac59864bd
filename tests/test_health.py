"""Health endpoints answer 503 and name what is down when the broker or the workers are."""

import pytest
from django.urls import reverse
from kombu import Connection

from config import queues

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

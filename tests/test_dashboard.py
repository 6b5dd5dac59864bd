"""The operations dashboard and the demo controls, on the real broker."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone
from django_celery_results.models import TaskResult

from demo.smtp_sink import read_controls
from jobs import dashboard
from jobs.tasks import noop
from testkit.processes import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def staff_client(client):
    client.force_login(get_user_model().objects.create_superuser("boss", "b@example.com", "pw"))
    return client


def test_the_dashboard_shows_queue_depths_workers_and_the_last_hour(
    staff_client, broker, smtp_sink, start_worker
):
    for i in range(3):
        noop.delay(f"waiting-{i}")
    TaskResult.objects.create(task_id="ok-1", status="SUCCESS")
    TaskResult.objects.create(task_id="bad-1", status="FAILURE")
    TaskResult.objects.create(task_id="old", status="SUCCESS")
    TaskResult.objects.filter(task_id="old").update(date_done=timezone.now() - timedelta(hours=2))

    rows = {row.name: row for row in dashboard.queue_rows()}
    assert (rows["emails"].ready, rows["emails"].consumers, rows["emails"].dead) == (3, 0, 0)
    # The warehouse is not running in this test: its queue shows no consumer.
    warehouse = rows["warehouse.order-placed"]
    assert (warehouse.kind, warehouse.consumers) == ("events", 0)
    assert rows["shop.shipment-dispatched"].kind == "events"
    buckets = dashboard.throughput()
    assert sum(b["succeeded"] for b in buckets) == 1 and sum(b["failed"] for b in buckets) == 1

    worker = start_worker(queues=("maintenance",), concurrency=1)
    page = staff_client.get(reverse("jobs:dashboard")).content.decode()
    assert worker.nodename in page
    assert "warehouse.order-placed" in page
    assert 'http-equiv="refresh"' in page
    assert "1 failed" in page and "<svg" in page


def test_staff_only(client, broker):
    assert client.get(reverse("jobs:dashboard")).status_code == 302
    assert client.get(reverse("demo:demo_controls")).status_code == 302


def test_demo_controls_turn_the_sink_flood_and_poison(staff_client, broker, settings, tmp_path):
    settings.SMTP_SINK_CONTROL = tmp_path / "sink.json"
    settings.DEBUG = True  # the demo's controls exist only in the demo
    url = reverse("demo:demo_controls")

    staff_client.post(url, {"action": "sink", "latency": "0.5", "fail_rate": "0.3"})
    assert read_controls(settings.SMTP_SINK_CONTROL)["fail_rate"] == 0.3
    response = staff_client.post(url, {"action": "sink", "latency": "-1", "fail_rate": "7"})
    assert (
        response.status_code == 200 and read_controls(settings.SMTP_SINK_CONTROL)["latency"] == 0.5
    )

    staff_client.post(url, {"action": "flood", "count": "250", "seconds_each": "0"})
    wait_for(lambda: broker.depth("emails") == 250, timeout=10, message="the flood")
    [filler] = broker.peek("emails", limit=1)
    assert filler["properties"]["priority"] == 1

    staff_client.post(url, {"action": "poison"})
    wait_for(lambda: broker.depth("maintenance") == 1, timeout=10, message="the pill")

    settings.DEBUG = False
    assert staff_client.get(url).status_code == 404

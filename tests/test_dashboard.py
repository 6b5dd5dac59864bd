"""The operations dashboard and the demo controls, on the real broker."""

import re
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone
from django_celery_results.models import TaskResult

from demo.smtp_sink import read_controls
from demo.subscribers import seed_subscribers
from jobs import dashboard, outbox
from jobs.models import Job
from jobs.tasks import noop
from notifications import newsletters
from notifications.models import Newsletter
from notifications.tasks import publish_chunks
from shop import services as shop_services
from suppliers import services as supplier_services
from suppliers.models import Supplier
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
    # Fillers published without a job row: they wait, but nobody wrote down since when.
    assert rows["emails"].oldest_wait_seconds is None and rows["emails"].waits_untracked
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
    assert "untracked" in queue_row_html(page, "emails")
    assert 'http-equiv="refresh"' not in page, "the page updates its panels, it does not reload"
    assert "1 failed" in page and "<svg" in page


def test_every_queue_where_jobs_wait_shows_how_long_the_oldest_has_waited(
    staff_client, broker, monkeypatch
):
    # No worker runs: what is asked for waits. On integrations, a supplier fetch asked for
    # while the broker was away: in the outbox. (First: a pooled connection opened before the
    # cut would be left broken for the next test.)
    supplier = Supplier.objects.create(name="Acme", base_url="http://127.0.0.1:9/")
    broker.proxy.cut()
    try:
        supplier_services.request_fetch(supplier)
    finally:
        broker.proxy.restore()
    assert Job.objects.get(kind="supplier_prices").state == Job.State.PENDING
    monkeypatch.setattr(outbox, "_broker_failed_until", 0.0)  # as if the breaker had cooled
    # On emails, a newsletter's chunks, planned and published as its planner does (its
    # recipients are no jobs: its chunks are).
    seed_subscribers(60)
    newsletter = Newsletter.objects.create(
        subject="Winter sale", body="Mugs!", state=Newsletter.State.QUEUED
    )
    newsletters.plan_newsletter(newsletter.pk, chunk_size=25)
    assert publish_chunks(newsletter.pk) == 3
    # On reports, a sales report asked for and published.
    today = timezone.localdate()
    shop_services.request_sales_report(today - timedelta(days=7), today, requested_by=None)
    # On media, a job whose retry was due 30 s ago; on maintenance, one whose retry is not due.
    now = timezone.now()
    for task_name, due in [
        ("media_jobs.make_renditions", now - timedelta(seconds=30)),
        ("demo.poison_pill", now + timedelta(minutes=5)),
    ]:
        Job.objects.create(
            key=f"{task_name}:1", kind=task_name, task_name=task_name, task_id=task_name,
            state=Job.State.RETRYING, next_retry_at=due, created_at=now - timedelta(hours=1),
        )  # fmt: skip

    chunks = Job.objects.filter(kind="newsletter_chunk")
    first_chunk_queued = min(chunks.values_list("queued_at", flat=True))
    at_least = (timezone.now() - first_chunk_queued).total_seconds()
    rows = {row.name: row for row in dashboard.queue_rows()}
    at_most = (timezone.now() - first_chunk_queued).total_seconds()

    ages = {name: row.oldest_wait_seconds for name, row in rows.items() if row.kind == "jobs"}
    assert {name for name, age in ages.items() if age is not None} == {
        "emails", "reports", "integrations", "media",
    }  # fmt: skip
    assert rows["emails"].ready == chunks.count() == 3
    assert at_least <= ages["emails"] <= at_most, "the age of the oldest chunk"
    assert 30 <= ages["media"] < 3600, "since the retry was due, not since the job was made"
    assert ages["maintenance"] is None, "a retry not due yet is not waiting"

    page = staff_client.get(reverse("jobs:dashboard")).content.decode()
    for name in ("emails", "reports", "integrations", "media"):
        assert re.search(r">\d+ s<", queue_row_html(page, name)), name
    assert "\N{EN DASH}" in queue_row_html(page, "maintenance")


def test_the_workers_panel_lists_each_worker_with_its_queues(broker, smtp_sink, start_worker):
    emails = start_worker(queues=("emails",), concurrency=1)
    media = start_worker(queues=("media",), concurrency=1)
    rows = dashboard.queue_rows()
    assert dashboard.consumers_on_work_queues(rows) == 2

    panel = dashboard.workers(expected=2)
    assert [(name, served) for name, served, _running in panel] == sorted(
        [(emails.nodename, ["emails"]), (media.nodename, ["media"])]
    )
    # No consumer counted (the broker did not answer, say): no broadcast, nobody is listed.
    assert dashboard.workers(expected=0) == []


def queue_row_html(page, queue):
    """The dashboard's table row of `queue`."""
    [row] = re.findall(rf"<tr>\s*<td>{re.escape(queue)}\b.*?</tr>", page, re.DOTALL)
    return row


def test_the_chart_paints_succeeded_green_and_failed_red_on_round_axes():
    start = timezone.now().replace(second=0, microsecond=0)
    counts = [(0, 0), (13, 2), (4, 0), (0, 1)] + [(1, 0)] * 8  # an hour of 5-minute buckets
    buckets = [
        {"start": start + timedelta(minutes=5 * i), "succeeded": ok, "failed": bad}
        for i, (ok, bad) in enumerate(counts)
    ]
    svg = ET.fromstring(dashboard.bars_svg(buckets))

    rects = svg.findall("rect")
    assert len(rects) == 2 * len(buckets)
    fills = {(r.get("class"), r.get("fill")) for r in rects}
    assert fills == {("succeeded", "#16a34a"), ("failed", "#dc2626")}
    # The site's stylesheet paints `.chart .bar` blue, over any fill attribute.
    assert not any("bar" in r.get("class").split() for r in rects)

    # The y-axis: round counts from 0 to at least the tallest stack (13 + 2), with gridlines.
    y_labels = {t.text: float(t.get("y")) for t in svg.iter("text") if "y-axis" in t.get("class")}
    assert list(y_labels) == ["0", "5", "10", "15"]
    assert len(svg.findall("line")) == 4
    # The tallest stack, failed on succeeded, reaches the line of 15 from the line of 0.
    succeeded, failed = rects[2], rects[3]
    bottom = float(succeeded.get("y")) + float(succeeded.get("height"))
    assert bottom == pytest.approx(y_labels["0"], abs=0.1)
    assert float(failed.get("y")) + float(failed.get("height")) == pytest.approx(
        float(succeeded.get("y")), abs=0.1
    )
    assert float(failed.get("y")) == pytest.approx(y_labels["15"], abs=0.1)

    # The x-axis: the time of every third bucket, a quarter of an hour apart.
    x_labels = [t.text for t in svg.iter("text") if "x-axis" in t.get("class")]
    assert x_labels == [timezone.localtime(b["start"]).strftime("%H:%M") for b in buckets[::3]]


@pytest.mark.parametrize(
    "peak, ticks",
    [
        (0, [0, 1]),
        (1, [0, 1]),
        (4, [0, 1, 2, 3, 4]),
        (13, [0, 5, 10, 15]),
        (2579, [0, 1000, 2000, 3000]),
    ],
)
def test_the_y_axis_counts_in_round_steps_up_to_the_peak(peak, ticks):
    assert dashboard.count_ticks(peak) == ticks


def test_the_page_swaps_in_its_panels_from_the_partial_answer(staff_client, broker):
    url = reverse("jobs:dashboard")
    noop.delay("waiting")
    page = staff_client.get(url).content.decode()
    assert re.search(rf'id="dashboard-panels" data-url="{re.escape(url)}\?partial=1"', page)
    assert f'<a href="{url}">refresh</a>' in page, "without JavaScript, a link"

    response = staff_client.get(url, {"partial": "1"})
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    panels = response.content.decode()
    assert "<html" not in panels and "<script" not in panels and "<h1" not in panels
    assert ">Queues</h2>" in panels and ">Workers</h2>" in panels and "<svg" in panels
    assert re.search(r"<td class=\"num\">1</td>", queue_row_html(panels, "emails")), "waiting"
    # The page holds the same panels, once.
    assert page.count(">Queues</h2>") == 1 and ">Queues</h2>" in page

    for odd in ("0", "yes", "1; DROP TABLE", ""):
        response = staff_client.get(url, {"partial": odd})
        assert response.status_code == 200 and b"<html" in response.content, odd


def test_staff_only(client, broker):
    assert client.get(reverse("jobs:dashboard")).status_code == 302
    assert client.get(reverse("jobs:dashboard"), {"partial": "1"}).status_code == 302
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

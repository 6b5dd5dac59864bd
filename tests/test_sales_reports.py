"""Sales reports without a broker: the plain functions, the service, the pages, the seeding."""

import csv
import io
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError
from django.db.models import Count, QuerySet
from django.urls import reverse
from django.utils import timezone

from config.celery import app as celery_app
from config.queues import REPORTS
from demo.order_history import HISTORY_DAYS
from jobs.errors import PermanentError, TransientError
from jobs.models import Job
from shop import report_charts, reports, services
from shop.models import Order, OrderLine, Product, SalesReport
from shop.tasks import build_scheduled_sales_report
from tests.flows import route_of

pytestmark = pytest.mark.django_db

SVG = "{http://www.w3.org/2000/svg}"
TODAY = timezone.localdate


@pytest.fixture(autouse=True)
def media(media_root):
    return media_root


@pytest.fixture
def mug():
    return Product.objects.create(name="Mug", slug="mug", price=Decimal("12.50"))


@pytest.fixture
def lamp():
    return Product.objects.create(name="Lamp", slug="lamp", price=Decimal("79.99"))


def place(day, *lines, customer="Ada Lovelace", hour=12):
    """An order placed on `day` at `hour` (shop time) with lines [(product, quantity), ...]."""
    order = Order.objects.create(customer_name=customer, email="ada@example.com")
    placed_at = datetime.combine(day, time(hour), tzinfo=timezone.get_current_timezone())
    Order.objects.filter(pk=order.pk).update(created_at=placed_at)
    OrderLine.objects.bulk_create(
        OrderLine.of(product, quantity, order=order) for product, quantity in lines
    )
    return order


def new_report(date_from, date_to):
    return SalesReport.objects.create(date_from=date_from, date_to=date_to)


def csv_rows(report):
    with report.csv_file.open("rb") as f:
        return list(csv.DictReader(io.StringIO(f.read().decode("utf-8"))))


def line_totals_by_order(date_from, date_to):
    """What the database says each order in the range is worth, added up line by line."""
    start, end = reports.day_bounds(date_from, date_to)
    totals = defaultdict(Decimal)
    for order_id, price, quantity in OrderLine.objects.filter(
        order__created_at__gte=start, order__created_at__lt=end
    ).values_list("order_id", "unit_price", "quantity"):
        totals[order_id] += price * quantity
    return dict(totals)


def csv_totals_by_order(rows):
    totals = defaultdict(Decimal)
    for row in rows:
        assert Decimal(row["unit_price"]) * int(row["quantity"]) == Decimal(row["line_total"])
        totals[int(row["order"])] += Decimal(row["line_total"])
    return dict(totals)


# --- reports.py -------------------------------------------------------------------------------


def test_csv_sums_match_the_orders_of_the_range(mug, lamp):
    monday = date(2026, 3, 2)
    place(monday, (mug, 2), (lamp, 1))
    place(monday, (mug, 1), hour=23)
    place(monday + timedelta(days=2), (lamp, 3), customer="=HYPERLINK(evil)")
    place(monday - timedelta(days=1), (lamp, 9), hour=23)  # the evening before: not in it
    place(monday + timedelta(days=3), (mug, 9), hour=0)  # the night after: not in it
    report = new_report(monday, monday + timedelta(days=2))

    reports.write_sales_report(report, chunk_size=2)  # several chunks, even on four orders

    rows = csv_rows(report)
    expected = line_totals_by_order(report.date_from, report.date_to)
    assert len(expected) == 3
    assert csv_totals_by_order(rows) == expected
    assert report.revenue == sum(expected.values()) == Decimal("357.46")
    assert (report.rows_done, report.order_count, report.units_sold) == (4, 3, 7)
    assert report.revenue_per_day == [
        ["2026-03-02", "117.49"],
        ["2026-03-03", "0.00"],
        ["2026-03-04", "239.97"],
    ]
    # A customer's name cannot become a formula in a spreadsheet.
    assert {row["customer"] for row in rows} == {"Ada Lovelace", "'=HYPERLINK(evil)"}
    assert report.csv_file.name.startswith("reports/")
    assert report.csv_file.name.endswith("/sales-2026-03-02-to-2026-03-04.csv")


def test_an_empty_range_makes_a_report_of_zeros(mug):
    place(date(2026, 3, 2), (mug, 1))
    report = new_report(date(2025, 1, 1), date(2025, 1, 3))
    calls = []

    reports.write_sales_report(report, progress=lambda done, total: calls.append((done, total)))

    assert csv_rows(report) == []
    with report.csv_file.open("rb") as f:
        assert f.read().decode().splitlines() == [",".join(reports.CSV_HEADER)]
    assert (report.rows_done, report.order_count, report.revenue) == (0, 0, Decimal("0.00"))
    assert [amount for _, amount in report.revenue_per_day] == ["0.00"] * 3
    assert reports.percent_of(*calls[-1]) == 100


def test_progress_is_reported_every_chunk_and_climbs_to_100(mug):
    for n in range(10):
        place(date(2026, 3, 2), (mug, 1), (mug, 2) if n % 2 else (mug, 1))
    report = new_report(date(2026, 3, 2), date(2026, 3, 2))
    calls = []

    reports.write_sales_report(
        report, progress=lambda done, total: calls.append((done, total)), chunk_size=3
    )

    percents = [reports.percent_of(done, total) for done, total in calls]
    assert calls[0] == (0, 20)
    assert percents == sorted(percents), "progress never goes back"
    assert any(0 < p < 100 for p in percents)
    assert percents[-1] == 100 and calls[-1] == (20, 20)
    assert len(calls) == 1 + 4 + 1  # the start, four chunks of orders, the end


def test_run_sales_report_keeps_the_row_up_to_date(mug):
    place(date(2026, 3, 2), (mug, 4))
    report = new_report(date(2026, 3, 2), date(2026, 3, 2))

    outcome = reports.run_sales_report(report.pk)

    report.refresh_from_db()
    assert report.state == SalesReport.State.DONE
    assert (report.percent, report.rows_done, report.rows_total) == (100, 1, 1)
    assert report.revenue == Decimal("50.00")
    assert report.started_at <= report.finished_at
    assert outcome == {
        "report": report.pk,
        "file": report.csv_file.name,
        "rows": 1,
        "orders": 1,
        "revenue": "50.00",
    }


def test_a_missing_report_is_a_permanent_error():
    with pytest.raises(PermanentError, match="does not exist"):
        reports.run_sales_report(424242)


def test_storage_that_cannot_be_written_is_a_transient_error(mug, settings, tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    settings.MEDIA_ROOT = tmp_path / "a-file" / "media"
    place(date(2026, 3, 2), (mug, 1))
    report = new_report(date(2026, 3, 2), date(2026, 3, 2))

    with pytest.raises(TransientError, match="could not write the report file"):
        reports.write_sales_report(report)


def test_the_report_shows_what_the_job_runner_decided(mug):
    report = new_report(date(2026, 3, 2), date(2026, 3, 2))
    job = Job(key="sales_report:x", state=Job.State.RETRYING, last_error="disk full")
    reports.record_setback(report.pk, job)
    report.refresh_from_db()
    assert (report.state, report.error, report.is_active) == ("retrying", "disk full", True)

    job.state, job.last_error = Job.State.FAILED, "gave up after 3 attempts: disk full"
    reports.record_setback(report.pk, job)
    report.refresh_from_db()
    assert (report.state, report.error) == ("failed", "gave up after 3 attempts: disk full")
    assert report.finished_at is not None


def test_the_chart_is_valid_svg_with_one_bar_per_day():
    revenue_per_day = [
        ["2026-03-01", "120.00"],
        ["2026-03-02", "0.00"],
        ["2026-03-03", "870.40"],
        ["2026-03-04", "35.10"],
    ]

    svg = ET.fromstring(report_charts.revenue_chart_svg(revenue_per_day))

    assert svg.tag == f"{SVG}svg" and svg.get("role") == "img"
    assert "$1,025.50 in total" in svg.get("aria-label")
    bars = [el for el in svg.iter(f"{SVG}rect") if el.get("class") == "bar"]
    assert len(bars) == 4
    heights = [float(bar.get("height")) for bar in bars]
    assert heights[1] == 0 and max(heights) == heights[2]
    assert heights[0] / heights[2] == pytest.approx(120 / 870.40, rel=0.01)
    assert [bar.find(f"{SVG}title").text for bar in bars][2] == "Tue 3 Mar 2026: $870.40"
    labels = [el.text for el in svg.iter(f"{SVG}text")]
    assert "$1k" in labels and "$0" in labels  # round gridlines up to above the best day


def test_the_chart_of_a_report_without_sales_says_so():
    svg = ET.fromstring(report_charts.revenue_chart_svg([["2026-03-01", "0.00"]]))
    assert "No sales in this period" in [el.text for el in svg.iter(f"{SVG}text")]


def test_the_chart_of_a_year_stays_a_chart():
    start = date(2025, 1, 1)
    days = [[str(start + timedelta(days=n)), f"{n % 50}.00"] for n in range(366)]
    svg = ET.fromstring(report_charts.revenue_chart_svg(days))
    assert sum(1 for el in svg.iter(f"{SVG}rect") if el.get("class") == "bar") == 366
    dates = [el.text for el in svg.iter(f"{SVG}text") if el.get("text-anchor") == "middle"]
    assert len(dates) <= report_charts.MAX_DATE_LABELS


# --- The service ------------------------------------------------------------------------------


def test_asking_again_while_a_report_runs_reuses_it(admin_user, django_capture_on_commit_callbacks):
    day = TODAY() - timedelta(days=1)
    with django_capture_on_commit_callbacks() as published:
        first, reused_first = services.request_sales_report(day, day, admin_user)
        SalesReport.objects.filter(pk=first.pk).update(state=SalesReport.State.RUNNING)
        again, reused_again = services.request_sales_report(day, day, admin_user)
    assert (reused_first, reused_again) == (False, True)
    assert again == first
    assert len(published) == 1
    job = Job.objects.get()
    assert (job.key, job.subject, job.task_name) == (
        f"sales_report:{first.pk}",
        f"salesreport:{first.pk}",
        "shop.build_sales_report",
    )

    other, reused = services.request_sales_report(day - timedelta(days=1), day, admin_user)
    assert not reused and other != first

    SalesReport.objects.filter(pk=first.pk).update(state=SalesReport.State.DONE)
    fresh, reused = services.request_sales_report(day, day, admin_user)
    assert not reused and fresh != first, "a finished report is not reused: data may have changed"


def test_losing_the_race_for_a_range_returns_the_winner(monkeypatch):
    winner = new_report(date(2026, 3, 1), date(2026, 3, 2))
    # As if the other request had not committed yet when this one looked for it.
    monkeypatch.setattr(QuerySet, "first", lambda self: None)

    report, created = reports.find_or_create_report(date(2026, 3, 1), date(2026, 3, 2))

    assert (report, created) == (winner, False)
    assert SalesReport.objects.count() == 1


def test_the_database_refuses_two_active_reports_of_one_range():
    new_report(date(2026, 3, 1), date(2026, 3, 2))
    with pytest.raises(IntegrityError):
        new_report(date(2026, 3, 1), date(2026, 3, 2))


def test_the_scheduled_task_builds_yesterdays_report_once(mug):
    yesterday = TODAY() - timedelta(days=1)
    place(yesterday, (mug, 2))

    first = build_scheduled_sales_report.apply().get()
    second = build_scheduled_sales_report.apply().get()

    report = SalesReport.objects.get()
    assert (report.date_from, report.date_to) == (yesterday, yesterday)
    assert report.scheduled and report.requested_by is None
    assert report.state == SalesReport.State.DONE and report.revenue == Decimal("25.00")
    assert first == second
    assert Job.objects.get(key=f"sales_report:{report.pk}").attempts == 1


def test_reports_run_on_the_reports_queue_and_daily_at_one(settings):
    assert route_of("shop.build_sales_report")["queue"] == REPORTS
    assert route_of("shop.build_scheduled_sales_report")["queue"] == REPORTS
    for name in ("shop.build_sales_report", "shop.build_scheduled_sales_report"):
        task = celery_app.tasks[name]
        assert task.soft_time_limit >= 600 and task.time_limit > task.soft_time_limit
    daily = settings.CELERY_BEAT_SCHEDULE["daily-sales-report"]
    assert daily["task"] == "shop.build_scheduled_sales_report"
    assert (daily["schedule"].hour, daily["schedule"].minute) == ({1}, {0})


# --- The pages --------------------------------------------------------------------------------


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    client.force_login(user)
    return client


def test_report_pages_are_for_staff_only(client, django_user_model, mug):
    report = new_report(date(2026, 3, 2), date(2026, 3, 2))
    reports.run_sales_report(report.pk)
    urls = [
        reverse("reports:list"),
        reverse("reports:detail", args=[report.pk]),
        reverse("reports:download", args=[report.pk]),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url
    response = client.post(urls[0], {"date_from": "2026-03-01", "date_to": "2026-03-02"})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]

    customer = django_user_model.objects.create_user("customer", password="pw")
    client.force_login(customer)
    for url in urls:
        assert "/admin/login/" in client.get(url)["Location"], url
    assert SalesReport.objects.count() == 1


@pytest.mark.parametrize(
    ("date_from", "date_to", "error"),
    [
        ("yesterday", "2026-03-02", "Enter a date"),
        ("2026-02-30", "2026-03-02", "Enter a date"),
        ("", "", "This field is required"),
        ("2026-03-05", "2026-03-02", "on or after the start date"),
        ("2024-01-01", "2025-12-31", "at most 366 days"),
        ("2026-03-02", "9999-12-31", "cannot end in the future"),
        ("<script>", "2026-03-02'--", "Enter a date"),
    ],
)
def test_garbage_dates_give_form_errors(staff_client, date_from, date_to, error):
    response = staff_client.post(
        reverse("reports:list"), {"date_from": date_from, "date_to": date_to}
    )
    assert response.status_code == 200
    assert error in response.content.decode()
    assert "<script>" not in response.content.decode()
    assert not SalesReport.objects.exists()


def test_the_form_asks_for_a_report_and_lands_on_its_page(
    staff_client, django_capture_on_commit_callbacks
):
    page = staff_client.get(reverse("reports:list")).content.decode()
    assert "csrfmiddlewaretoken" in page and 'type="date"' in page

    day = str(TODAY() - timedelta(days=1))
    with django_capture_on_commit_callbacks() as published:
        response = staff_client.post(reverse("reports:list"), {"date_from": day, "date_to": day})
        again = staff_client.post(reverse("reports:list"), {"date_from": day, "date_to": day})

    report = SalesReport.objects.get()
    assert response["Location"] == again["Location"] == report.get_absolute_url()
    assert report.requested_by.username == "clerk"
    assert len(published) == 1

    page = staff_client.get(report.get_absolute_url()).content.decode()
    assert '<meta http-equiv="refresh" content="2">' in page
    assert '<progress class="report-progress" max="100" value="0"' in page
    assert "already on its way" in page  # the second request was told it reused the first


def test_a_finished_report_shows_its_figures_chart_and_download(staff_client, mug):
    place(date(2026, 3, 2), (mug, 2))
    report = new_report(date(2026, 3, 1), date(2026, 3, 2))
    reports.run_sales_report(report.pk)

    page = staff_client.get(report.get_absolute_url()).content.decode()
    assert "http-equiv" not in page
    assert "<svg" in page and page.count('class="bar"') == 2
    assert "$25.00" in page
    download_url = reverse("reports:download", args=[report.pk])
    assert download_url in page

    response = staff_client.get(download_url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == (
        'attachment; filename="sales-2026-03-01-to-2026-03-02.csv"'
    )
    body = b"".join(response.streaming_content).decode()
    assert body.splitlines()[1].endswith(",Mug,12.50,2,25.00")


def test_a_failed_report_shows_its_error_and_has_no_download(staff_client):
    report = new_report(date(2026, 3, 1), date(2026, 3, 2))
    SalesReport.objects.filter(pk=report.pk).update(
        state=SalesReport.State.FAILED, error="gave up after 3 attempts: disk <full>"
    )
    page = staff_client.get(report.get_absolute_url()).content.decode()
    assert "The report failed" in page
    assert "gave up after 3 attempts: disk &lt;full&gt;" in page
    assert "http-equiv" not in page
    assert staff_client.get(reverse("reports:download", args=[report.pk])).status_code == 404
    assert staff_client.get(reverse("reports:detail", args=[987654])).status_code == 404


def test_the_admin_lists_reports_read_only(admin_client, mug):
    report = new_report(date(2026, 3, 1), date(2026, 3, 2))
    reports.run_sales_report(report.pk)
    assert admin_client.get(reverse("admin:shop_salesreport_changelist")).status_code == 200
    page = admin_client.get(reverse("admin:shop_salesreport_change", args=[report.pk]))
    assert page.status_code == 200
    assert reverse("reports:download", args=[report.pk]) in page.content.decode()
    assert admin_client.get(reverse("admin:shop_salesreport_add")).status_code == 403


# --- seed_demo --orders -----------------------------------------------------------------------


def test_seed_demo_makes_an_order_history_without_emails(settings, mug, lamp):
    settings.DEBUG = True
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    out = io.StringIO()

    call_command(
        "seed_demo", "--products", "0", "--subscribers", "0", "--orders", "600", stdout=out
    )

    assert "600 orders of history added" in out.getvalue()
    assert Order.objects.count() == 600
    assert not Job.objects.exists(), "history sends no confirmation emails"
    lines_per_order = Order.objects.annotate(n=Count("lines")).values_list("n", flat=True)
    assert set(lines_per_order) <= {1, 2, 3, 4}
    placed = Order.objects.values_list("created_at", flat=True)
    days = {timezone.localtime(at).date() for at in placed}
    assert min(days) >= TODAY() - timedelta(days=HISTORY_DAYS) and max(days) < TODAY()
    assert len(days) > 120, "spread over the months, not piled on one day"
    assert Order.objects.filter(status=Order.Status.SHIPPED).count() > 500
    assert len(set(Order.objects.values_list("customer_name", flat=True))) > 100

    call_command(
        "seed_demo",
        "--products",
        "0",
        "--subscribers",
        "0",
        "--orders",
        "600",
        stdout=io.StringIO(),
    )
    assert Order.objects.count() == 600, "--orders tops the history up, it does not add again"
    with pytest.raises(CommandError):
        call_command("seed_demo", "--products", "0", "--orders", "-1", stdout=io.StringIO())

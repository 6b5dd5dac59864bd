"""Staff ask for a sales report, watch its progress bar, and download its CSV."""

import csv
import io
import random
from decimal import Decimal

import pytest

from demo.order_history import seed_order_history
from shop.models import Product, SalesReport
from shop.reports import CSV_HEADER
from tests.browser.servers import consumer_paused
from tests.browser.steps import JOB_TIMEOUT_MS, expect, log_in, make_staff

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def test_staff_watch_a_report_being_built_and_download_its_csv(
    page, worker, django_user_model, screenshot
):
    Product.objects.bulk_create(
        Product(name=f"Product {n}", slug=f"product-{n}", price=Decimal(f"{5 + 7 * n}.90"))
        for n in range(5)
    )
    # Orders over the last 20 days: all inside the form's default range, the last 30 days.
    lines = seed_order_history(300, random.Random(7), days=20)
    staff = make_staff(django_user_model)
    log_in(page, staff, then="/staff/reports/")

    # No worker takes reports for a moment: the page shows the report waiting, at 0%.
    with consumer_paused(worker, "reports"):
        page.get_by_role("button", name="Build the report").click()
        expect(page.locator(".messages")).to_contain_text("Your report is queued")
        bar = page.get_by_role("progressbar", name="Progress of the report")
        expect(bar).to_have_attribute("value", "0")
        expect(page.get_by_role("heading", name="Waiting for a worker")).to_be_visible()

    # The page refreshes itself until the report is done: the bar is full, the figures below.
    expect(page.locator("h1 .badge")).to_have_text("done", timeout=JOB_TIMEOUT_MS)
    expect(bar).to_have_attribute("value", "100")
    expect(page.locator(".progress-figures")).to_contain_text(f"{lines} of {lines} order lines")
    report = SalesReport.objects.get()
    assert report.percent == 100 and report.rows_done == report.rows_total == lines
    expect(page.locator(".figures")).to_contain_text(f"${report.revenue:,}")
    expect(page.locator(".figures li", has_text="orders")).to_contain_text("300")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download the CSV").click()
    download = download_info.value
    assert download.suggested_filename == report.download_name
    rows = list(csv.reader(io.StringIO(download.path().read_text(encoding="utf-8"))))
    assert rows[0] == CSV_HEADER
    assert len(rows) - 1 == lines, "one row per order line"
    line_totals = [Decimal(row[CSV_HEADER.index("line_total")]) for row in rows[1:]]
    assert sum(line_totals) == report.revenue
    assert len({row[0] for row in rows[1:]}) == report.order_count == 300
    screenshot("report-done")

"""Sales reports as plain functions: no Celery, no request.

- `write_sales_report(report, progress)` writes the CSV of a date range's order lines into the
  storage and works out the report's figures (totals, revenue per day) on the way;
- `run_sales_report(report_id)` is the job's work: the same, keeping the report's row (its
  progress, then its outcome) up to date for the pages that show it;
- `revenue_chart_svg(revenue_per_day)` draws revenue per day as an inline SVG bar chart.

Memory stays flat however long the range: orders are read a chunk at a time
(SALES_REPORT_CHUNK_SIZE orders), every row goes straight into a temporary file, and the only
thing kept is one sum per day.

Each chunk is its own short query ("the next 1,000 orders after order #k", keyset pagination)
rather than one `.iterator()` over the whole range. A query still being read holds a read
snapshot of the database, and on SQLite (our default) the connection holding it cannot write
once anyone else has committed: the progress updates would fail with "database is locked" the
moment a customer checks out. Short queries hold nothing between chunks, on any database.
"""

import csv
import io
import tempfile
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs.cancel import stop_if_cancelled
from jobs.errors import PermanentError, TransientError
from jobs.models import Job
from shop.models import Order, OrderLine, SalesReport

CSV_HEADER = ["order", "placed_at", "customer", "product", "unit_price", "quantity", "line_total"]
# A small report is written in memory; past this size the file rolls over to disk.
SPOOL_MAX_BYTES = 1024 * 1024
CENT = Decimal("0.01")


# --- Asking for a report ------------------------------------------------------------------------


def find_or_create_report(date_from, date_to, *, requested_by=None, scheduled=False):
    """The report of this range still queued or running, or a new one: (report, created)."""
    active = SalesReport.objects.filter(
        date_from=date_from, date_to=date_to, state__in=SalesReport.ACTIVE_STATES
    )
    report = active.first()
    if report:
        return report, False
    try:
        with transaction.atomic():  # a savepoint, so that losing the race below is harmless
            report = SalesReport.objects.create(
                date_from=date_from, date_to=date_to, requested_by=requested_by, scheduled=scheduled
            )
    except IntegrityError:
        # Someone asked for the same range a moment ago; the database's unique constraint on
        # active reports refused our copy. Theirs is the one to use.
        return active.get(), False
    return report, True


def daily_report(day):
    """The scheduled report of `day`: the one made for it already, whatever its state, else the
    report of that day someone is waiting for, else a new one.

    Asking twice for the same day (a redelivered beat message, "run now" in the admin) finds
    the same report, so the daily report is built once.
    """
    made = SalesReport.objects.filter(scheduled=True, date_from=day, date_to=day).first()
    if made:
        return made
    report, _ = find_or_create_report(day, day, scheduled=True)
    return report


# --- Building it --------------------------------------------------------------------------------


def run_sales_report(report_id):
    """The job's work: build report `report_id`, its row showing the progress all along.

    Returns the job's outcome: a few figures, JSON-able.
    """
    report = SalesReport.objects.filter(pk=report_id).first()
    if report is None:
        raise PermanentError(f"sales report {report_id} does not exist")
    # A report built again (its dead-lettered job replayed, say) replaces its earlier file.
    earlier_file = report.csv_file.name

    report.state = SalesReport.State.RUNNING
    report.started_at = timezone.now()
    report.error = ""
    report.save(update_fields=["state", "started_at", "error"])

    same_row = SalesReport.objects.filter(pk=report_id)

    def save_progress(rows_done, rows_total):
        # One small UPDATE per chunk: what the progress bar and the admin read.
        same_row.update(
            rows_done=rows_done, rows_total=rows_total, percent=percent_of(rows_done, rows_total)
        )

    write_sales_report(report, progress=save_progress)
    report.state = SalesReport.State.DONE
    report.percent = 100
    report.finished_at = timezone.now()
    report.save()

    if earlier_file and earlier_file != report.csv_file.name:
        report.csv_file.storage.delete(earlier_file)
    return {
        "report": report.pk,
        "file": report.csv_file.name,
        "rows": report.rows_done,
        "orders": report.order_count,
        "revenue": str(report.revenue),
    }


def record_setback(report_id, job):
    """Show on the report what the job runner decided when an attempt did not build it.

    The runner decides whether a failure is worth another attempt (jobs/runner.py); the report
    just says so: "retrying" with the reason, "failed" with it for good, or "cancelled".
    """
    if job.state == Job.State.RETRYING:
        state, finished_at, error = SalesReport.State.RETRYING, None, job.last_error
    elif job.state == Job.State.FAILED:
        state, finished_at, error = SalesReport.State.FAILED, timezone.now(), job.last_error
    elif job.state == Job.State.CANCELLED:
        state, finished_at = SalesReport.State.CANCELLED, job.finished_at
        error = f"cancelled by {job.cancelled_by}"
    else:
        return  # built, or this copy did not run it: another attempt holds the job
    SalesReport.objects.filter(pk=report_id).update(
        state=state, error=error, finished_at=finished_at
    )


def write_sales_report(report, progress=None, chunk_size=None):
    """Write the CSV of `report`'s date range to the storage and fill in its figures.

    The report row is not saved here: the file and the figures are set on `report`, and the
    caller saves it. `progress(rows_done, rows_total)` is called before the first row, after
    every chunk, and once at the end with rows_done == rows_total. Storage that cannot be
    written raises TransientError: a full disk or a storage service hiccup may pass.
    """
    progress = progress or (lambda rows_done, rows_total: None)
    chunk_size = chunk_size or settings.SALES_REPORT_CHUNK_SIZE
    start, end = day_bounds(report.date_from, report.date_to)
    # The total is counted first, for the progress bar; orders placed in the range while the
    # report runs can make the rows written a few more than that.
    rows_total = OrderLine.objects.filter(
        order__created_at__gte=start, order__created_at__lt=end
    ).count()
    per_day = {day: Decimal("0.00") for day in days_between(report.date_from, report.date_to)}
    rows_done = order_count = units_sold = 0

    progress(0, rows_total)
    try:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_BYTES) as spool:
            text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
            writer = csv.writer(text)
            writer.writerow(CSV_HEADER)
            for orders, lines in order_lines_in_chunks(start, end, chunk_size):
                # Cancelled: stop here, before the file is saved, so no half report is kept.
                stop_if_cancelled()
                for order_id, product, unit_price, quantity in lines:
                    placed_at, customer = orders[order_id]
                    line_total = unit_price * quantity
                    writer.writerow(
                        [
                            order_id,
                            f"{placed_at:%Y-%m-%d %H:%M:%S}",
                            spreadsheet_safe(customer),
                            spreadsheet_safe(product),
                            unit_price,
                            quantity,
                            line_total,
                        ]
                    )
                    per_day[placed_at.date()] += line_total
                    units_sold += quantity
                    rows_done += 1
                order_count += len({order_id for order_id, *_ in lines})
                progress(rows_done, max(rows_total, rows_done))
            text.flush()
            text.detach()  # the CSV is written: hand the bytes underneath to the storage
            spool.seek(0)
            report.csv_file.save(report.download_name, File(spool), save=False)
    except OSError as exc:
        raise TransientError(f"could not write the report file: {exc}") from exc
    progress(rows_done, rows_done)

    report.rows_total = report.rows_done = rows_done
    report.order_count = order_count
    report.units_sold = units_sold
    report.revenue = sum(per_day.values(), Decimal("0.00")).quantize(CENT)
    report.revenue_per_day = [
        [day.isoformat(), str(amount.quantize(CENT))] for day, amount in per_day.items()
    ]
    return report


def order_lines_in_chunks(start, end, chunk_size):
    """Yield (orders, lines) for the orders placed in [start, end), `chunk_size` orders at a time.

    `orders` maps each order id of the chunk to (local time placed, customer name); `lines` are
    their lines as (order_id, product_name, unit_price, quantity), in order. Two short queries
    per chunk: the next orders by id after the last one seen, then their lines.
    """
    in_range = Order.objects.filter(created_at__gte=start, created_at__lt=end).order_by("pk")
    last_pk = 0
    while True:
        chunk = in_range.filter(pk__gt=last_pk).values_list("pk", "created_at", "customer_name")
        orders = {
            pk: (timezone.localtime(created_at), customer)
            for pk, created_at, customer in chunk[:chunk_size]
        }
        if not orders:
            return
        last_pk = max(orders)
        lines = list(
            OrderLine.objects.filter(order_id__in=orders)
            .order_by("order_id", "pk")
            .values_list("order_id", "product_name", "unit_price", "quantity")
        )
        yield orders, lines


def day_bounds(date_from, date_to):
    """The moments the range starts and ends, in the shop's time zone: [start, end)."""
    zone = timezone.get_current_timezone()
    start = datetime.combine(date_from, time.min, tzinfo=zone)
    end = datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=zone)
    return start, end


def days_between(date_from, date_to):
    return [date_from + timedelta(days=n) for n in range((date_to - date_from).days + 1)]


def percent_of(rows_done, rows_total):
    if rows_total <= 0:
        return 100
    return min(100, rows_done * 100 // rows_total)


def spreadsheet_safe(text):
    """Text a customer typed, made unable to start a formula when the CSV is opened in a
    spreadsheet (CSV injection): a leading = + - @ is quoted with an apostrophe."""
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return f"'{text}"
    return text

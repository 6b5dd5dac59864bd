"""The shop's jobs: sales reports (shop/reports.py) and the order.placed event (shop/events.py).

A report a person asked for (`shop.build_sales_report`) goes before the scheduled one
(`shop.build_scheduled_sales_report`) on the `reports` queue. `shop.publish_order_placed`, on
the `integrations` queue, tells the warehouse service about a new order.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from config.queues import INTEGRATIONS, REPORTS
from jobs.declare import job
from jobs.models import Job
from jobs.topology import PRIORITY_HIGH, PRIORITY_NORMAL
from shop import events, reports

# A report over months of orders takes minutes, not seconds: long time limits, and few
# retries, since an attempt that ran out of time is likely to run out of time again. Both
# report jobs are one kind, keyed by the report: asked for and scheduled alike, one build each.
SALES_REPORT = {
    "kind": "sales_report",
    "label": "Sales report",
    "doing": "building",
    "done": "built",
    "queue": REPORTS,
    "soft_time_limit": settings.SALES_REPORT_SOFT_TIME_LIMIT,
    "time_limit": settings.SALES_REPORT_TIME_LIMIT,
    "max_retries": settings.SALES_REPORT_MAX_RETRIES,
    # Both keep the report's page in step with the job (run_report_job).
    "bind": True,
}


@job("shop.build_sales_report", priority=PRIORITY_HIGH, **SALES_REPORT)
def build_sales_report(task, report_id):
    """Build sales report `report_id` (its CSV, totals and revenue per day), once."""
    return run_report_job(task, report_id)


@job("shop.build_scheduled_sales_report", priority=PRIORITY_NORMAL, **SALES_REPORT)
def build_scheduled_sales_report(task, slot=None):
    """Celery beat, every night: build the report of the day before, requested by nobody.

    `slot` is the run's scheduled time (jobs/schedules.py): the day before *it* is reported,
    also when the message waited past midnight or is the catch-up of a night beat was down.
    Without it (sent by hand, "run now" in the admin), the day before today.

    The report is built right here rather than handed to `build_sales_report`, so that it keeps
    the lower priority of scheduled work. Beat sending it twice builds it once: the day's
    report is found again (reports.daily_report), and its job is already done.
    """
    today = datetime.fromisoformat(slot).date() if slot else timezone.localdate()
    report = reports.daily_report(today - timedelta(days=1))
    return run_report_job(task, report.pk)


def run_report_job(task, report_id):
    key = task.job_key(report_id)
    try:
        return task.run_once(key, lambda: reports.run_sales_report(report_id))
    finally:
        # The runner has recorded its decision on the job (retry later, give up, cancelled):
        # the report's page shows the same, with the reason.
        reports.record_setback(report_id, Job.objects.get(key=key))


@job(
    "shop.publish_order_placed",
    kind="order_placed",
    label="Sent to the warehouse",
    doing="sending",
    done="sent",
    queue=INTEGRATIONS,
    # A parcel waits on it, a supplier feed does not: the warehouse hears of an order first.
    priority=PRIORITY_HIGH,
    soft_time_limit=30,
    time_limit=40,
)
def publish_order_placed(order_id):
    """Tell the warehouse service about order `order_id` (the order.placed event), once.

    "Once" for the job; the event itself may reach RabbitMQ twice (a confirm lost on the way),
    with the same event id both times, which is how the warehouse recognises the copy.
    """
    return events.publish_order_placed(order_id)

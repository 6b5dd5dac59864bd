"""Sales report tasks: thin wrappers that run shop/reports.py as jobs on the `reports` queue.

Their queue and priority come from config/queues.py: a report a person asked for
(`shop.build_sales_report`) goes before the scheduled one (`shop.build_scheduled_sales_report`).

`shop.publish_order_placed`, on the `integrations` queue, tells the warehouse service about a
new order (shop/events.py).
"""

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from jobs.models import Job
from jobs.runner import JobTask
from shop import events, reports

# A report over months of orders takes minutes, not seconds: long time limits, and few
# retries, since an attempt that ran out of time is likely to run out of time again.
REPORT_TASK_OPTIONS = {
    "bind": True,
    "base": JobTask,
    "soft_time_limit": settings.SALES_REPORT_SOFT_TIME_LIMIT,
    "time_limit": settings.SALES_REPORT_TIME_LIMIT,
    "max_retries": settings.SALES_REPORT_MAX_RETRIES,
}


@shared_task(name="shop.build_sales_report", **REPORT_TASK_OPTIONS)
def build_sales_report(self, report_id):
    """Build sales report `report_id` (its CSV, totals and revenue per day), once."""
    return run_report_job(self, report_id)


@shared_task(name="shop.build_scheduled_sales_report", **REPORT_TASK_OPTIONS)
def build_scheduled_sales_report(self):
    """Celery beat, every night: build yesterday's report, requested by nobody.

    The report is built right here rather than handed to `build_sales_report`, so that it keeps
    the lower priority of scheduled work. Beat sending it twice builds it once: the day's
    report is found again (reports.daily_report), and its job is already done.
    """
    yesterday = timezone.localdate() - timedelta(days=1)
    report = reports.daily_report(yesterday)
    return run_report_job(self, report.pk)


def run_report_job(task, report_id):
    key = reports.SALES_REPORT.key(report_id)
    try:
        return task.run_once(key, lambda: reports.run_sales_report(report_id))
    except Exception:
        # The runner has recorded its decision on the job (retry later, or give up): the
        # report's page shows the same, with the reason.
        reports.record_setback(report_id, Job.objects.get(key=key))
        raise


@shared_task(
    bind=True,
    base=JobTask,
    name="shop.publish_order_placed",
    soft_time_limit=30,
    time_limit=40,
)
def publish_order_placed(self, order_id):
    """Tell the warehouse service about order `order_id` (the order.placed event), once.

    "Once" for the job; the event itself may reach RabbitMQ twice (a confirm lost on the way),
    with the same event id both times, which is how the warehouse recognises the copy.
    """
    key = events.ORDER_PLACED_EVENT.key(order_id)
    return self.run_once(key, lambda: events.publish_order_placed(order_id))

"""Writes for supplier feeds. Views, the admin and the schedule call these; nothing here knows
HTTP requests or Celery beyond asking for a job."""

from django.db import transaction

from jobs.models import Job
from jobs.outbox import enqueue_on_commit
from suppliers.models import FetchRun, Supplier

ACTIVE_JOB_STATES = (Job.State.PENDING, Job.State.QUEUED, Job.State.STARTED, Job.State.RETRYING)


def active_run(supplier):
    """The run of `supplier` still queued, fetching or retrying, if any."""
    return FetchRun.objects.filter(supplier=supplier, job__state__in=ACTIVE_JOB_STATES).first()


@transaction.atomic
def request_fetch(supplier, requested_by=None):
    """Ask for a fetch of `supplier`'s pages; returns (run, reused).

    While a run of the supplier is still on its way, asking again returns that run and asks
    for nothing new: "fetch now" pressed twice, or pressed while the schedule's run is going,
    fetches the pages once. The supplier's row is locked meanwhile, so two requests at the
    same moment cannot both start one. A run's state is its job's, so a run whose job died
    in any way (failed, dead-lettered) never blocks the next one.
    """
    Supplier.objects.select_for_update().filter(pk=supplier.pk).first()
    run = active_run(supplier)
    if run:
        return run, True
    run = FetchRun.objects.create(supplier=supplier, requested_by=requested_by)
    # By name: suppliers/tasks.py imports this module, for the schedule's tick.
    key = enqueue_on_commit("suppliers.fetch_supplier_prices", run.pk, subject=run)
    run.job = Job.objects.get(key=key)
    run.save(update_fields=["job"])
    return run, False


def start_scheduled_fetches():
    """A run for every active supplier with pages to follow (celery beat); returns the runs."""
    suppliers = Supplier.objects.filter(is_active=True, listings__is_active=True).distinct()
    return [request_fetch(supplier)[0] for supplier in suppliers]

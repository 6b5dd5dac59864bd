"""Supplier feed tasks: thin wrappers on the `integrations` queue (routes: config/queues.py).

`fetch_supplier_prices` is one run's job, run by the job runner (claim, retries with backoff,
dead letters); its work is suppliers/scraping.py. `fetch_all_suppliers` is celery beat's tick:
it only asks for runs, as a person pressing "fetch now" would.
"""

from celery import shared_task
from django.conf import settings

from jobs.runner import JobTask
from suppliers import scraping
from suppliers.jobs import SUPPLIER_FETCH


@shared_task(
    bind=True,
    base=JobTask,
    name="suppliers.fetch_supplier_prices",
    # A run sleeps between requests (the per-host limit): its time limit is set to cover
    # that. Cut short, it is retried and goes on from the pages it has done.
    soft_time_limit=settings.SUPPLIER_FETCH_SOFT_TIME_LIMIT,
    time_limit=settings.SUPPLIER_FETCH_TIME_LIMIT,
)
def fetch_supplier_prices(self, run_id):
    """Fetch the pages of supplier run `run_id` and update the catalog, once."""
    return self.run_once(SUPPLIER_FETCH.key(run_id), lambda: scraping.run_fetch(run_id))


@shared_task(name="suppliers.fetch_all_suppliers", soft_time_limit=60, time_limit=90)
def fetch_all_suppliers():
    """Periodic (celery beat): a fetch run for every active supplier.

    A tick sent twice asks twice, and the second finds the runs already on their way.
    """
    from suppliers import services  # services import this module for its task

    return [run.pk for run in services.start_scheduled_fetches()]

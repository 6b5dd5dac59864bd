"""Supplier feed jobs, on the `integrations` queue.

`fetch_supplier_prices` is one run's job (claim, retries with backoff, dead letters); its work is
suppliers/scraping.py. `fetch_all_suppliers` is celery beat's tick, not a job: it only asks for
runs, as a person pressing "fetch now" would (its route: config/queues.py).
"""

from celery import shared_task
from django.conf import settings

from config.queues import INTEGRATIONS
from jobs.declare import job
from suppliers import scraping, services


@job(
    "suppliers.fetch_supplier_prices",
    kind="supplier_prices",  # one job per run of a supplier: see scraping.py for why not per page
    label="Supplier fetch",
    doing="fetching",
    done="fetched",
    queue=INTEGRATIONS,
    # A run sleeps between requests (the per-host limit): its time limit is set to cover
    # that. Cut short, it is retried and goes on from the pages it has done.
    soft_time_limit=settings.SUPPLIER_FETCH_SOFT_TIME_LIMIT,
    time_limit=settings.SUPPLIER_FETCH_TIME_LIMIT,
)
def fetch_supplier_prices(run_id):
    """Fetch the pages of supplier run `run_id` and update the catalog, once."""
    return scraping.run_fetch(run_id)


@shared_task(name="suppliers.fetch_all_suppliers", soft_time_limit=60, time_limit=90)
def fetch_all_suppliers():
    """Periodic (celery beat): a fetch run for every active supplier.

    A tick sent twice asks twice, and the second finds the runs already on their way.
    """
    return [run.pk for run in services.start_scheduled_fetches()]

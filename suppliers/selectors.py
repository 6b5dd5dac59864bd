"""Reads for the supplier pages."""

from django.db.models import Count, Q

from suppliers.models import FetchRun, PriceChange, Supplier
from suppliers.services import ACTIVE_JOB_STATES

RECENT_RUNS = 20
RECENT_CHANGES = 30


def recent_runs(limit=RECENT_RUNS):
    return list(FetchRun.objects.select_related("supplier", "job", "requested_by")[:limit])


def recent_changes(limit=RECENT_CHANGES):
    return list(PriceChange.objects.select_related("product", "run__supplier")[:limit])


def suppliers_with_listing_counts():
    return Supplier.objects.annotate(
        pages=Count("listings", filter=Q(listings__is_active=True))
    ).order_by("name")


def any_active(runs):
    return any(run.job and run.job.state in ACTIVE_JOB_STATES for run in runs)

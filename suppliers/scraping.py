"""A supplier run, the job's work: read each listed page, update the catalog, record changes.

The unit of work is one job per run that walks the supplier's pages one after another:
- requests to one host go one at a time anyway (the per-host limit, jobs/throttle.py): jobs per
  page would only queue up on the limiter, each holding a worker process while it sleeps;
- robots.txt is read once per attempt, not once per page;
- the run has one state and one outcome that staff can read ("1 of 24 pages failed: ...").
What a job per page would give, that a failing page does not lose the others' updates, comes
from a checkpoint per page instead: each page is applied in its own transaction together with
its PageResult, and the run's next attempt (a retry, a redelivery, a replay) skips the pages
already done. So:
- a page that no longer parses (changed layout), is gone or moved is recorded as failed and the
  walk goes on; at the end the run fails with a PermanentError naming those pages, so the job
  is dead-lettered, and the other pages' updates are kept;
- a transient fault (refused connection, timeout, 5xx, 429) stops the walk: a host that
  struggles is left alone rather than hit with the remaining pages, and the job runner retries
  the run with backoff, which goes on where it stopped;
- a redelivered or duplicated run finds its pages done and records nothing twice (guarded by
  the database as well: one PriceChange and one PageResult per run and page).
"""

import logging

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from jobs.cancel import stop_if_cancelled
from jobs.errors import PermanentError, TransientError
from shop.models import Product
from suppliers.fetching import PageFailed, SupplierClient
from suppliers.models import FetchRun, PageResult, PriceChange, SupplierListing
from suppliers.parsing import ParseError, parse_product_page

logger = logging.getLogger(__name__)

Outcome = PageResult.Outcome
# How many failed pages the job's error names for each reason; the run's page lists them all.
PAGES_NAMED = 3


def run_fetch(run_id, client_class=SupplierClient):
    """Fetch the pages of run `run_id` not done yet; returns the run's figures (JSON-able).

    Raises TransientError to be tried again later, PermanentError if pages failed for good.
    """
    run = FetchRun.objects.select_related("supplier").filter(pk=run_id).first()
    if run is None:
        raise PermanentError(f"fetch run {run_id} does not exist")
    listings = list(
        run.supplier.listings.filter(is_active=True).select_related("supplier").order_by("path")
    )
    done = set(run.pages.filter(outcome__in=PageResult.DONE).values_list("listing_id", flat=True))
    to_fetch = [listing for listing in listings if listing.pk not in done]
    FetchRun.objects.filter(pk=run.pk).update(pages_total=len(listings))
    if to_fetch:
        with client_class(run.supplier.base_url) as client:
            client.read_robots()
            for listing in to_fetch:
                # Cancelled by staff: stop between pages; the pages done so far are kept.
                stop_if_cancelled()
                try:
                    fetch_listing(run, listing, client)
                finally:
                    count_pages(run)  # the staff page follows the run page by page

    failed = list(run.pages.filter(outcome=Outcome.FAILED))
    if failed:
        raise PermanentError(f"{len(failed)} of {len(listings)} page(s) failed: {why(failed)}")
    run.refresh_from_db()
    return {
        "run": run.pk,
        "pages": run.pages_total,
        "fetched": run.pages_fetched,
        "changed": run.pages_changed,
        "skipped": run.pages_skipped,
    }


def why(failed_pages):
    """The failed pages grouped by reason: "<url>, <url> and 3 more: <reason>; <url>: ..."."""
    pages_by_reason = {}
    for page in failed_pages:
        pages_by_reason.setdefault(page.detail, []).append(page.url)
    parts = []
    for reason, urls in pages_by_reason.items():
        named = ", ".join(urls[:PAGES_NAMED])
        if len(urls) > PAGES_NAMED:
            named += f" and {len(urls) - PAGES_NAMED} more"
        parts.append(f"{named}: {reason}")
    return "; ".join(parts)


def fetch_listing(run, listing, client):
    """Fetch, read and apply one page; record what happened. TransientError stops the walk."""
    url = listing.url
    if not client.allowed(url):
        record_page(run, listing, Outcome.DISALLOWED, "robots.txt disallows this page: not fetched")
        return
    try:
        page = client.get(url)
        found = parse_product_page(page.content)
    except TransientError as exc:
        record_page(run, listing, Outcome.RETRYING, str(exc))
        raise
    except PageFailed as exc:
        reason = str(exc).removeprefix(f"{url}: ")  # the page's URL is beside it
        record_page(run, listing, Outcome.FAILED, reason, status=exc.status)
        return
    except ParseError as exc:
        record_page(run, listing, Outcome.FAILED, str(exc), status=page.status)
        logger.warning("page %s of run %s does not parse: %s", url, run.pk, exc)
        return
    apply_listing(run, listing, found)


@transaction.atomic
def apply_listing(run, listing, found):
    """Bring the product in line with what its page says, and record the change if any.

    One transaction: the product, its PriceChange and the page's PageResult are written
    together or not at all, so a run cut short anywhere leaves every page either done or not.
    """
    product = Product.objects.select_for_update().get(pk=listing.product_id)
    if run.pages.filter(listing=listing, outcome__in=PageResult.DONE).exists():
        return  # another copy of this run got here first
    now = timezone.now()
    old_price, old_stock = product.price, product.stock
    changes = []
    if old_price != found.price:
        changes.append(f"price {old_price} → {found.price}")
    if old_stock != found.stock:
        changes.append(f"stock {'unknown' if old_stock is None else old_stock} → {found.stock}")
    if changes:
        Product.objects.filter(pk=product.pk).update(price=found.price, stock=found.stock)
        PriceChange.objects.create(
            product=product,
            listing=listing,
            run=run,
            old_price=old_price,
            new_price=found.price,
            old_stock=old_stock,
            new_stock=found.stock,
            at=now,
        )
    SupplierListing.objects.filter(pk=listing.pk).update(
        last_price=found.price, last_stock=found.stock, last_fetched_at=now
    )
    outcome = Outcome.CHANGED if changes else Outcome.UNCHANGED
    detail = ", ".join(changes) or f"price {found.price}, stock {found.stock}"
    record_page(run, listing, outcome, detail, status=200)


def record_page(run, listing, outcome, detail, status=None):
    PageResult.objects.update_or_create(
        run=run,
        listing=listing,
        defaults={
            "url": listing.url[:500],
            "outcome": outcome,
            "detail": detail,
            "http_status": status,
            "at": timezone.now(),
        },
    )


def count_pages(run):
    """Update the run's counters from its pages; returns the run as now saved."""
    counts = dict(run.pages.values_list("outcome").annotate(n=Count("pk")).order_by())
    FetchRun.objects.filter(pk=run.pk).update(
        pages_fetched=counts.get(Outcome.CHANGED, 0) + counts.get(Outcome.UNCHANGED, 0),
        pages_changed=counts.get(Outcome.CHANGED, 0),
        pages_failed=counts.get(Outcome.FAILED, 0) + counts.get(Outcome.RETRYING, 0),
        pages_skipped=counts.get(Outcome.DISALLOWED, 0),
    )
    return FetchRun.objects.get(pk=run.pk)

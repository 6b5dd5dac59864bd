"""The supplier price feed on the real thing: RabbitMQ, an `integrations` worker, and the local
supplier site as a process of its own, made slow, failing or redesigned through its knobs."""

import os
from itertools import pairwise

import pytest
from django.conf import settings
from django.urls import reverse

from jobs import throttle
from jobs.errors import TransientError
from jobs.models import Job, JobEvent
from shop.models import Product
from suppliers import services
from suppliers.fetching import SupplierClient
from suppliers.models import FetchRun, PageResult, PriceChange, Supplier, SupplierListing
from suppliers.scraping import run_fetch
from suppliers.tasks import fetch_all_suppliers, fetch_supplier_prices
from testkit.faults import free_port
from testkit.processes import wait_for
from tests.suppliers_site import SupplierSiteProcess

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

# The catalog the tests start from: slug, price, stock.
CATALOG = [("blue-mug", "12.50", None), ("desk-lamp", "79.00", 5), ("linen-towel", "12.00", None)]
# A worker that is quick to give up on a silent site, and spaces requests by 50 ms.
FAST = {
    "SUPPLIER_MIN_INTERVAL_SECONDS": "0.05",
    "SUPPLIER_CONNECT_TIMEOUT": "2",
    "SUPPLIER_READ_TIMEOUT": "2",
}


@pytest.fixture
def supplier_site(tmp_path):
    site = SupplierSiteProcess(
        port=free_port(),
        control=tmp_path / "supplier-site.json",
        env=dict(os.environ),
        log_path=tmp_path / "supplier-site.log",
    ).start()
    yield site
    site.stop()


@pytest.fixture
def supplier(supplier_site):
    """A supplier on the local site, whose pages of the three CATALOG products we follow."""
    supplier = Supplier.objects.create(name="Local Supplier", base_url=supplier_site.url)
    for slug, price, stock in CATALOG:
        product = Product.objects.create(name=slug, slug=slug, price=price, stock=stock)
        SupplierListing.objects.create(supplier=supplier, product=product, path=f"/products/{slug}")
    return supplier


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("buyer", is_staff=True))
    return client


@pytest.fixture
def fast_fetches(settings):
    """The same settings as FAST, for the fetches this process makes itself."""
    settings.SUPPLIER_MIN_INTERVAL_SECONDS = 0.05
    settings.SUPPLIER_READ_TIMEOUT = 0.3


def catalog():
    return {p.slug: (str(p.price), p.stock) for p in Product.objects.all()}


def changes():
    return {
        c.product.slug: (str(c.old_price), str(c.new_price), c.old_stock, c.new_stock)
        for c in PriceChange.objects.select_related("product")
    }


def wait_for_run(run, state, timeout=60):
    return wait_for(
        lambda: Job.objects.filter(pk=run.job_id, state=state).first(),
        timeout,
        message=f"fetch #{run.pk} to be {state}",
    )


def test_a_fetch_updates_prices_and_stock_and_records_each_change_once(
    staff_client, broker, supplier_site, supplier, start_worker
):
    supplier_site.sell("blue-mug", "13.75", 7)  # a new price, a stock
    supplier_site.sell("desk-lamp", "79.00", 5)  # as the catalog has it
    supplier_site.sell("linen-towel", "12.00", 0)  # sold out
    fetch_now = reverse("suppliers:fetch_now", args=[supplier.pk])
    response = staff_client.post(fetch_now)
    run = FetchRun.objects.get()
    assert response["Location"] == run.get_absolute_url()
    # Pressed again while it waits: the same run, nothing more asked for.
    assert staff_client.post(fetch_now)["Location"] == run.get_absolute_url()
    # The same message once more, as a redelivery would bring it.
    fetch_supplier_prices.apply_async(args=[run.pk], task_id=run.job.task_id)
    wait_for(lambda: broker.depth("integrations") == 2, message="two copies of the run")

    worker = start_worker(
        queues=("integrations",), concurrency=1, **{**FAST, "SUPPLIER_MIN_INTERVAL_SECONDS": "0.2"}
    )
    wait_for_run(run, Job.State.SUCCEEDED)
    wait_for(
        lambda: broker.depth("integrations") == 0 and worker.is_idle(),
        message="both copies to be processed",
    )

    assert catalog() == {
        "blue-mug": ("13.75", 7),
        "desk-lamp": ("79.00", 5),
        "linen-towel": ("12.00", 0),
    }
    assert changes() == {
        "blue-mug": ("12.50", "13.75", None, 7),
        "linen-towel": ("12.00", "12.00", None, 0),
    }
    run.refresh_from_db()
    assert (run.pages_total, run.pages_fetched, run.pages_changed, run.pages_failed) == (3, 3, 2, 0)
    for slug, _, _ in CATALOG:  # the second copy fetched nothing
        assert supplier_site.requests_to(f"/products/{slug}") == 1
    page = staff_client.get(run.get_absolute_url()).content.decode()
    assert "price 12.50 → 13.75, stock unknown → 7" in page
    assert "7 in stock" in staff_client.get("/products/blue-mug/").content.decode()

    # Nothing changed on the site since: a second run records nothing.
    staff_client.post(fetch_now)
    second = FetchRun.objects.exclude(pk=run.pk).get()
    wait_for_run(second, Job.State.SUCCEEDED)
    second.refresh_from_db()
    assert (second.pages_fetched, second.pages_changed) == (3, 0)
    assert PriceChange.objects.count() == 2
    assert f"#{second.pk}" in staff_client.get(reverse("suppliers:suppliers")).content.decode()
    # One request at a time, never closer than the per-host interval (0.2 s; what the site
    # sees can be a little less than what the worker waited).
    arrivals = [at for _, at in supplier_site.arrivals()]
    assert min(b - a for a, b in pairwise(arrivals)) >= 0.1


def test_a_page_whose_layout_changed_fails_the_run_clearly_and_the_rest_is_kept(
    staff_client, broker, supplier_site, supplier, start_worker
):
    supplier_site.sell("blue-mug", "13.75", 7)
    supplier_site.sell("desk-lamp", "80.00", 5, layout="v2")  # redesigned
    supplier_site.sell("linen-towel", "15.00", 2)  # after it in the walk
    start_worker(queues=("integrations",), concurrency=1, **FAST)

    run, _ = services.request_fetch(supplier)
    job = wait_for_run(run, Job.State.FAILED)

    lamp = f"{supplier_site.url}products/desk-lamp"
    assert job.last_error.startswith(f"1 of 3 page(s) failed: {lamp}: no price on the page")
    assert job.attempts == 1, "a page that does not parse is not retried"
    [dead] = wait_for(lambda: broker.peek("integrations.dead"), message="a dead letter")
    assert dead["headers"]["id"] == job.task_id
    # The other pages' updates are kept, those after the failing page's too.
    assert catalog() == {
        "blue-mug": ("13.75", 7),
        "desk-lamp": ("79.00", 5),
        "linen-towel": ("15.00", 2),
    }
    assert set(changes()) == {"blue-mug", "linen-towel"}
    [failed] = PageResult.objects.filter(run=run, outcome=PageResult.Outcome.FAILED)
    assert failed.url == lamp
    assert (
        "has the page layout changed?" in staff_client.get(run.get_absolute_url()).content.decode()
    )


def test_a_failing_site_is_retried_with_backoff_and_the_run_then_succeeds(
    broker, supplier_site, supplier, start_worker
):
    for slug, price, _ in CATALOG:
        supplier_site.sell(slug, price, 3)
    supplier_site.set(fail_next=2)  # the next two product pages answer 503
    start_worker(queues=("integrations",), concurrency=1, **FAST)

    run, _ = services.request_fetch(supplier)
    job = wait_for_run(run, Job.State.SUCCEEDED)

    assert job.attempts == 3
    retries = job.events.filter(kind=JobEvent.Kind.RETRYING)
    assert [e.detail.split(";")[0] for e in retries] == [
        f"{supplier_site.url}products/blue-mug: HTTP 503 Service Unavailable"
    ] * 2
    assert {stock for _, stock in catalog().values()} == {3}
    assert len(changes()) == 3
    # A transient fault stops the walk: the pages after it wait for the next attempt.
    assert supplier_site.requests_to("/products/blue-mug") == 3
    assert supplier_site.requests_to("/products/desk-lamp") == 1


def test_robots_txt_is_honoured_disallowed_pages_are_never_fetched(
    broker, supplier_site, supplier, start_worker
):
    for slug, _, _ in CATALOG:
        supplier_site.sell(slug, "20.00", 1)
    supplier_site.set(disallow=["/products/linen-towel"], crawl_delay=1)
    start_worker(queues=("integrations",), concurrency=1, **FAST)

    run, _ = services.request_fetch(supplier)
    wait_for_run(run, Job.State.SUCCEEDED)

    assert supplier_site.requests_to("/products/linen-towel") == 0
    towel = PageResult.objects.get(run=run, listing__product__slug="linen-towel")
    assert towel.outcome == PageResult.Outcome.DISALLOWED
    assert "robots.txt disallows this page" in towel.detail
    assert catalog()["linen-towel"] == ("12.00", None)
    run.refresh_from_db()
    assert (run.pages_fetched, run.pages_skipped, run.pages_failed) == (2, 1, 0)
    # Crawl-delay: 1 outweighs our 50 ms: robots.txt, then a page a second.
    arrivals = [at for _, at in supplier_site.arrivals()]
    assert len(arrivals) == 3
    assert min(b - a for a, b in pairwise(arrivals)) >= 0.5


def test_a_run_cut_short_goes_on_where_it_stopped_and_records_nothing_twice(
    supplier_site, supplier, fast_fetches
):
    for slug, _, _ in CATALOG:
        supplier_site.sell(slug, "20.00", 1)
    supplier_site.sell("desk-lamp", "20.00", 1, status=503)  # failing, until we say
    run = FetchRun.objects.create(supplier=supplier)

    with pytest.raises(TransientError, match="desk-lamp: HTTP 503"):
        run_fetch(run.pk)
    assert set(changes()) == {"blue-mug"}
    supplier_site.sell("desk-lamp", "20.00", 1, status=None)
    outcome = run_fetch(run.pk)  # the next attempt, or a redelivery
    run_fetch(run.pk)  # and one more: it has nothing left to do

    assert outcome["fetched"] == 3
    assert set(changes()) == {"blue-mug", "desk-lamp", "linen-towel"}
    assert supplier_site.requests_to("/products/blue-mug") == 1
    assert supplier_site.requests_to("/products/desk-lamp") == 2


def test_timeouts_refusals_and_429_are_transient_and_429_holds_the_host_off(
    supplier_site, fast_fetches
):
    supplier_site.sell("blue-mug", "20.00", 1)
    page = f"{supplier_site.url}products/blue-mug"
    with SupplierClient(supplier_site.url) as client:
        supplier_site.set(latency=1.0)
        with pytest.raises(TransientError, match=r"blue-mug: no answer within 0\.3s"):
            client.get(page)

        supplier_site.set(latency=0, fail_next=1, fail_status=429, retry_after=120)
        with pytest.raises(TransientError, match="HTTP 429 Too Many Requests; asked to wait"):
            client.get(page)
        with pytest.raises(throttle.Busy):
            client.get(page)  # not sent: the host asked for two minutes
        assert supplier_site.requests_to("/products/blue-mug") == 2

    nobody = f"http://127.0.0.1:{free_port()}/"
    with SupplierClient(nobody) as client, pytest.raises(TransientError, match="cannot connect"):
        client.get(f"{nobody}products/blue-mug")


def test_the_schedule_asks_for_one_run_of_each_active_supplier(broker, supplier):
    Supplier.objects.create(name="Dormant", base_url="http://127.0.0.1:9/", is_active=False)
    entry = settings.CELERY_BEAT_SCHEDULE["fetch-supplier-prices"]
    assert entry["task"] == fetch_all_suppliers.name

    first = fetch_all_suppliers()  # what beat sends, run here
    again = fetch_all_suppliers()  # a tick delivered twice

    assert first == again == [FetchRun.objects.get(supplier=supplier).pk]
    wait_for(lambda: broker.depth("integrations") == 1, timeout=10, message="one run queued")
    [message] = broker.peek("integrations")
    assert message["headers"]["task"] == "suppliers.fetch_supplier_prices"

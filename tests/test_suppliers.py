"""Supplier feeds, the parts that need no process: the page parser, the per-host rate limiter,
Retry-After, the local site's pages and knobs."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.robotparser import RobotFileParser

import pytest
from django.urls import reverse

from demo.supplier_site import read_controls, render_product, render_robots, update_controls
from jobs import throttle
from jobs.models import Throttle
from suppliers.fetching import FetchSettings, SupplierClient, retry_after_seconds
from suppliers.parsing import PageListing, ParseError, parse_product_page

# --- The parser ----------------------------------------------------------------------------------


def test_the_parser_reads_price_and_stock_of_a_v1_page():
    page = render_product("blue-mug", "Blue <Mug>", Decimal("12.50"), 7, layout="v1")
    assert parse_product_page(page) == PageListing(price=Decimal("12.50"), stock=7)
    sold_out = render_product("blue-mug", "Blue Mug", Decimal("9.99"), 0)
    assert parse_product_page(sold_out.encode()) == PageListing(price=Decimal("9.99"), stock=0)


def test_a_changed_layout_is_a_clear_error_not_a_guess():
    page = render_product("blue-mug", "Blue Mug", Decimal("12.50"), 7, layout="v2")
    with pytest.raises(ParseError, match=r'no price on the page \(expected .*itemprop="price"'):
        parse_product_page(page)


@pytest.mark.parametrize(
    "html, reason",
    [
        ("", "no price on the page"),
        (b"\x00\xff\xfe garbage \x89PNG", "no price on the page"),
        ("<<<>>></div></html><p", "no price on the page"),
        ('<span itemprop="price">12.50</span>', "no stock on the page"),
        ('<span itemprop="price">twelve</span><p data-quantity="1">', "'twelve' is not a number"),
        ('<span itemprop="price">NaN</span><p data-quantity="1">', "not a price we can sell at"),
        ('<span itemprop="price">-3</span><p data-quantity="1">', "not a price we can sell at"),
        ('<span itemprop="price">1e12</span><p data-quantity="1">', "not a price we can sell at"),
        ('<span itemprop="price">1.005</span><p data-quantity="1">', "more than two decimals"),
        ('<span itemprop="price">1.50</span><p data-quantity="-1">', "not a whole number"),
        ('<span itemprop="price">1.50</span><p data-quantity="٣">', "not a whole number"),
    ],
)
def test_garbage_is_a_clear_error(html, reason):
    with pytest.raises(ParseError, match=reason):
        parse_product_page(html)


# --- The per-host rate limiter -------------------------------------------------------------------

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def test_the_limiter_spaces_requests_by_the_interval_in_force():
    assert throttle.next_slot(NOW, None, 1.0) == NOW  # the first request goes at once
    just_now = NOW - timedelta(seconds=0.25)
    assert throttle.next_slot(NOW, just_now, 1.0) == NOW + timedelta(seconds=0.75)
    assert throttle.next_slot(NOW, NOW - timedelta(seconds=5), 1.0) == NOW  # long enough ago
    # The host's Retry-After wins when it is further away than the interval.
    later = NOW + timedelta(seconds=30)
    assert throttle.next_slot(NOW, just_now, 1.0, not_before=later) == later


def test_crawl_delay_counts_when_longer_than_our_interval():
    client = SupplierClient("http://127.0.0.1:9/", config=settings_with(min_interval=2.0))
    client.robots = robots("User-agent: *", "Crawl-delay: 5")
    assert client.interval == 5.0
    client.robots = robots("User-agent: *", "Crawl-delay: 1")
    assert client.interval == 2.0
    client.robots = robots("User-agent: ShopJobsBot", "Crawl-delay: 7", "", "User-agent: *")
    assert client.interval == 7.0
    client.http.close()


@pytest.mark.django_db
def test_reservations_of_one_host_are_spaced_and_other_hosts_are_not_held_up():
    first = throttle.reserve("shop.example:80", interval=60, max_wait=120)
    second = throttle.reserve("shop.example:80", interval=60, max_wait=120)
    elsewhere = throttle.reserve("other.example:80", interval=60, max_wait=120)

    assert first == pytest.approx(0, abs=1)
    assert second == pytest.approx(60, abs=1)
    assert elsewhere == pytest.approx(0, abs=1)


@pytest.mark.django_db
def test_a_slot_too_far_away_is_not_taken():
    throttle.reserve("shop.example:80", interval=60, max_wait=120)
    taken = Throttle.objects.get(name="shop.example:80").last_slot_at

    with pytest.raises(throttle.Busy, match=r"no request to shop\.example:80 before"):
        throttle.reserve("shop.example:80", interval=60, max_wait=10)
    assert Throttle.objects.get(name="shop.example:80").last_slot_at == taken


@pytest.mark.django_db
def test_retry_after_holds_off_every_request_to_the_host():
    until = throttle.hold_off("shop.example:80", 600)
    throttle.hold_off("shop.example:80", 5)  # a shorter wait later does not shorten it

    assert Throttle.objects.get(name="shop.example:80").not_before == until
    with pytest.raises(throttle.Busy):
        throttle.reserve("shop.example:80", interval=1, max_wait=30)


def test_retry_after_headers():
    now = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds("Wed, 25 Nov 2026 12:01:30 GMT", now=now) == 90
    assert retry_after_seconds("Wed, 25 Nov 2026 11:00:00 GMT", now=now) == 0
    assert retry_after_seconds("99999999") == 3600  # capped
    for value in (None, "", "soon", "-5", "1.5e400"):
        assert retry_after_seconds(value) is None


# --- The local site's knobs ----------------------------------------------------------------------


def test_the_sites_control_file_survives_typos(tmp_path):
    control = tmp_path / "site.json"
    control.write_text("{not json")
    assert read_controls(control)["layout"] == "v1"

    update_controls(
        control,
        layout="v3",
        fail_rate=7,
        latency="slow",
        disallow="/everything",
        products={
            "mug": {"name": "Mug", "price": "4.50", "stock": 3},
            "bad-price": {"price": "free"},
            "no-price": {"stock": 3},
            "list": ["not", "a", "product"],
        },
    )
    controls = read_controls(control)
    assert (controls["layout"], controls["fail_rate"], controls["latency"]) == ("v1", 0.0, 0.0)
    assert controls["disallow"] == []
    assert list(controls["products"]) == ["mug"]
    assert controls["products"]["mug"]["price"] == Decimal("4.50")


def test_robots_txt_of_the_site():
    assert render_robots([], 0) == "User-agent: *\nDisallow:\n"
    assert render_robots(["/products/a"], 2) == (
        "User-agent: *\nDisallow: /products/a\nCrawl-delay: 2\n"
    )


def settings_with(**changes):
    defaults = dict(
        user_agent="ShopJobsBot/1.0 (+http://127.0.0.1:8000)",
        connect_timeout=1,
        read_timeout=1,
        min_interval=1,
        max_wait=5,
        max_page_bytes=1024 * 1024,
    )
    return FetchSettings(**{**defaults, **changes})


def robots(*lines):
    parser = RobotFileParser()
    parser.parse(list(lines))
    return parser


# --- The staff pages -----------------------------------------------------------------------------


@pytest.fixture
def site_control(settings, tmp_path):
    settings.DEBUG = True  # the knobs are the demo's
    settings.SUPPLIER_SITE_CONTROL = tmp_path / "supplier-site.json"
    return settings.SUPPLIER_SITE_CONTROL


@pytest.mark.django_db
def test_staff_turn_the_local_sites_knobs_and_refuse_garbage(admin_client, client, site_control):
    page = reverse("suppliers:suppliers")
    knobs = {"layout": "v2", "latency": "0.5", "fail_next": "3", "fail_status": "429", "drift": "0"}

    knobs_url = reverse("demo:site_controls")
    assert client.post(knobs_url, knobs).status_code == 302  # to login
    assert not site_control.exists()
    # The demo's panel on the suppliers page posts to the demo's view.
    assert knobs_url in admin_client.get(page).content.decode()
    assert admin_client.post(knobs_url, knobs)["Location"] == page
    controls = read_controls(site_control)
    assert (controls["layout"], controls["fail_next"], controls["fail_status"]) == ("v2", 3, 429)

    garbage = {**knobs, "layout": "v9", "latency": "-1"}
    response = admin_client.post(knobs_url, garbage, follow=True)
    assert response.redirect_chain == [(page, 302)]
    assert "Select a valid choice" in response.content.decode()
    assert read_controls(site_control) == controls


@pytest.mark.django_db
def test_the_admin_shows_suppliers_fetches_and_changes(admin_client):
    for model in ("supplier", "fetchrun", "pricechange"):
        assert admin_client.get(reverse(f"admin:suppliers_{model}_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:suppliers_supplier_add")).status_code == 200

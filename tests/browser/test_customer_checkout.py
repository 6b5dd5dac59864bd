"""A customer in a real browser: catalog, cart, checkout, then the confirmation going out."""

import pytest

from shop.models import Product
from tests.browser.servers import consumer_paused
from tests.browser.steps import JOB_TIMEOUT_MS, add_to_cart, check_out, confirmation_row, expect

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def test_customer_checks_out_and_watches_the_confirmation_email_go_out(page, worker, screenshot):
    Product.objects.create(name="Blue Mug", slug="blue-mug", price="12.50")
    Product.objects.create(name="Copper Kettle", slug="copper-kettle", price="49.00")

    add_to_cart(page, "Blue Mug", 2)
    add_to_cart(page, "Copper Kettle", 1)
    expect(page.locator(".cart-lines .total")).to_have_text("$74.00")

    # The worker leaves the emails queue alone for a moment, so the page is seen while the
    # confirmation waits; the page must then notice on its own that it went out.
    with consumer_paused(worker, "emails"):
        order_number = check_out(page, name="Ada Lovelace", email="ada@example.com")
        expect(page.locator(".messages")).to_contain_text(f"Your order #{order_number} is placed")
        expect(confirmation_row(page)).to_contain_text("queued")
        expect(page.locator(".jobs .live")).to_contain_text("refreshes itself")

    # No reload from here: the page refreshes itself while a job is on its way.
    expect(confirmation_row(page)).to_contain_text("sent at", timeout=JOB_TIMEOUT_MS)
    expect(confirmation_row(page)).to_contain_text("on attempt 1")

    page.get_by_role("link", name="Mailbox").click()
    mail = page.locator("table.mailbox tbody tr", has_text=f"#{order_number}")
    expect(mail).to_have_count(1)
    expect(mail).to_contain_text("ada@example.com")
    mail.get_by_role("link").click()
    text = page.locator("pre.mail-text")
    expect(text).to_contain_text(f"Hello Ada Lovelace,\n\nthank you for your order #{order_number}")
    expect(text).to_contain_text("1 x Copper Kettle")
    # The HTML part, shown in a sandboxed frame.
    html_part = page.frame_locator("iframe.mail-html").locator("body")
    expect(html_part).to_contain_text("Hello Ada Lovelace")
    page.locator("iframe.mail-html").scroll_into_view_if_needed()
    screenshot("mailbox-message", full_page=False)

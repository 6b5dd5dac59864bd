"""A customer whose cart's price changes (a supplier feed ran) is told, and pays what they saw."""

from decimal import Decimal

import pytest

from shop.models import Order, Product
from tests.browser.steps import add_to_cart, check_out, expect

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def test_a_price_that_changed_in_the_cart_is_told_before_the_customer_pays_it(page, screenshot):
    product = Product.objects.create(name="Copper Kettle", slug="copper-kettle", price="49.00")
    add_to_cart(page, "Copper Kettle", 1)
    Product.objects.filter(pk=product.pk).update(price=Decimal("52.00"))  # the supplier feed

    page.goto("/cart/")
    expect(page.locator(".messages")).to_contain_text(
        "The price of Copper Kettle went up from $49.00 to $52.00 since you added it."
    )
    expect(page.locator(".cart-lines .total")).to_have_text("$52.00")
    screenshot("price-changed")

    order_number = check_out(page)
    assert Order.objects.get(pk=order_number).total == Decimal("52.00")

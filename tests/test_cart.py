from decimal import Decimal

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.urls import reverse

from shop.cart import SESSION_KEY, Cart, CartError
from shop.models import MAX_QUANTITY, Order, Product


@pytest.fixture
def session():
    return SessionStore()


@pytest.fixture
def mug():
    return Product.objects.create(name="Mug", slug="mug", price=Decimal("14.50"))


@pytest.fixture
def lamp():
    return Product.objects.create(name="Lamp", slug="lamp", price=Decimal("79.00"))


@pytest.mark.django_db
def test_a_new_cart_is_empty(session):
    cart = Cart(session)
    assert cart.items() == []
    assert cart.count() == 0
    assert cart.total() == Decimal("0.00")


@pytest.mark.django_db
def test_add_keeps_ids_and_quantities_in_the_session(session, mug, lamp):
    cart = Cart(session)
    cart.add(mug, 2)
    cart.add(lamp)
    cart.add(mug, 3)

    assert session[SESSION_KEY] == {str(mug.pk): 5, str(lamp.pk): 1}
    assert session.modified
    # A new Cart over the same session sees the same lines, in the order they were added.
    again = Cart(session)
    assert again.items() == [(mug, 5), (lamp, 1)]
    assert again.count() == 6
    assert again.total() == Decimal("14.50") * 5 + Decimal("79.00")


@pytest.mark.django_db
def test_a_line_can_reach_but_not_pass_the_maximum(session, mug):
    cart = Cart(session)
    cart.add(mug, MAX_QUANTITY - 1)
    cart.add(mug, 1)
    assert cart.quantity_of(mug) == MAX_QUANTITY

    with pytest.raises(CartError, match=str(MAX_QUANTITY)):
        cart.add(mug, 1)
    assert cart.quantity_of(mug) == MAX_QUANTITY


def test_cart_error_is_a_value_error():
    assert issubclass(CartError, ValueError)


@pytest.mark.django_db
@pytest.mark.parametrize("quantity", [0, -1, MAX_QUANTITY + 1, "3", 2.5, None, True])
def test_add_and_set_refuse_bad_quantities(session, mug, quantity):
    cart = Cart(session)
    cart.add(mug, 4)

    with pytest.raises(CartError):
        cart.add(mug, quantity)
    with pytest.raises(CartError):
        cart.set(mug, quantity)
    assert cart.items() == [(mug, 4)]


@pytest.mark.django_db
def test_set_replaces_the_quantity(session, mug):
    cart = Cart(session)
    cart.add(mug, 4)
    cart.set(mug, 9)
    assert cart.items() == [(mug, 9)]
    cart.set(mug, MAX_QUANTITY)
    assert cart.count() == MAX_QUANTITY


@pytest.mark.django_db
def test_remove_and_clear(session, mug, lamp):
    cart = Cart(session)
    cart.add(mug, 2)
    cart.add(lamp, 1)

    cart.remove(mug)
    assert cart.items() == [(lamp, 1)]
    cart.remove(mug)  # not in the cart any more: nothing happens
    assert cart.items() == [(lamp, 1)]

    cart.clear()
    assert cart.items() == []
    assert SESSION_KEY not in session


@pytest.mark.django_db
def test_items_drop_products_that_are_gone_or_hidden(session, mug, lamp):
    cart = Cart(session)
    cart.add(mug, 2)
    cart.add(lamp, 3)
    stale = Product.objects.create(name="Gone", slug="gone", price=Decimal("1.00"))
    cart.add(stale, 4)
    stale.delete()
    Product.objects.filter(pk=lamp.pk).update(is_active=False)

    assert cart.items() == [(mug, 2)]
    assert cart.count() == 2
    assert cart.total() == Decimal("29.00")


@pytest.mark.django_db
def test_junk_in_the_session_is_ignored(session, mug):
    session[SESSION_KEY] = {"abc": 1, str(mug.pk): 2, "999": "many", "998": 0, "997": 100}
    assert Cart(session).items() == [(mug, 2)]
    assert Cart(session).count() == 2

    session[SESSION_KEY] = ["not", "a", "dict"]
    assert Cart(session).items() == []
    assert Cart(session).count() == 0


# --- A price that changes under the cart (a supplier feed, staff) -----------------------------


def shown(response):
    return [str(m) for m in response.context["messages"]]


@pytest.mark.django_db
def test_the_customer_is_told_when_a_price_changed_since_they_added_it(client, mug):
    client.post(reverse("shop:cart_add", args=[mug.pk]), {"quantity": 2})
    Product.objects.filter(pk=mug.pk).update(price=Decimal("15.25"))

    page = client.get(reverse("shop:cart"))
    assert shown(page)[-1] == "The price of Mug went up from $14.50 to $15.25 since you added it."
    assert "$30.50" in page.content.decode()  # the cart shows the new price, openly
    assert shown(client.get(reverse("shop:cart"))) == []  # told once


@pytest.mark.django_db
def test_checkout_never_charges_a_price_the_customer_has_not_seen(client, mug):
    client.post(reverse("shop:cart_add", args=[mug.pk]), {"quantity": 1})
    client.get(reverse("shop:checkout"))
    Product.objects.filter(pk=mug.pk).update(price=Decimal("13.00"))  # while they type
    details = {"customer_name": "Ada", "email": "ada@example.com", "shipping_address": "1 Row"}

    response = client.post(reverse("shop:checkout"), details, follow=True)
    assert response.redirect_chain == [(reverse("shop:checkout"), 302)]
    changed = "The price of Mug went down from $14.50 to $13.00 since you added it."
    assert shown(response) == [changed]
    assert not Order.objects.exists()

    response = client.post(reverse("shop:checkout"), details)  # seen: now it goes through
    order = Order.objects.get()
    assert response["Location"] == order.get_absolute_url()
    assert order.total == Decimal("13.00")


@pytest.mark.django_db
def test_seen_prices_in_a_tampered_session_are_ignored(session, mug):
    cart = Cart(session)
    cart.add(mug, 1)
    session["cart_seen_prices"] = {str(mug.pk): "not a price", "x": "1.00"}
    assert cart.price_changes() == []

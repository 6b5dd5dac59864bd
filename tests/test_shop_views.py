import io
import re
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.contrib.staticfiles import finders
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from jobs.models import Job
from media_jobs import renditions
from media_jobs.services import attach_image
from shop import services
from shop.cart import SESSION_KEY
from shop.models import Order, Product
from tests.flows import confirmation_job, place_order

REFRESH = '<meta http-equiv="refresh" content="2">'


@pytest.fixture
def mug():
    return Product.objects.create(
        name="Stoneware Mug",
        slug="stoneware-mug",
        description="Keeps coffee warm.",
        price=Decimal("14.50"),
    )


@pytest.fixture
def lamp():
    return Product.objects.create(name="Desk Lamp", slug="desk-lamp", price=Decimal("79.00"))


@pytest.fixture
def hidden():
    return Product.objects.create(
        name="Retired Teapot", slug="retired-teapot", price=Decimal("30.00"), is_active=False
    )


@pytest.fixture
def cart_with(client):
    """Put {product: quantity} in the test client's cart, through the real views."""

    def fill(lines):
        for product, quantity in lines.items():
            response = client.post(
                reverse("shop:cart_add", args=[product.pk]), {"quantity": quantity}
            )
            assert response.status_code == 302
        return session_cart(client)

    return fill


@pytest.fixture
def order(mug, lamp):
    # Outside a captured block the on-commit publish never runs: the test's transaction is
    # rolled back, never committed, so nothing reaches a broker.
    return services.place_order(
        customer_name="Ada Lovelace",
        email="ada@example.com",
        shipping_address="1 Analytical Row\nLondon",
        items=[(mug, 2), (lamp, 1)],
    )


VALID_CHECKOUT = {
    "customer_name": "Ada Lovelace",
    "email": "ada@example.com",
    "shipping_address": "1 Analytical Row\nLondon",
}


def session_cart(client):
    return dict(client.session.get(SESSION_KEY, {}))


def message_texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def jpeg_bytes():
    out = io.BytesIO()
    Image.new("RGB", (20, 20), (200, 100, 50)).save(out, format="JPEG")
    return out.getvalue()


# --- catalog and product pages --------------------------------------------------------------


@pytest.mark.django_db
def test_catalog_lists_active_products_with_prices(client, mug, lamp, hidden):
    response = client.get(reverse("shop:catalog"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Stoneware Mug" in html and "14.50" in html
    assert "Desk Lamp" in html and "79.00" in html
    assert mug.get_absolute_url() in html
    assert "Retired Teapot" not in html
    assert "shop/placeholder.svg" in html  # none of them has a picture


@pytest.mark.django_db
def test_catalog_shows_product_pictures(client, settings, tmp_path, mug):
    settings.MEDIA_ROOT = tmp_path
    image = attach_image(mug, ContentFile(jpeg_bytes(), name="mug.jpg"))
    renditions.make_renditions(image.pk)  # what the media worker does

    html = client.get(reverse("shop:catalog")).content.decode()

    [webp] = image.renditions.filter(format="webp")
    [jpeg] = image.renditions.filter(format="jpeg")
    assert f'<source type="image/webp" srcset="{webp.file.url} 20w"' in html
    assert f'src="{jpeg.file.url}" srcset="{jpeg.file.url} 20w"' in html
    assert "shop/placeholder.svg" not in html


@pytest.mark.django_db
def test_a_picture_is_shown_only_once_its_renditions_are_ready(client, settings, tmp_path, mug):
    settings.MEDIA_ROOT = tmp_path
    attach_image(mug, ContentFile(jpeg_bytes(), name="mug.jpg"))  # no worker has made them yet

    html = client.get(mug.get_absolute_url()).content.decode()

    assert "shop/placeholder.svg" in html
    assert "<picture>" not in html


@pytest.mark.django_db
def test_empty_catalog_renders(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "nothing for sale" in response.content.decode()


@pytest.mark.django_db
def test_product_page(client, mug):
    response = client.get(f"/products/{mug.slug}/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Stoneware Mug" in html
    assert "14.50" in html
    assert "Keeps coffee warm." in html
    assert reverse("shop:cart_add", args=[mug.pk]) in html
    assert "csrfmiddlewaretoken" in html


@pytest.mark.django_db
def test_unknown_or_hidden_product_is_404(client, hidden):
    assert client.get("/products/no-such-thing/").status_code == 404
    assert client.get(f"/products/{hidden.slug}/").status_code == 404


# --- the cart ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_add_to_cart(client, mug):
    response = client.post(reverse("shop:cart_add", args=[mug.pk]), {"quantity": "2"})

    assert response.status_code == 302
    assert response.url == reverse("shop:cart")
    assert session_cart(client) == {str(mug.pk): 2}
    assert message_texts(response) == ["Added 2 x Stoneware Mug to your cart."]

    page = client.get(reverse("shop:cart")).content.decode()
    assert "Stoneware Mug" in page
    assert "29.00" in page  # the subtotal and the total
    assert "Cart (2)" in page
    assert reverse("shop:checkout") in page


@pytest.mark.django_db
def test_adding_again_adds_up(client, mug, cart_with):
    cart_with({mug: 3})
    client.post(reverse("shop:cart_add", args=[mug.pk]), {"quantity": "4"})
    assert session_cart(client) == {str(mug.pk): 7}


@pytest.mark.django_db
def test_add_beyond_the_maximum_is_refused_with_a_message(client, mug, cart_with):
    cart_with({mug: 98})

    response = client.post(reverse("shop:cart_add", args=[mug.pk]), {"quantity": "2"}, follow=True)

    assert response.status_code == 200
    assert session_cart(client) == {str(mug.pk): 98}
    assert any("at most 99" in text for text in message_texts(response))
    assert "at most 99" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("garbage", ["0", "100", "abc", "-1", "", "1.5", "1e3", "9" * 30])
def test_add_refuses_garbage_quantities(client, mug, lamp, cart_with, garbage):
    before = cart_with({lamp: 3})

    response = client.post(reverse("shop:cart_add", args=[mug.pk]), {"quantity": garbage})

    assert response.status_code == 200
    assert 'class="error"' in response.content.decode()
    assert session_cart(client) == before


@pytest.mark.django_db
def test_add_without_a_quantity_is_refused(client, mug):
    response = client.post(reverse("shop:cart_add", args=[mug.pk]), {})
    assert response.status_code == 200
    assert "Enter a quantity." in response.content.decode()
    assert session_cart(client) == {}


@pytest.mark.django_db
@pytest.mark.parametrize("garbage", ["0", "100", "abc", "-1", "", "2.5"])
def test_update_refuses_garbage_quantities(client, mug, cart_with, garbage):
    before = cart_with({mug: 3})

    response = client.post(
        reverse("shop:cart_update", args=[mug.pk]), {"quantity": garbage}, follow=True
    )

    assert response.status_code == 200
    assert response.redirect_chain == [(reverse("shop:cart"), 302)]
    assert session_cart(client) == before
    assert any(text.startswith("Stoneware Mug: ") for text in message_texts(response))


@pytest.mark.django_db
def test_update_and_remove(client, mug, lamp, cart_with):
    cart_with({mug: 1, lamp: 1})

    response = client.post(reverse("shop:cart_update", args=[mug.pk]), {"quantity": "5"})
    assert response.status_code == 302
    assert session_cart(client) == {str(mug.pk): 5, str(lamp.pk): 1}

    response = client.post(reverse("shop:cart_remove", args=[lamp.pk]))
    assert response.status_code == 302
    assert session_cart(client) == {str(mug.pk): 5}

    page = client.get(reverse("shop:cart")).content.decode()
    assert "Removed Desk Lamp from your cart." in page  # the message, and no line any more:
    assert reverse("shop:cart_update", args=[lamp.pk]) not in page
    assert reverse("shop:cart_update", args=[mug.pk]) in page
    assert 'value="5"' in page
    assert "72.50" in page


@pytest.mark.django_db
def test_cart_writes_need_post(client, mug, cart_with):
    before = cart_with({mug: 2})
    for name in ("shop:cart_add", "shop:cart_update", "shop:cart_remove"):
        url = reverse(name, args=[mug.pk])
        assert client.get(url, {"quantity": "5"}).status_code == 405
        assert client.put(url).status_code == 405
    assert session_cart(client) == before


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["shop:cart_add", "shop:cart_update", "shop:cart_remove"])
def test_cart_writes_404_for_unknown_or_hidden_products(client, hidden, name):
    for product_id in (hidden.pk, 999_999, 2**70):
        response = client.post(reverse(name, args=[product_id]), {"quantity": "1"})
        assert response.status_code == 404
    assert session_cart(client) == {}


@pytest.mark.django_db
def test_cart_forms_are_csrf_protected(mug):
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("shop:cart_add", args=[mug.pk]), {"quantity": "1"})
    assert response.status_code == 403


@pytest.mark.django_db
def test_empty_cart_page(client):
    response = client.get(reverse("shop:cart"))
    assert response.status_code == 200
    assert "Your cart is empty" in response.content.decode()


# --- checkout ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_checkout_with_an_empty_cart_goes_back_to_the_cart(client):
    for response in (
        client.get(reverse("shop:checkout")),
        client.post(reverse("shop:checkout"), VALID_CHECKOUT),
    ):
        assert response.status_code == 302
        assert response.url == reverse("shop:cart")
    assert any("cart is empty" in text for text in message_texts(response))
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_checkout_page_shows_the_form_and_the_cart(client, mug, cart_with):
    cart_with({mug: 2})
    response = client.get(reverse("shop:checkout"))

    assert response.status_code == 200
    html = response.content.decode()
    for field in ("customer_name", "email", "shipping_address", "csrfmiddlewaretoken"):
        assert f'name="{field}"' in html
    assert "2 \u00d7 Stoneware Mug" in html
    assert "29.00" in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [
        {"customer_name": ""},
        {"customer_name": "   "},
        {"customer_name": "x" * 101},
        {"email": "not-an-email"},
        {"email": ""},
        {"shipping_address": ""},
        {"shipping_address": "y" * 501},
        {"customer_name": "nul\x00byte"},
    ],
)
def test_checkout_with_invalid_data_shows_errors(client, mug, cart_with, change):
    before = cart_with({mug: 2})

    response = client.post(reverse("shop:checkout"), {**VALID_CHECKOUT, **change})

    assert response.status_code == 200
    assert "Please correct the fields marked below." in response.content.decode()
    assert response.context["form"].errors.keys() == change.keys()
    assert Order.objects.count() == 0
    assert Job.objects.count() == 0
    assert session_cart(client) == before


@pytest.mark.django_db
def test_checkout_with_missing_fields(client, mug, cart_with):
    cart_with({mug: 1})
    response = client.post(reverse("shop:checkout"), {})
    assert response.status_code == 200
    assert set(response.context["form"].errors) == set(VALID_CHECKOUT)
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_checkout_only_takes_get_and_post(client, mug, cart_with):
    cart_with({mug: 1})
    assert client.put(reverse("shop:checkout")).status_code == 405
    assert client.delete(reverse("shop:checkout")).status_code == 405


@pytest.mark.django_db
def test_checkout_places_one_order(
    client, mug, lamp, cart_with, django_capture_on_commit_callbacks
):
    cart_with({mug: 2, lamp: 1})

    # Without execute=True the callbacks are only collected, never run: nothing is published.
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            reverse("shop:checkout"), {**VALID_CHECKOUT, "customer_name": "  Ada Lovelace  "}
        )

    assert Order.objects.count() == 1
    order = Order.objects.get()
    assert order.customer_name == "Ada Lovelace"
    assert order.email == "ada@example.com"
    assert order.shipping_address == "1 Analytical Row\nLondon"
    lines = sorted(order.lines.values_list("product_id", "product_name", "unit_price", "quantity"))
    assert lines == sorted(
        [
            (mug.pk, "Stoneware Mug", Decimal("14.50"), 2),
            (lamp.pk, "Desk Lamp", Decimal("79.00"), 1),
        ]
    )
    assert order.total == Decimal("108.00")

    assert response.status_code == 302
    assert response.url == f"/orders/{order.token}/"
    assert order.token != str(order.pk)
    assert len(order.token) >= 20
    assert session_cart(client) == {}
    assert message_texts(response)[-1] == f"Thank you! Your order #{order.pk} is placed."

    # Two jobs, each published after the commit: the confirmation email and the warehouse's
    # order.placed event.
    assert len(callbacks) == 2
    jobs = Job.objects.order_by("kind")
    assert [job.kind for job in jobs] == ["order_confirmation", "order_placed"]
    for job in jobs:
        assert job.state == Job.State.PENDING
        assert job.subject == f"order:{order.pk}"


@pytest.mark.django_db
def test_after_checkout_the_customer_lands_on_the_order_page(client, mug, cart_with):
    cart_with({mug: 3})

    response = client.post(reverse("shop:checkout"), VALID_CHECKOUT, follow=True)

    assert response.status_code == 200
    order = Order.objects.get()
    assert response.redirect_chain == [(order.get_absolute_url(), 302)]
    html = response.content.decode()
    assert f"Thank you! Your order #{order.pk} is placed." in html
    assert "Cart (" not in html


# --- the order page ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_order_page_shows_the_order_and_its_jobs(client, order):
    response = client.get(f"/orders/{order.token}/")

    assert response.status_code == 200
    html = response.content.decode()
    assert f"Order #{order.pk}" in html
    assert "Stoneware Mug" in html and "Desk Lamp" in html
    assert "108.00" in html
    assert "Ada Lovelace" in html
    assert "ada@example.com" in html
    assert "1 Analytical Row<br>London" in html
    assert "Confirmation email" in html  # the job's label
    assert re.search(r"<td>\s*queued\s*</td>", html)  # describe() of a pending job


@pytest.mark.django_db
def test_order_page_is_found_only_by_token(client, order):
    assert client.get(f"/orders/{order.pk}/").status_code == 404
    assert client.get("/orders/not-the-token/").status_code == 404
    assert client.get(f"/orders/{order.token[:-1]}/").status_code == 404
    assert client.get(f"/orders/{order.token}/").status_code == 200


@pytest.mark.django_db
def test_customer_input_is_escaped(client, mug):
    order = services.place_order(
        customer_name="<script>alert(1)</script>",
        email="x@example.com",
        shipping_address="<b>bold</b> & <img src=x onerror=alert(2)>",
        items=[(mug, 1)],
    )

    html = client.get(order.get_absolute_url()).content.decode()

    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;img src=x onerror=alert(2)&gt;" in html


@pytest.mark.django_db
@pytest.mark.parametrize("final_state", [Job.State.SUCCEEDED, Job.State.FAILED])
def test_order_page_refreshes_until_the_jobs_are_final(client, order, final_state):
    url = order.get_absolute_url()
    assert client.get(url).content.decode().count(REFRESH) == 1

    Job.objects.filter(subject=f"order:{order.pk}").update(state=Job.State.STARTED, attempts=1)
    html = client.get(url).content.decode()
    assert html.count(REFRESH) == 1
    assert "sending (attempt 1)" in html

    Job.objects.filter(subject=f"order:{order.pk}").update(
        state=final_state, attempts=1, finished_at=timezone.now(), last_error="mailbox full"
    )
    html = client.get(url).content.decode()
    assert REFRESH not in html
    # What refreshes now is the wait for the warehouse (see the test below), more slowly.
    assert '<meta http-equiv="refresh" content="10">' in html
    if final_state == Job.State.SUCCEEDED:
        assert "sent at " in html
    else:
        assert "failed: mailbox full" in html


@pytest.mark.django_db
def test_order_page_is_not_cached(client, order):
    response = client.get(order.get_absolute_url())
    assert "no-cache" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


@pytest.mark.django_db
def test_the_catalog_loads_pictures_in_a_fixed_number_of_queries(
    client, django_assert_max_num_queries
):
    for i in range(12):
        Product.objects.create(name=f"Thing {i}", slug=f"thing-{i}", price="1.00")
    with django_assert_max_num_queries(6):  # not one or two per product
        assert client.get(reverse("shop:catalog")).status_code == 200


def test_every_page_has_a_favicon_and_the_browsers_default_path_finds_it(client, db):
    page = client.get(reverse("shop:catalog")).content.decode()
    icon = re.search(r'<link rel="icon" href="([^"]+)"', page).group(1)
    assert icon.startswith(settings.STATIC_URL)
    assert finders.find(icon.removeprefix(settings.STATIC_URL))
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == icon


def test_the_order_page_says_queued_sending_sent_and_waits_for_the_shipment(client, product):
    order = place_order(product)
    confirmation = confirmation_job(order)
    others = Job.objects.filter(subject=confirmation.subject).exclude(pk=confirmation.pk)
    others.update(state=Job.State.SUCCEEDED)  # the warehouse's order.placed event

    def page_with(state):
        Job.objects.filter(pk=confirmation.pk).update(
            state=state, attempts=1, finished_at=timezone.now()
        )
        page = client.get(order.get_absolute_url()).content.decode()
        badge = re.search(r'<span class="badge state-[a-z]+">([^<]+)</span>', page).group(1)
        refresh = re.search(r'<meta http-equiv="refresh" content="(\d+)">', page)
        return badge, refresh and int(refresh.group(1))

    # The words the README promises, not the job runner's state names.
    assert page_with(Job.State.QUEUED) == ("queued", 2)
    assert page_with(Job.State.STARTED) == ("sending", 2)
    # Sent: the page keeps looking, more slowly, for the shipping email the dispatch brings.
    assert page_with(Job.State.SUCCEEDED) == ("sent", 10)
    assert "until your order ships" in client.get(order.get_absolute_url()).content.decode()
    Order.objects.filter(pk=order.pk).update(status=Order.Status.SHIPPED)
    assert page_with(Job.State.SUCCEEDED) == ("sent", None)

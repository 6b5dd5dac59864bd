"""Shipping orders: one at a time on a staff page, or in bulk from the admin; one email each."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.urls import reverse

from jobs.models import Job
from notifications import emails
from shop import services
from shop.models import Order, OrderLine
from testkit.processes import wait_for
from tests.flows import route_of


def make_orders(product, count):
    orders = [
        Order.objects.create(
            customer_name=f"Customer {i} <i>", email=f"c{i}@example.com", shipping_address="Here"
        )
        for i in range(count)
    ]
    for order in orders:
        OrderLine.objects.create(
            order=order, product=product, product_name=product.name, unit_price=3, quantity=1
        )
    return orders


@pytest.fixture
def staff_client(client, db):
    user = get_user_model().objects.create_user("boss", password="pw", is_staff=True)
    user.is_superuser = True
    user.save()
    client.force_login(user)
    return client


def run_bulk_action(client, orders, carrier="DemoPost"):
    return client.post(
        reverse("admin:shop_order_changelist"),
        {
            "action": "mark_shipped",
            ACTION_CHECKBOX_NAME: [o.pk for o in orders],
            "carrier": carrier,
            "apply": "1",
        },
    )


def test_shipping_emails_rank_between_confirmations_and_bulk_mail():
    shipping = route_of("notifications.send_shipping_notification")
    confirmation = route_of("notifications.send_order_confirmation")
    assert shipping["queue"] == confirmation["queue"] == "emails"
    assert route_of("jobs.noop")["priority"] < shipping["priority"] < confirmation["priority"]


@pytest.mark.django_db
def test_shipping_twice_ships_and_asks_for_email_once(product, django_capture_on_commit_callbacks):
    orders = make_orders(product, 3)
    with django_capture_on_commit_callbacks() as callbacks:
        shipped = services.ship_orders(Order.objects.all(), carrier="DemoPost")
    assert len(shipped) == 3 and len(callbacks) == 1
    assert Job.objects.filter(kind="shipping_notification").count() == 3
    for order in orders:
        order.refresh_from_db()
        assert order.status == Order.Status.SHIPPED
        assert order.carrier == "DemoPost" and order.tracking_number and order.shipped_at

    with django_capture_on_commit_callbacks() as callbacks:
        assert services.ship_orders(Order.objects.all(), carrier="Freight Co") == []
    assert Job.objects.filter(kind="shipping_notification").count() == 3
    assert Order.objects.filter(carrier="Freight Co").count() == 0


@pytest.mark.django_db
def test_shipping_email_names_carrier_and_tracking_number_escaped(product):
    [order] = make_orders(product, 1)
    services.ship_order(order, carrier="DemoPost", tracking_number="AB-1234")
    order.refresh_from_db()
    message = emails.render_order_email("shipping_notification", order, "<x@shop-jobs.test>")
    html = message.alternatives[0][0]
    assert message.subject == f"Your order #{order.pk} is on its way"
    assert "AB-1234" in message.body and "DemoPost" in html
    assert "Customer 0 &lt;i&gt;" in html


@pytest.mark.django_db
def test_staff_page_ships_one_order_and_refuses_garbage(staff_client, product):
    [order] = make_orders(product, 1)
    url = reverse("shop:ship_order", args=[order.pk])

    response = staff_client.post(url, {"carrier": "DemoPost", "tracking_number": "<script>"})
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == Order.Status.PLACED

    page = staff_client.get(reverse("shop:orders_to_ship"), follow=True).content.decode()
    assert "letters, digits or dashes" in page

    staff_client.post(url, {"carrier": "DemoPost", "tracking_number": "DP-0001"})
    order.refresh_from_db()
    assert (order.status, order.tracking_number) == (Order.Status.SHIPPED, "DP-0001")
    assert staff_client.post(url, {"carrier": "Nope", "tracking_number": "X-1"}).status_code == 302
    assert staff_client.post(reverse("shop:ship_order", args=[999999]), {}).status_code == 404


@pytest.mark.django_db
def test_staff_pages_are_for_staff_only(client, product):
    [order] = make_orders(product, 1)
    response = client.get(reverse("shop:orders_to_ship"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.post(
        reverse("shop:ship_order", args=[order.pk]),
        {"carrier": "DemoPost", "tracking_number": "DP-1"},
    )
    order.refresh_from_db()
    assert order.status == Order.Status.PLACED


@pytest.mark.django_db
def test_bulk_action_asks_for_the_carrier_first(staff_client, product):
    orders = make_orders(product, 2)
    response = staff_client.post(
        reverse("admin:shop_order_changelist"),
        {"action": "mark_shipped", ACTION_CHECKBOX_NAME: [o.pk for o in orders]},
    )
    assert response.status_code == 200
    assert b"Ship them" in response.content
    assert not Order.objects.filter(status=Order.Status.SHIPPED).exists()


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_bulk_shipping_run_twice_emails_each_customer_once(
    staff_client, broker, smtp_sink, start_worker, product
):
    orders = make_orders(product, 30)
    start_worker()

    assert run_bulk_action(staff_client, orders).status_code == 302
    assert run_bulk_action(staff_client, orders, carrier="Freight Co").status_code == 302

    wait_for(
        lambda: (
            Job.objects.filter(kind="shipping_notification", state=Job.State.SUCCEEDED).count()
            == len(orders)
        ),
        timeout=60,
        message="every shipping email",
    )
    recipients = sorted(m["to"] for m in smtp_sink.messages())
    assert recipients == sorted(o.email for o in orders)
    assert Job.objects.filter(kind="shipping_notification").count() == len(orders)
    page = staff_client.get(orders[0].get_absolute_url()).content.decode()
    assert "Shipping email" in page and "sent at" in page

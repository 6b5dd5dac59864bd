"""What a customer does, in a few lines, for tests that need an order placed through the shop."""

from django.urls import reverse

from jobs.models import Job
from notifications.tasks import send_order_confirmation
from shop import services
from shop.models import Order
from testkit.processes import wait_for


def checkout(client, product, email="ada@example.com", name="Ada Lovelace"):
    """Put `product` in the cart and check out through the shop's pages; return the order."""
    client.post(reverse("shop:cart_add", args=[product.pk]), {"quantity": 2})
    response = client.post(
        reverse("shop:checkout"),
        {"customer_name": name, "email": email, "shipping_address": "12 Analytical Row"},
    )
    assert response.status_code == 302, response.content[:500]
    order = Order.objects.get(email=email)
    assert response["Location"] == order.get_absolute_url()
    return order


def place_order(product, quantity=2):
    """The same order through the shop's service, without the pages (and outside a request)."""
    return services.place_order(
        customer_name="Ada Lovelace",
        email="ada@example.com",
        shipping_address="12 Analytical Row",
        items=[(product, quantity)],
    )


def confirmation_job(order):
    return Job.objects.get(key=send_order_confirmation.job_key(order.pk))


def wait_for_job_state(order, state, timeout=30):
    return wait_for(
        lambda: confirmation_job(order).state == state and confirmation_job(order),
        timeout,
        message=f"the confirmation job to be {state}",
    )


def route_of(task_name):
    """{"queue": name, "priority": n}: where the shop's Celery app sends `task_name`."""
    from config.celery import app

    route = app.amqp.router.route({}, task_name)
    return {"queue": route["queue"].name, "priority": route.get("priority")}

"""Writes to the shop. Views call these; these call nothing that knows about HTTP."""

from django.db import transaction

from jobs.outbox import enqueue_on_commit
from notifications.jobs import ORDER_CONFIRMATION
from notifications.tasks import send_order_confirmation
from shop.models import Order, OrderLine


class EmptyCartError(ValueError):
    pass


@transaction.atomic
def place_order(*, customer_name, email, shipping_address, items):
    """Save an order from `items` [(product, quantity), ...] and ask for its confirmation email.

    The email job is recorded in this transaction and published only after it commits: a
    rolled-back order sends nothing, and the worker always finds the order it is told about.
    """
    if not items:
        raise EmptyCartError("the cart is empty")
    order = Order.objects.create(
        customer_name=customer_name, email=email, shipping_address=shipping_address
    )
    OrderLine.objects.bulk_create(
        OrderLine(
            order=order,
            product=product,
            product_name=product.name,
            unit_price=product.price,
            quantity=quantity,
        )
        for product, quantity in items
    )
    enqueue_on_commit(send_order_confirmation, order.pk, kind=ORDER_CONFIRMATION, subject=order)
    return order

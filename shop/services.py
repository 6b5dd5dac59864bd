"""Writes to the shop. Views call these; these call nothing that knows about HTTP."""

import secrets

from django.db import transaction
from django.utils import timezone

from jobs.outbox import enqueue_many_on_commit, enqueue_on_commit
from notifications.tasks import send_order_confirmation, send_shipping_notification
from shop.models import Order, OrderLine
from shop.reports import find_or_create_report
from shop.tasks import build_sales_report, publish_order_placed


class EmptyCartError(ValueError):
    pass


@transaction.atomic
def place_order(*, customer_name, email, shipping_address, items):
    """Save an order from `items` [(product, quantity), ...] and ask for its confirmation email.

    The email job is recorded in this transaction and published only after it commits: a
    rolled-back order sends nothing, and the worker always finds the order it is told about.
    The warehouse service hears of the order the same way (its order.placed event).
    """
    if not items:
        raise EmptyCartError("the cart is empty")
    order = Order.objects.create(
        customer_name=customer_name, email=email, shipping_address=shipping_address
    )
    OrderLine.objects.bulk_create(
        OrderLine.of(product, quantity, order=order) for product, quantity in items
    )
    enqueue_on_commit(send_order_confirmation, order.pk, subject=order)
    enqueue_on_commit(publish_order_placed, order.pk, subject=order)
    return order


@transaction.atomic
def ship_orders(orders, *, carrier, tracking_numbers=None):
    """Mark the placed orders among `orders` shipped and ask for their shipping emails.

    `tracking_numbers` maps order ids to the carrier's numbers; orders without one get a
    generated number (the demo has no carrier to ask). Orders already shipped are skipped, so
    running the same bulk action twice ships nothing and emails nobody a second time. Returns
    the orders shipped by this call.
    """
    tracking_numbers = tracking_numbers or {}
    to_ship = list(orders.filter(status=Order.Status.PLACED).select_for_update())
    now = timezone.now()
    for order in to_ship:
        order.status = Order.Status.SHIPPED
        order.carrier = carrier
        order.tracking_number = tracking_numbers.get(order.pk) or demo_tracking_number(order)
        order.shipped_at = now
    Order.objects.bulk_update(
        to_ship, ["status", "carrier", "tracking_number", "shipped_at"], batch_size=500
    )
    enqueue_many_on_commit(send_shipping_notification, to_ship)
    return to_ship


def ship_order(order, *, carrier, tracking_number):
    """Ship one order; returns False if it had already been shipped."""
    orders = Order.objects.filter(pk=order.pk)
    return bool(ship_orders(orders, carrier=carrier, tracking_numbers={order.pk: tracking_number}))


def demo_tracking_number(order):
    return f"{order.pk:08d}-{secrets.token_hex(3).upper()}"


@transaction.atomic
def request_sales_report(date_from, date_to, requested_by, scheduled=False):
    """Ask for the sales report of `date_from` to `date_to`; returns (report, reused).

    While a report of the same range is still queued or running, asking again returns that one
    (reused is True) and asks for nothing new: the person lands on the progress bar that is
    already moving. Otherwise a new report is saved and its job published once this
    transaction commits.
    """
    report, created = find_or_create_report(
        date_from, date_to, requested_by=requested_by, scheduled=scheduled
    )
    if created:
        enqueue_on_commit(build_sales_report, report.pk, subject=report)
    return report, not created

"""The events the shop publishes for the warehouse service (contracts/): order.placed.

`place_order` asks for the event through the outbox like any other job (a Job row in the
order's transaction, shop.tasks.publish_order_placed on the `integrations` queue after the
commit); `publish_order_placed` below is the task's plain function. It builds the event from
the order, checks it against its schema, and publishes it persistent, to the `events` exchange,
and waits for RabbitMQ's confirm. What the shop does with the warehouse's answer,
shipment.dispatched, is in shop/event_consumer.py.
"""

import uuid

from amqp.exceptions import AMQPError, MessageNacked
from celery import current_app
from kombu.exceptions import OperationalError

import contracts
from config import queues
from jobs.errors import PermanentError, TransientError
from shop.models import Order

ORDER_PLACED = "order.placed"
ORDER_PLACED_VERSION = 1
# Every copy of an order's order.placed event (a retry, an outbox republish, a replay) has the
# same id, derived from the order's: the warehouse tells copies from new events by it.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c2a3e-8d4b-4f7a-9c1e-2b5d7e9f0a13")
# Refused connections and timeouts, a connection or channel closed by RabbitMQ, a negative
# confirm (nack), kombu's "no connection to be had": all worth another try later.
BROKER_ERRORS = (AMQPError, MessageNacked, OperationalError, OSError)


def order_placed_event(order):
    """The order.placed event of `order` (with its lines), checked against its schema."""
    return contracts.new_event(
        ORDER_PLACED,
        ORDER_PLACED_VERSION,
        {
            "order_id": order.pk,
            "ship_to": {"name": order.customer_name, "address": order.shipping_address},
            "lines": [
                {"sku": line.product.slug, "name": line.product_name, "quantity": line.quantity}
                for line in order.lines.all()
            ],
        },
        source="shop",
        event_id=uuid.uuid5(EVENT_ID_NAMESPACE, f"{ORDER_PLACED}:{order.pk}"),
        occurred_at=order.created_at,
    )


def publish_order_placed(order_id):
    """Publish order `order_id`'s order.placed event. Returns what was published."""
    try:
        order = Order.objects.prefetch_related("lines__product").get(pk=order_id)
    except Order.DoesNotExist:
        raise PermanentError(f"order {order_id} does not exist") from None
    try:
        event = order_placed_event(order)
    except contracts.ContractError as exc:
        # The shop's own data breaks the contract: retrying will not change it; a person will.
        raise PermanentError(f"the order does not make a valid event: {exc}") from exc
    publish(event)
    return {"event_id": event.id, "type": event.type, "version": event.version}


def publish(event):
    """Publish `event` to the events exchange; returns once RabbitMQ has confirmed it."""
    try:
        with current_app.producer_or_acquire() as producer:
            producer.publish(
                event.body(),
                exchange=queues.EVENTS_EXCHANGE,
                routing_key=event.type,
                # The subscribers' queues exist before the event does (config/queues.py).
                declare=queues.EVENT_QUEUES,
                content_type=contracts.CONTENT_TYPE,
                content_encoding="utf-8",
                delivery_mode=2,  # persistent
                message_id=event.id,
                type=event.type,
                app_id="shop",
                retry=True,
                retry_policy={"max_retries": 1, "interval_start": 0.2},
                timeout=10,  # for RabbitMQ's confirm (the app's transport confirms publishes)
            )
    except BROKER_ERRORS as exc:
        raise TransientError(f"RabbitMQ did not take the event: {exc!r}") from exc


def declare_queues_at_worker_start(sender=None, **kwargs):
    """Celery's worker_init: declare the event queues before the worker runs anything.

    Publishing declares them too; declared at the start, they are there for the dashboard and
    the health checks to count before the first order (jobs/conf.py: JOBS_EVENT_QUEUES).
    """
    from config.celery import app

    if getattr(sender, "app", None) is not app:
        return  # another app's worker in this process (a benchmark's bare baseline, say)
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=10)
        queues.declare_event_queues(connection)

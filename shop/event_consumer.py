"""The shop's event consumer: applies the warehouse's shipment.dispatched events.

`manage.py consume_shop_events` runs it, a process of its own beside the Celery workers. It is a
kombu ConsumerMixin: it (re)connects to RabbitMQ for as long as it takes, declares its queue
(config/queues.py: SHOP_EVENTS) and takes a few messages at a time. For each:

- an event it can read marks the order shipped with the carrier and tracking number through
  `services.ship_order`, which also asks for the shipping email in the same transaction; the
  message is acknowledged after that commit. A copy of the event finds the order shipped and
  changes nothing (ship_order only ships placed orders), so redeliveries are harmless;
- a message it cannot read (not JSON, another version, a schema violation), or an event for an
  order the shop does not have, is rejected without requeue: RabbitMQ parks it in
  `shop.shipment-dispatched.dead`, shown on the dead-letters admin page with its reason;
- a database that is unreachable: the message goes back to the queue after a pause;
- anything else is a bug: the message is parked and the consumer goes on with the next one.
"""

import logging
import time

from django.db import InterfaceError, OperationalError, close_old_connections
from kombu.mixins import ConsumerMixin

import contracts
from config import queues
from jobs.errors import PermanentError
from shop import services
from shop.models import Order

logger = logging.getLogger(__name__)

SUBSCRIPTION = queues.SHOP_EVENTS
# A few messages in hand at a time: enough to keep busy, little to redeliver after a crash.
PREFETCH = 4
# How long a message that met a database outage waits before it goes back to the queue.
RETRY_PAUSE_SECONDS = 2


def apply_shipment_dispatched(event):
    """Mark the order of `event` shipped and ask for its email; False if it already was."""
    data = event.data
    order = Order.objects.filter(pk=data["order_id"]).first()
    if order is None:
        raise PermanentError(f"order {data['order_id']} does not exist")
    return services.ship_order(
        order, carrier=data["carrier"], tracking_number=data["tracking_number"]
    )


class ShopEventConsumer(ConsumerMixin):
    def __init__(self, connection):
        self.connection = connection
        self.reads = contracts.require_schemas(SUBSCRIPTION.reads)
        self.handling_message = False

    def stop(self):
        """Leave now, or once the message in hand is done (SIGTERM, Ctrl-C).

        Anywhere else leaving at once is safe (a message not acknowledged comes back), and
        waiting would not do: while the broker is away, kombu sleeps between connection
        attempts and looks at nothing.
        """
        self.should_stop = True
        if not self.handling_message:
            raise SystemExit(0)

    def get_consumers(self, Consumer, channel):
        for queue in queues.EVENT_QUEUES:
            queue(channel).declare()
        return [
            Consumer(
                queues=[SUBSCRIPTION.queue],
                on_message=self.on_message,
                prefetch_count=PREFETCH,
                no_ack=False,
            )
        ]

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        logger.info("consuming %s on %s", SUBSCRIPTION.name, connection.as_uri())

    def on_connection_error(self, exc, interval):
        # One line per attempt; kombu's default adds a traceback to each.
        logger.warning("broker unreachable (%r); trying again in %.0fs", exc, interval)

    def on_message(self, message):
        self.handling_message = True
        try:
            return self.handle(message)
        finally:
            self.handling_message = False

    def handle(self, message):
        # A long-running process: drop database connections that died or outlived their age.
        close_old_connections()
        try:
            event = contracts.parse(message.body, message.content_type, accept=self.reads)
        except contracts.ContractError as exc:
            return self.dead_letter(message, str(exc))
        try:
            shipped = apply_shipment_dispatched(event)
        except PermanentError as exc:
            return self.dead_letter(message, str(exc))
        except (OperationalError, InterfaceError) as exc:
            logger.warning(
                "database unavailable for event %s, back to the queue: %s", event.id, exc
            )
            close_old_connections()
            time.sleep(RETRY_PAUSE_SECONDS)
            return message.requeue()
        except Exception as exc:
            logger.exception("could not apply event %s", event.id)
            return self.dead_letter(message, f"unexpected error: {exc!r}")
        order_id = event.data["order_id"]
        if shipped:
            logger.info("order %s shipped: %s", order_id, event.data["tracking_number"])
        else:
            logger.info(
                "order %s was already shipped; event %s changes nothing", order_id, event.id
            )
        return message.ack()

    def on_decode_error(self, message, exc):
        # Out of the box kombu acknowledges (drops) a message it cannot decode.
        self.dead_letter(message, f"cannot be decoded: {exc!r}")

    def dead_letter(self, message, reason):
        logger.error(
            "dead-lettering message %s into %s: %s",
            message.properties.get("message_id") or message.delivery_tag,
            SUBSCRIPTION.parking_queue.name,
            reason,
        )
        message.reject(requeue=False)

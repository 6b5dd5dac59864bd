"""The shop's event consumer: applies the warehouse's shipment.dispatched events.

`manage.py consume_shop_events` runs it, a process of its own beside the Celery workers. It is an
EventConsumer (contracts/consuming.py): it (re)connects to RabbitMQ for as long as it takes,
declares its queue (config/queues.py: SHOP_EVENTS) and takes a few messages at a time. For each:

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

import contracts
from config import queues
from contracts.consuming import EventConsumer
from jobs.errors import PermanentError
from shop import services
from shop.models import Order

logger = logging.getLogger(__name__)

SUBSCRIPTION = queues.SHOP_EVENTS
# How long a message that met a database outage waits before it goes back to the queue.
RETRY_PAUSE_SECONDS = 2


def why_refused(message):
    """Why the consumer parked `message`, in words: what the contracts say is wrong with it.

    The dead-letters page shows this for `shop.shipment-dispatched.dead`
    (JOBS_EVENT_PARKING_QUEUES in config/settings.py).
    """
    problem = contracts.problem_with(message.body, message.content_type, accept=SUBSCRIPTION.reads)
    return problem or "a valid event the consumer could not apply: its log says why"


def apply_shipment_dispatched(event):
    """Mark the order of `event` shipped and ask for its email; False if it already was."""
    data = event.data
    order = Order.objects.filter(pk=data["order_id"]).first()
    if order is None:
        raise PermanentError(f"order {data['order_id']} does not exist")
    return services.ship_order(
        order, carrier=data["carrier"], tracking_number=data["tracking_number"]
    )


class ShopEventConsumer(EventConsumer):
    subscription = SUBSCRIPTION
    queues_to_declare = queues.EVENT_QUEUES
    logger = logger

    def handle(self, message):
        # A long-running process: drop database connections that died or outlived their age.
        close_old_connections()
        return super().handle(message)

    def handle_event(self, event, message):
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

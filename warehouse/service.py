"""The warehouse service: one process that consumes order.placed and publishes shipment.dispatched.

An EventConsumer (contracts/consuming.py): it (re)connects to RabbitMQ for as long as it takes,
declares its queues, and hands each event it can read to `handle_event`. Between messages, at
least once a second, `on_iteration` dispatches the orders whose time has come and publishes what
waits in the outbox, on a connection of its own, with publisher confirms.

What happens to a message:

- an event it can read is applied in one transaction (store.py), then acknowledged;
- a message it cannot read (not JSON, another version, a schema violation) is rejected without
  requeue: RabbitMQ moves it to `warehouse.order-placed.dead`, and the reason is logged;
- a database that is busy or failing: the message goes back to the queue after a pause;
- anything else is a bug: the message is dead-lettered with the error logged, and the service
  goes on with the next one.
"""

import logging
import sqlite3
import time

from kombu import Connection, Producer

import contracts
from contracts import topology
from contracts.consuming import EventConsumer

logger = logging.getLogger("warehouse")

SUBSCRIPTION = topology.WAREHOUSE
PUBLISHES = ("shipment.dispatched",)
# How long a message that met a database error waits before it goes back to the queue.
RETRY_PAUSE_SECONDS = 2
# How often the service notes that it is alive (for `python -m warehouse health`).
ALIVE_EVERY_SECONDS = 5


class WarehouseService(EventConsumer):
    subscription = SUBSCRIPTION
    queues_to_declare = topology.queues_to_declare(consumes=[SUBSCRIPTION], publishes=PUBLISHES)
    logger = logger

    def __init__(self, settings, store):
        self.settings = settings
        self.store = store
        self.prefetch = settings.prefetch
        # Confirms on every channel of these connections: a publish returns once RabbitMQ has
        # the message (and has written it to disk, as it is persistent), or raises.
        super().__init__(
            Connection(
                settings.broker_url,
                heartbeat=settings.heartbeat_seconds,
                transport_options={"confirm_publish": True},
            )
        )
        self._publisher = None
        self._alive_at = 0.0

    # --- consuming: what an event does (the rest is EventConsumer's) -----------------------

    def handle_event(self, event, message):
        try:
            outcome = self.store.reserve(
                event,
                dispatch_delay=self.settings.dispatch_delay_seconds,
                initial_stock=self.settings.initial_stock,
            )
        except sqlite3.OperationalError as exc:  # locked, disk full, I/O error: try again later
            logger.warning("database error on event %s, back to the queue: %s", event.id, exc)
            time.sleep(RETRY_PAUSE_SECONDS)
            return message.requeue()
        except Exception as exc:
            logger.exception("could not apply event %s", event.id)
            return self.dead_letter(message, f"unexpected error: {exc!r}")
        logger.info("order %s: %s (event %s)", event.data["order_id"], outcome, event.id)
        return message.ack()

    # --- dispatching and publishing --------------------------------------------------------

    def on_iteration(self):
        try:
            now = time.time()
            if now - self._alive_at >= ALIVE_EVERY_SECONDS:
                self.store.mark_alive()
                self._alive_at = now
            for order_id in self.store.dispatch_due(carrier=self.settings.carrier):
                logger.info("order %s dispatched", order_id)
            self.publish_outbox()
        except sqlite3.Error as exc:  # nothing is lost: the next iteration takes it up again
            logger.warning("database error while dispatching, trying again in a moment: %s", exc)

    def publish_outbox(self):
        """Publish the outbox, oldest first; stop at the first failure and try again later."""
        for entry in self.store.unpublished():
            try:
                self.publish(entry["routing_key"], entry["body"], entry["event_id"])
            except Exception as exc:
                logger.warning("could not publish event %s, will retry: %r", entry["event_id"], exc)
                self._drop_publisher()
                return
            self.store.mark_published(entry["event_id"])
            logger.info("published %s %s", entry["routing_key"], entry["event_id"])

    def publish(self, routing_key, body, event_id):
        self.publisher.publish(
            body,
            exchange=topology.EXCHANGE,
            routing_key=routing_key,
            # Declared before publishing: the shop's queue exists even if the shop never ran.
            declare=topology.queues_to_declare(publishes=[routing_key]),
            content_type=contracts.CONTENT_TYPE,
            content_encoding="utf-8",
            delivery_mode=2,  # persistent
            message_id=event_id,
            type=routing_key,
            app_id="warehouse",
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.5, "interval_step": 1},
            timeout=10,  # for RabbitMQ's confirm
        )

    @property
    def publisher(self):
        if self._publisher is None:
            # No AMQP heartbeats on this one: it is idle between dispatches, and nothing would
            # send them; a dead connection shows at the next publish (confirm timeout).
            connection = self.connection.clone(heartbeat=0)
            connection.ensure_connection(max_retries=1)
            self._publisher = Producer(connection)
        return self._publisher

    def _drop_publisher(self):
        if self._publisher is not None:
            self._publisher.connection.collect()  # without a goodbye to a broker that is gone
            self._publisher = None

    def on_consume_end(self, connection, channel):
        self._drop_publisher()

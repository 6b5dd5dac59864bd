"""What every event consumer does the same way: a kombu ConsumerMixin on one subscription.

It (re)connects to RabbitMQ for as long as it takes, declares its queues, takes a few messages
at a time and acknowledges each by hand. A message it cannot read (not JSON, another version, a
schema violation, not even decodable) is rejected without requeue: RabbitMQ parks it in the
subscription's parking queue, and the reason is logged. A subclass says what an event it can
read does, in `handle_event`, and acknowledges, requeues or dead-letters the message there.

Both sides use it: like the rest of this package it imports neither the shop nor the warehouse.
"""

import logging

from kombu.mixins import ConsumerMixin

from contracts import events, topology


class EventConsumer(ConsumerMixin):
    # Set by each subclass: its Subscription (contracts/topology.py), the queues it declares
    # before consuming, and the logger its lines go to.
    subscription = None
    queues_to_declare = ()
    logger = logging.getLogger(__name__)
    # A few messages in hand at a time: enough to keep busy, little to redeliver after a crash.
    prefetch = 4

    def __init__(self, connection):
        self.connection = connection
        self.reads = events.require_schemas(self.subscription.reads)
        self.handling_message = False

    def stop(self):
        """Leave now, or once the message in hand is done (SIGTERM, Ctrl-C).

        Anywhere else leaving at once is safe (a transaction not committed is rolled back, a
        message not acknowledged comes back), and waiting would not do: while the broker is
        away, kombu sleeps between connection attempts and looks at nothing.
        """
        self.should_stop = True
        if not self.handling_message:
            raise SystemExit(0)

    def get_consumers(self, Consumer, channel):
        topology.declare(channel, self.queues_to_declare)
        return [
            Consumer(
                queues=[self.subscription.queue],
                on_message=self.on_message,
                prefetch_count=self.prefetch,
                no_ack=False,
            )
        ]

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        self.logger.info("consuming %s on %s", self.subscription.name, connection.as_uri())

    def on_connection_error(self, exc, interval):
        # One line per attempt; kombu's default adds a traceback to each.
        self.logger.warning("broker unreachable (%r); trying again in %.0fs", exc, interval)

    def on_message(self, message):
        self.handling_message = True
        try:
            return self.handle(message)
        finally:
            self.handling_message = False

    def handle(self, message):
        try:
            event = events.parse(message.body, message.content_type, accept=self.reads)
        except events.ContractError as exc:
            return self.dead_letter(message, str(exc))
        return self.handle_event(event, message)

    def handle_event(self, event, message):
        """Apply `event`, then ack, requeue or dead-letter `message`: the subclass's own part."""
        raise NotImplementedError

    def on_decode_error(self, message, exc):
        # Out of the box kombu acknowledges (drops) a message it cannot decode.
        self.dead_letter(message, f"cannot be decoded: {exc!r}")

    def dead_letter(self, message, reason):
        self.logger.error(
            "dead-lettering message %s into %s: %s",
            message.properties.get("message_id") or message.delivery_tag,
            self.subscription.parking_queue.name,
            reason,
        )
        message.reject(requeue=False)

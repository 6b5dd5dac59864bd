"""Where events travel: one exchange, and for each subscriber a queue and a parking queue.

The `events` topic exchange carries every event under its type as the routing key. Each
subscriber has one durable queue bound to the types it reads. What a subscriber rejects (an
event it cannot read) goes through the `events.dead` exchange into `<queue>.dead`, where it
waits for a person; RabbitMQ adds the `x-death` header: from which queue, why, when, how often.

Both sides declare, before they publish, the queues of the events they publish as well as their
own: an event published while its subscriber has never run then waits in the subscriber's queue
instead of being dropped by an exchange that has nowhere to route it. Declaring is idempotent,
but only with identical arguments (RabbitMQ refuses a redeclaration with other ones with
PRECONDITION_FAILED), which is why the arguments live here, once, for both sides.

`reads` is part of the contract too: the versions a subscriber can act on. It grows when the
subscriber's code learns a new version, and only then (see README.md, "Rolling out a v2").
"""

import os
from dataclasses import dataclass

from kombu import Exchange, Queue, binding

# RabbitMQ's queue type for every queue of both sides: "classic" on a single node, "quorum" for
# queues replicated across a cluster that survive the loss of a node (docs/quorum-queues.md).
# Both sides must agree: RabbitMQ refuses a queue declared again with other arguments.
QUEUE_TYPE = os.environ.get("RABBITMQ_QUEUE_TYPE", "classic")
QUEUE_TYPES = ("classic", "quorum")
if QUEUE_TYPE not in QUEUE_TYPES:
    raise ValueError(f"RABBITMQ_QUEUE_TYPE must be one of {QUEUE_TYPES}, not {QUEUE_TYPE!r}")
# The shop's job queues are declared the same way (jobs/topology.py); contracts/ imports neither
# side, so it keeps its own copy, and a test keeps the two alike.
# On quorum queues RabbitMQ counts how often a message was handed out and came back unfinished
# (a consumer's connection lost with it, a reject with requeue). Past this many, the message is
# dead-lettered instead of being handed out again: the broker's own guard against a message
# that takes down whoever consumes it. RabbitMQ's default is 20.
DELIVERY_LIMIT = 10


def dead_lettering_arguments(dead_letter_exchange, routing_key, queue_type=QUEUE_TYPE):
    """The arguments of a queue whose rejected messages go to `dead_letter_exchange`."""
    arguments = {
        "x-dead-letter-exchange": dead_letter_exchange,
        "x-dead-letter-routing-key": routing_key,
    }
    if queue_type == "quorum":
        arguments |= {
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            # By default a quorum queue dead-letters at most once: a message is dropped if
            # its parking queue cannot take it at that moment (a node down). At least once,
            # the message stays until the parking queue confirms it; that needs
            # reject-publish, so a full queue refuses new messages instead of dropping its head.
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
    return arguments


def parking_arguments(queue_type=QUEUE_TYPE):
    """The arguments of a parking queue: replicated too, on quorum, so no node takes it along."""
    return {"x-queue-type": "quorum"} if queue_type == "quorum" else {}


EXCHANGE = Exchange("events", type="topic", durable=True)
DEAD_LETTER_EXCHANGE = Exchange("events.dead", type="direct", durable=True)


@dataclass(frozen=True)
class Subscription:
    """A subscriber's queue, its parking queue, and what it reads: {type: versions}."""

    name: str
    reads: dict

    @property
    def queue(self):
        return Queue(
            self.name,
            [binding(EXCHANGE, routing_key=event_type) for event_type in self.reads],
            durable=True,
            queue_arguments=dead_lettering_arguments(DEAD_LETTER_EXCHANGE.name, self.name),
        )

    @property
    def parking_queue(self):
        return Queue(
            f"{self.name}.dead",
            exchange=DEAD_LETTER_EXCHANGE,
            routing_key=self.name,
            durable=True,
            queue_arguments=parking_arguments(),
        )

    @property
    def queues(self):
        return [self.queue, self.parking_queue]


# The warehouse reserves stock for every order placed, and ships it.
WAREHOUSE = Subscription("warehouse.order-placed", reads={"order.placed": (1,)})
# The shop marks orders shipped and emails the customer.
SHOP = Subscription("shop.shipment-dispatched", reads={"shipment.dispatched": (1,)})
SUBSCRIPTIONS = (WAREHOUSE, SHOP)


def subscribers_of(event_type):
    return [s for s in SUBSCRIPTIONS if event_type in s.reads]


def queues_to_declare(*, consumes=(), publishes=()):
    """The queues a side declares: its own, and those of everyone who reads what it publishes."""
    wanted = list(consumes) + [s for t in publishes for s in subscribers_of(t)]
    unique = {s.name: s for s in wanted}
    return [queue for s in unique.values() for queue in s.queues]


def declare(channel, queues):
    """Declare the exchanges, `queues` and their bindings on `channel` (idempotent)."""
    for queue in queues:
        queue(channel).declare()

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

from dataclasses import dataclass

from kombu import Exchange, Queue, binding

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
            queue_arguments={
                "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE.name,
                "x-dead-letter-routing-key": self.name,
            },
        )

    @property
    def parking_queue(self):
        return Queue(
            f"{self.name}.dead",
            exchange=DEAD_LETTER_EXCHANGE,
            routing_key=self.name,
            durable=True,
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

"""The shape of a job queue on RabbitMQ: a work queue that dead-letters into a parking queue.

Every work queue dead-letters what its consumers reject into a queue of its own, `<name>.dead`,
through the `jobs.dead` exchange, where staff can inspect and replay it (jobs/deadletters.py).
A project names its queues once, in its settings (`CELERY_TASK_QUEUES = [work_queue(...)]`);
everything in this app that needs the list reads it back from the Celery app's configuration.

Two queue types (docs/quorum-queues.md):
- "classic", for one RabbitMQ node: priority queues with MAX_PRIORITY levels;
- "quorum", for a RabbitMQ cluster: every queue replicated on a majority of nodes, so losing a
  node loses no message. Quorum queues know two priority levels (0-4 normal, 5 and up high);
  RabbitMQ counts deliveries and dead-letters a message returned DELIVERY_LIMIT times. The work
  exchange is a topic exchange, so that a retry's countdown waits in the broker (Celery's
  native delayed delivery) instead of in a worker's prefetch slot.

The declarations import no Django: they are plain kombu objects, which a service that is not a
Django project can use to declare its queues alike.
"""

from kombu import Exchange, Queue

QUEUE_TYPES = ("classic", "quorum")
# On quorum queues RabbitMQ counts how often a message was handed out and came back unfinished
# (a consumer's connection lost with it, a reject with requeue). Past this many, the message is
# dead-lettered instead of being handed out again: the broker's own guard against a message
# that takes down whoever consumes it. RabbitMQ's default is 20.
DELIVERY_LIMIT = 10

# RabbitMQ priorities: higher is more urgent. Keep the range small, RabbitMQ keeps one
# internal queue per level (classic queues; quorum queues refuse the argument and treat 5 and
# up as "high").
MAX_PRIORITY = 10
PRIORITY_URGENT = 9  # a customer is waiting for it
PRIORITY_HIGH = 7
PRIORITY_NORMAL = 5
PRIORITY_BULK = 1  # newsletters, regenerations: whatever can wait

DEAD_LETTER_EXCHANGE = Exchange("jobs.dead", type="direct", durable=True)


def checked_queue_type(queue_type):
    if queue_type not in QUEUE_TYPES:
        raise ValueError(f"the queue type must be one of {QUEUE_TYPES}, not {queue_type!r}")
    return queue_type


def dead_lettering_arguments(dead_letter_exchange, routing_key, queue_type):
    """The arguments of a queue whose rejected messages go to `dead_letter_exchange`."""
    arguments = {
        "x-dead-letter-exchange": dead_letter_exchange,
        "x-dead-letter-routing-key": routing_key,
    }
    if checked_queue_type(queue_type) == "quorum":
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


def parking_arguments(queue_type):
    """The arguments of a parking queue: replicated too, on quorum, so no node takes it along."""
    return {"x-queue-type": "quorum"} if checked_queue_type(queue_type) == "quorum" else {}


def work_exchange(queue_type):
    return Exchange("jobs", type="topic" if queue_type == "quorum" else "direct", durable=True)


def dead_letter_queue_name(queue_name):
    return f"{queue_name}.dead"


def work_queue(name, queue_type="classic"):
    """A durable work queue that dead-letters what its consumers reject into `<name>.dead`."""
    arguments = dead_lettering_arguments(DEAD_LETTER_EXCHANGE.name, name, queue_type)
    if queue_type != "quorum":
        arguments["x-max-priority"] = MAX_PRIORITY
    return Queue(
        name,
        exchange=work_exchange(queue_type),
        routing_key=name,
        durable=True,
        queue_arguments=arguments,
    )


def dead_letter_queue(queue_name, queue_type="classic"):
    """Where `queue_name`'s rejected messages are parked. Nothing consumes it."""
    return Queue(
        dead_letter_queue_name(queue_name),
        exchange=DEAD_LETTER_EXCHANGE,
        routing_key=queue_name,
        durable=True,
        queue_arguments=parking_arguments(queue_type),
    )


# --- Reading the topology back from a Celery app ------------------------------------------------


def work_queues(app):
    """The app's queues that are work queues of this topology (they dead-letter into jobs.dead)."""
    return [
        queue
        for queue in app.conf.task_queues or ()
        if (queue.queue_arguments or {}).get("x-dead-letter-exchange") == DEAD_LETTER_EXCHANGE.name
    ]


def work_queue_names(app):
    return [queue.name for queue in work_queues(app)]


def queue_type_of(app):
    """ "quorum" or "classic", as the app's work queues are declared."""
    types = {(q.queue_arguments or {}).get("x-queue-type", "classic") for q in work_queues(app)}
    return "quorum" if types == {"quorum"} else "classic"


def declare_work_queues(connection, queues, queue_type):
    """Declare work `queues` and their parking queues (idempotent).

    A worker does at start-up, before it consumes (jobs/signals.py): a message can only be
    dead-lettered into a queue that exists, and a worker declares only the queues it consumes.
    """
    channel = connection.default_channel
    for queue in queues:
        queue(channel).declare()
        dead_letter_queue(queue.name, queue_type)(channel).declare()

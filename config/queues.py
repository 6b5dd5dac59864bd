"""The queue topology: the one place that knows exchanges, queues, routes and priorities.

Every work queue dead-letters what its consumers reject into a parking queue of its own,
`<name>.dead`, where staff can inspect and replay them. Call sites never name a queue: a task
reaches its queue, and gets its priority, through TASK_ROUTES.

Two topologies, chosen by RABBITMQ_QUEUE_TYPE (docs/quorum-queues.md):
- "classic" (the default, one RabbitMQ node): priority queues with ten levels;
- "quorum" (production, a RabbitMQ 4 cluster): every queue replicated on a majority of nodes,
  so losing a node loses no message. Quorum queues know two priority levels (0-4 normal,
  5 and up high), which is what the routes below need: the customer's emails are high, bulk work
  normal. RabbitMQ counts deliveries (the poison guard) and dead-letters at least once. The
  work exchange is a topic exchange, so that a retry's countdown waits in the broker (Celery's
  native delayed delivery) instead of in a worker's prefetch slot.
"""

from kombu import Exchange, Queue

from contracts import topology as event_topology

QUEUE_TYPE = event_topology.QUEUE_TYPE
QUORUM = QUEUE_TYPE == "quorum"

# RabbitMQ priorities: higher is more urgent. Keep the range small, RabbitMQ keeps one
# internal queue per level (classic queues; quorum queues refuse the argument).
MAX_PRIORITY = 10
PRIORITY_URGENT = 9  # a customer is waiting for it
PRIORITY_HIGH = 7
PRIORITY_NORMAL = 5
PRIORITY_BULK = 1  # newsletters, regenerations: whatever can wait


def work_exchange(queue_type=QUEUE_TYPE):
    return Exchange("jobs", type="topic" if queue_type == "quorum" else "direct", durable=True)


WORK_EXCHANGE = work_exchange()
DEAD_LETTER_EXCHANGE = Exchange("jobs.dead", type="direct", durable=True)

EMAILS = "emails"
MEDIA = "media"
REPORTS = "reports"
MAINTENANCE = "maintenance"
# Talking to other systems (a supplier's web site, the warehouse service): slow, rate-limited
# work that must never hold up an email or a thumbnail.
INTEGRATIONS = "integrations"
WORK_QUEUE_NAMES = (EMAILS, MEDIA, REPORTS, MAINTENANCE, INTEGRATIONS)
DEFAULT_QUEUE = MAINTENANCE


def dead_letter_queue_name(queue_name):
    return f"{queue_name}.dead"


def work_queue(name, queue_type=QUEUE_TYPE):
    """A durable priority queue that dead-letters what its consumers reject."""
    arguments = event_topology.dead_lettering_arguments(DEAD_LETTER_EXCHANGE.name, name, queue_type)
    if queue_type != "quorum":
        arguments["x-max-priority"] = MAX_PRIORITY
    return Queue(
        name,
        exchange=work_exchange(queue_type),
        routing_key=name,
        durable=True,
        queue_arguments=arguments,
    )


def dead_letter_queue(queue_name):
    """Where `queue_name`'s rejected messages are parked. Nothing consumes it."""
    return Queue(
        dead_letter_queue_name(queue_name),
        exchange=DEAD_LETTER_EXCHANGE,
        routing_key=queue_name,
        durable=True,
        queue_arguments=event_topology.parking_arguments(),
    )


TASK_QUEUES = [work_queue(name) for name in WORK_QUEUE_NAMES]
DEAD_LETTER_QUEUES = [dead_letter_queue(name) for name in WORK_QUEUE_NAMES]


def route(queue, priority=PRIORITY_NORMAL):
    return {"queue": queue, "routing_key": queue, "priority": priority}


TASK_ROUTES = {
    "notifications.send_order_confirmation": route(EMAILS, PRIORITY_URGENT),
    "notifications.send_shipping_notification": route(EMAILS, PRIORITY_HIGH),
    # Someone just subscribed and waits for the link; the newsletter itself can wait. Its
    # planner (seconds, once per newsletter) goes before the chunks it publishes.
    "notifications.send_newsletter_confirmation": route(EMAILS, PRIORITY_URGENT),
    "notifications.plan_newsletter": route(EMAILS, PRIORITY_NORMAL),
    "notifications.send_newsletter_chunk": route(EMAILS, PRIORITY_BULK),
    # A fresh upload is waited for by the staff member who made it; a bulk regeneration is not.
    "media_jobs.make_renditions": route(MEDIA, PRIORITY_HIGH),
    "media_jobs.regenerate_renditions": route(MEDIA, PRIORITY_BULK),
    "media_jobs.make_poster_and_preview": route(MEDIA, PRIORITY_HIGH),
    # A report a person asked for goes before the scheduled ones.
    "shop.build_sales_report": route(REPORTS, PRIORITY_HIGH),
    "shop.build_scheduled_sales_report": route(REPORTS, PRIORITY_NORMAL),
    # Staff waiting on "fetch now" and the schedule's runs share one route: a run of a
    # supplier that is already on its way is reused, not queued again (suppliers/services.py).
    "suppliers.fetch_supplier_prices": route(INTEGRATIONS),
    "suppliers.fetch_all_suppliers": route(INTEGRATIONS, PRIORITY_HIGH),
    "jobs.noop": route(EMAILS, PRIORITY_BULK),
    # The demo's misbehaving jobs (demo/tasks.py), where the demo is installed.
    "demo.poison_pill": route(MAINTENANCE, PRIORITY_BULK),
    "demo.runaway": route(MAINTENANCE, PRIORITY_BULK),
    "jobs.republish_pending_jobs": route(MAINTENANCE, PRIORITY_HIGH),
    "celery.backend_cleanup": route(MAINTENANCE),
    # A parcel waits on it, a supplier feed does not: the warehouse hears of an order first.
    "shop.publish_order_placed": route(INTEGRATIONS, PRIORITY_HIGH),
}

# Events exchanged with the warehouse service (contracts/): a topic exchange, `events`, and a
# durable queue per subscriber with its parking queue `<name>.dead`. Both sides declare these
# queues with the same arguments, so they are defined once, in contracts/topology.py; this is
# the shop's share of them.
EVENTS_EXCHANGE = event_topology.EXCHANGE
# What `manage.py consume_shop_events` reads: shipment.dispatched.
SHOP_EVENTS = event_topology.SHOP
# The shop's queue, and the queues of those who read what the shop publishes (order.placed):
# declared before anything is published, an event waits there for a subscriber that is down or
# has never run, instead of being dropped by an exchange with nowhere to route it.
EVENT_QUEUES = event_topology.queues_to_declare(consumes=[SHOP_EVENTS], publishes=["order.placed"])
# The event queues that need a consumer (the shop's `consume_shop_events`, the warehouse service),
# without their parking queues.
_PARKING = {dead_letter_queue_name(q.name) for q in EVENT_QUEUES}
EVENT_QUEUE_NAMES = tuple(q.name for q in EVENT_QUEUES if q.name not in _PARKING)
# Parking queues of the shop's event consumers, with what each consumer reads.
EVENT_DEAD_LETTER_QUEUES = {SHOP_EVENTS.parking_queue.name: SHOP_EVENTS}


def unrouted(task_names):
    """The tasks of `task_names` that TASK_ROUTES does not name, sorted.

    Such a task would land on the default queue with no priority, silently: the worker refuses
    to start with one (config/celery.py). Celery's own tasks (`celery.*`) run only as parts of
    canvases this project does not publish, except those routed above.
    """
    return sorted(
        name for name in task_names if name not in TASK_ROUTES and not name.startswith("celery.")
    )


def declare_topology(connection):
    """Declare every exchange, work queue and dead-letter queue (idempotent).

    Workers call this at start-up, before they consume: a message can only be dead-lettered
    into a queue that exists, and a worker only declares the queues it consumes itself.
    """
    channel = connection.default_channel
    for queue in TASK_QUEUES + DEAD_LETTER_QUEUES + EVENT_QUEUES:
        queue(channel).declare()

"""The shop's queues: which work queues there are, and the routes of tasks that are not jobs.

A job names its queue and priority where it is declared (`@job`, jobs/declare.py); what a
queue looks like on RabbitMQ (its parking queue `<name>.dead`, priorities, quorum or classic)
is the jobs app's (jobs/topology.py). This module says which queues the shop has, on which
queue type (RABBITMQ_QUEUE_TYPE, docs/quorum-queues.md), and routes the few Celery tasks that
are not jobs: beat's ticks, the outbox's sweeper, Celery's own cleanup.
"""

from contracts import topology as event_topology
from jobs import topology
from jobs.topology import PRIORITY_BULK, PRIORITY_HIGH, PRIORITY_NORMAL

QUEUE_TYPE = event_topology.QUEUE_TYPE
QUORUM = QUEUE_TYPE == "quorum"
WORK_EXCHANGE = topology.work_exchange(QUEUE_TYPE)

EMAILS = "emails"
MEDIA = "media"
REPORTS = "reports"
MAINTENANCE = "maintenance"
# Talking to other systems (a supplier's web site, the warehouse service): slow, rate-limited
# work that must never hold up an email or a thumbnail.
INTEGRATIONS = "integrations"
WORK_QUEUE_NAMES = (EMAILS, MEDIA, REPORTS, MAINTENANCE, INTEGRATIONS)
DEFAULT_QUEUE = MAINTENANCE

TASK_QUEUES = [topology.work_queue(name, QUEUE_TYPE) for name in WORK_QUEUE_NAMES]
# Each work queue's `<name>.dead`, declared with it by every worker (jobs/signals.py).
DEAD_LETTER_QUEUES = [topology.dead_letter_queue(name, QUEUE_TYPE) for name in WORK_QUEUE_NAMES]


def route(queue, priority=PRIORITY_NORMAL):
    return {"queue": queue, "routing_key": queue, "priority": priority}


# Tasks that are not jobs. Jobs route themselves (jobs/declare.py: route_declared_job).
TASK_ROUTES = {
    # Beat's tick: staff's "fetch now" and the schedule's runs share the job's route.
    "suppliers.fetch_all_suppliers": route(INTEGRATIONS, PRIORITY_HIGH),
    # Filler for load tests and the demo's flood: it stands for a newsletter's emails.
    "jobs.noop": route(EMAILS, PRIORITY_BULK),
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
_PARKING = {topology.dead_letter_queue_name(q.name) for q in EVENT_QUEUES}
EVENT_QUEUE_NAMES = tuple(q.name for q in EVENT_QUEUES if q.name not in _PARKING)


def declare_topology(connection):
    """Declare every queue of the shop: the work queues, their parking queues, the event queues."""
    topology.declare_work_queues(connection, TASK_QUEUES, QUEUE_TYPE)
    declare_event_queues(connection)


def declare_event_queues(connection):
    """Declare the events exchange, the event queues and their parking queues (idempotent)."""
    event_topology.declare(connection.default_channel, EVENT_QUEUES)

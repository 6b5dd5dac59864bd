"""Health checks: is the web up, does the broker answer, does every queue have a consumer?

Plain functions returning (ok, detail); the views in jobs/views.py turn them into HTTP answers
for load balancers and monitoring, with 503 naming what is down.
"""

from celery import current_app
from django.db import connection

from jobs import conf, pause, topology
from jobs.dashboard import queue_counts, stalled_queues


def database():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return False, f"database: {exc}"
    return True, "database answers"


def broker(timeout=2):
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:
        return False, f"broker unreachable: {exc}"
    return True, "broker answers"


def workers():
    """Every work queue has a worker: a consumer, as RabbitMQ counts them.

    A Celery worker holds a consumer on each queue it serves for as long as its connection
    lives, so RabbitMQ's count (a passive declare per queue: milliseconds) tells which queue
    nobody serves. A broadcast (`inspect().active_queues()`) told the same but always waited
    its whole timeout, a second, for replies that might still come, and missed workers
    started with their remote control off.

    What a consumer count cannot tell: a worker whose connection lives but which takes no more
    work (every process stuck in a task) still holds its consumers. A worker whose main process
    hangs stops sending heartbeats and RabbitMQ closes its connection (CELERY_BROKER_HEARTBEAT);
    a stuck pool is for a separate check, not built yet, on the age of the oldest waiting job
    (jobs/dashboard.py: oldest_waiting_by_queue, also on /metrics).
    """
    return _every_queue_consumed(
        topology.work_queue_names(current_app),
        missing="no worker consumes queue(s)",
        paused=set(pause.paused()),
    )


def progress():
    """Every work queue with a job waiting takes work: see dashboard.stalled_queues.

    Reported within JOBS_STALL_SECONDS of a job's queueing: a stopped worker that keeps its
    consumer, or a consumer that takes nothing, makes this fail while `workers` still passes.
    """
    stall = conf.JOBS_STALL_SECONDS
    stalled = stalled_queues(stall)
    if stalled:
        return False, (
            f"queue(s) taking nothing while a job waits over {stall:g} s: {', '.join(stalled)}"
        )
    return True, f"every queue with a job waiting over {stall:g} s took one since"


def event_consumers():
    """Every event queue has a consumer attached (its consumer count, by passive declare).

    The consumers of events (the warehouse service, `manage.py consume_shop_events`) are not
    Celery workers: no broadcast reaches them, but RabbitMQ counts them on their queue.
    """
    return _every_queue_consumed(conf.JOBS_EVENT_QUEUES, missing="no consumer on event queue(s)")


def _every_queue_consumed(names, missing, paused=()):
    """(ok, detail): whether each of the queues `names` has a consumer, naming those without.

    A queue staff paused (jobs/pause.py) has none on purpose: it is "paused", not down.
    """
    try:
        counts = queue_counts(names)
    except Exception as exc:  # a queue nobody declared yet (404) closes the channel too
        return False, f"broker unreachable, or a queue is missing: {exc}"
    idle = [name for name, (_, consumers) in counts.items() if not consumers and name not in paused]
    if idle:
        return False, f"{missing}: {', '.join(idle)}"
    consumed = ", ".join(
        f"{name} (paused)" if name in paused else f"{name} ({consumers})"
        for name, (_ready, consumers) in counts.items()
    )
    return True, f"consumers on every queue: {consumed}"

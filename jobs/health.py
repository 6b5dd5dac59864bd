"""Health checks: is the web up, does the broker answer, does every queue have a consumer?

Plain functions returning (ok, detail); the views in jobs/views.py turn them into HTTP answers
for load balancers and monitoring, with 503 naming what is down.
"""

from celery import current_app
from django.db import connection

from jobs import conf, topology
from jobs.dashboard import queue_counts


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


def workers(timeout=1.0):
    """Every work queue has at least one worker that answers (a broadcast, like ping)."""
    try:
        # A connection of its own: one from the pool may be stale after a broker restart.
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            inspect = current_app.control.inspect(timeout=timeout, connection=conn)
            replies = inspect.active_queues() or {}
    except Exception as exc:
        return False, f"broker unreachable, no worker can be asked: {exc}"
    served = {queue["name"] for consumed in replies.values() for queue in consumed}
    missing = [name for name in topology.work_queue_names(current_app) if name not in served]
    if missing:
        return False, f"no worker answers for queue(s): {', '.join(missing)}"
    return True, f"{len(replies)} worker(s) serve every queue"


def event_consumers():
    """Every event queue has a consumer attached (its consumer count, by passive declare).

    The consumers of events (the warehouse service, `manage.py consume_shop_events`) are not
    Celery workers: no broadcast reaches them, but RabbitMQ counts them on their queue.
    """
    try:
        counts = queue_counts(conf.JOBS_EVENT_QUEUES)
    except Exception as exc:  # a queue nobody declared yet (404) closes the channel too
        return False, f"broker unreachable, or an event queue is missing: {exc}"
    idle = [name for name, (_ready, consumers) in counts.items() if consumers == 0]
    if idle:
        return False, f"no consumer on event queue(s): {', '.join(idle)}"
    return True, f"every event queue has a consumer ({', '.join(counts)})"

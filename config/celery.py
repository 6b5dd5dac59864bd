"""The Celery app, in the shape of Celery's own Django example."""

import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("shop_jobs")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _is_ours(worker):
    # worker_init fires for any app's worker in a process that imported this module (the
    # benchmarks' bare Celery baseline, say): these handlers are for this app's workers only.
    return getattr(worker, "app", app) is app


@worker_init.connect
def refuse_unrouted_tasks(sender=None, **kwargs):
    """Stop a worker that knows a task config/queues.py does not route, naming it."""
    from config.queues import unrouted

    if not _is_ours(sender):
        return
    missing = unrouted(app.tasks)
    if missing:
        # SystemExit, not an exception: Celery logs and swallows what a signal handler raises.
        raise SystemExit(
            f"The worker will not start: task(s) without a route in config/queues.py "
            f"TASK_ROUTES: {', '.join(missing)}. Add each to TASK_ROUTES with its queue and "
            "priority."
        )


@worker_init.connect
def declare_queues_before_consuming(sender=None, **kwargs):
    from config.queues import declare_topology

    if not _is_ours(sender):
        return
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=10)
        declare_topology(connection)

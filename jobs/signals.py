"""What jobs do on Celery's signals: declare the queues at a worker's start, and record the
failures that happen outside a task's own code."""

import logging

from billiard.exceptions import TimeLimitExceeded, WorkerLostError
from celery.signals import task_failure, task_revoked, worker_init

from jobs import cancel, topology
from jobs.models import Job
from jobs.runner import dead_letter_queue_of, record_failure

logger = logging.getLogger(__name__)


@task_failure.connect
def record_killed_job(sender=None, task_id=None, exception=None, **kwargs):
    """A job whose worker process died too often, or that overran its hard time limit, is
    dead-lettered: say so on the job.

    This runs in the worker's main process, which survives its pool children.
    """
    if isinstance(exception, WorkerLostError):
        why = "its worker process died {attempts} time(s): {exception}"
    elif isinstance(exception, TimeLimitExceeded):
        why = "killed at its hard time limit ({exception} s) on attempt {attempts}"
    else:
        return
    job = Job.objects.filter(task_id=task_id).first()
    if job:
        reason = why.format(attempts=job.attempts, exception=exception)
        record_failure(job, reason[:500], dead_letter_queue_of(sender.request))
        logger.error("job %s dead-lettered: %s", job.key, reason)


@task_revoked.connect
def record_revoked_job(sender=None, request=None, terminated=False, expired=False, **kwargs):
    """A task revoked from Flower or `celery control revoke` ends its job CANCELLED, not
    "queued" forever. Celery's revokes live in the workers' memory (jobs/cancel.py says
    why the shop's own cancel does not); this records the ones a worker acted on."""
    state = cancel.record_revoke(request.id, terminated=terminated, expired=expired)
    if state is not None:
        logger.info("task %s revoked: its job is %s", request.id, state)


@worker_init.connect
def declare_queues_before_consuming(sender=None, **kwargs):
    """Declare the work queues and their parking queues before the worker consumes.

    A message can only be dead-lettered into a queue that exists, and a worker declares only
    the queues it consumes itself.
    """
    app = getattr(sender, "app", None)
    if app is None or not topology.work_queues(app):
        return  # another app's worker in this process (a benchmark's bare baseline, say)
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=10)
        topology.declare_work_queues(
            connection, topology.work_queues(app), topology.queue_type_of(app)
        )

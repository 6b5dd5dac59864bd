"""Job state for failures that happen outside the task's own code."""

import logging

from billiard.exceptions import TimeLimitExceeded, WorkerLostError
from celery.signals import task_failure

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

"""Job state for failures that happen outside the task's own code."""

import logging

from billiard.exceptions import WorkerLostError
from celery.signals import task_failure

from jobs.models import Job
from jobs.runner import dead_letter_queue_of, record_failure

logger = logging.getLogger(__name__)


@task_failure.connect
def record_lost_worker(sender=None, task_id=None, exception=None, **kwargs):
    """A job whose worker died too many times is dead-lettered: say so on the job.

    This runs in the worker's main process, which survives its pool children.
    """
    if not isinstance(exception, WorkerLostError):
        return
    job = Job.objects.filter(task_id=task_id).first()
    if job:
        reason = f"its worker process died {job.attempts} time(s): {exception}"
        record_failure(job, reason[:500], dead_letter_queue_of(sender.request))
        logger.error("job %s dead-lettered: %s", job.key, reason)

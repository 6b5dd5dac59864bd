"""Cancelling a job, durably: the cancel is a row in the database, not a worker's memory.

Celery's own cancel, `revoke`, is a message to the workers that each keeps in memory: a worker
that restarts forgets it, and a worker that was not running never hears it, so the job runs
after all when its message is taken (celery#4300). Here a cancel is written on the job row:

- a job not running yet (waiting in the outbox, in the broker, or for a retry) ends CANCELLED
  at once; when a worker takes its message later, whichever worker and after any restart,
  the runner (jobs/runner.py: claim_job) finds the job final and does nothing;
- a running job is *asked* to stop: the row says so, and the work sees it at its next stop
  point (`stop_if_cancelled`), between two emails, two pages, two rows, and ends CANCELLED.
  Work is only ever stopped where it is safe to stop: no half-sent email, no half file;
- a revoke sent from Flower or `celery control revoke` ends in the same state
  (jobs/signals.py), as far as the worker that receives it can tell.

Every cancel names who asked, and the job's timeline says it.
"""

import logging

from django.db import transaction
from django.utils import timezone

from jobs.logs import current_job
from jobs.models import Job, JobEvent, record_event

logger = logging.getLogger(__name__)

# The states a job can be cancelled in without asking anyone: nothing is running it.
NOT_RUNNING = (Job.State.PENDING, Job.State.QUEUED, Job.State.RETRYING)


class JobCancelled(Exception):
    """Raised at a stop point of a job that staff cancelled: the runner ends it CANCELLED."""


def cancel(job_pk, *, by):
    """Cancel job `job_pk` on behalf of `by` (a user name, "flower revoke", ...).

    Returns the job's state after the call: CANCELLED, STARTED (asked to stop at its next
    stop point) or the final state it had already reached, which a cancel does not change.
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_pk)
        if job.is_final:
            return job.state
        now = timezone.now()
        job.cancel_requested_at = job.cancel_requested_at or now
        job.cancelled_by = job.cancelled_by or by
        if job.state in NOT_RUNNING:
            _end_cancelled(job, now)
        else:
            job.save(update_fields=["cancel_requested_at", "cancelled_by"])
            record_event(job.pk, JobEvent.Kind.CANCEL_ASKED, detail=f"by {by}")
        logger.info("job %s: cancel asked by %s, now %s", job.key, by, job.state)
        return job.state


def cancel_many(jobs, *, by):
    """Cancel every unfinished job of the queryset `jobs`; returns how many were touched."""
    pks = list(jobs.exclude(state__in=Job.FINAL_STATES).values_list("pk", flat=True))
    for pk in pks:
        cancel(pk, by=by)
    return len(pks)


def record_revoke(task_id, *, terminated, expired):
    """A worker discarded (or, with terminate, killed) a revoked task: end its job the same
    way as a cancel from the shop's pages. Returns the job's state, None if no job has it."""
    job = Job.objects.filter(task_id=task_id).first()
    if job is None:
        return None
    by = "expiry (the message's expires passed)" if expired else "a revoke (Flower, celery control)"
    state = cancel(job.pk, by=by)
    if terminated:  # its process was killed: nothing will reach a stop point
        record_cancelled(job, "terminated by the revoke")
        state = Job.State.CANCELLED
    return state


def record_cancelled(job, detail=""):
    """End a job that staff asked to cancel while it ran: its attempt stopped at a stop
    point, or is gone."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if not job.is_final:
            _end_cancelled(job, timezone.now(), detail)


def stop_if_cancelled():
    """A stop point: raise JobCancelled if staff asked to cancel the running job.

    Call it where the work may stop and leave nothing half done: before each email of a
    chunk, each page of a fetch, each batch of a report. It costs one query by key.
    Outside a job (a unit test calling the plain function) it does nothing.
    """
    running = current_job.get()
    if running is None:
        return
    if Job.objects.filter(key=running["key"], cancel_requested_at__isnull=False).exists():
        raise JobCancelled(f"cancelled while running: {running['key']}")


def _end_cancelled(job, now, detail=""):
    job.state = Job.State.CANCELLED
    job.finished_at = now
    job.next_retry_at = None
    job.claimed_by = ""
    job.claim_expires_at = None
    job.save()
    words = f"by {job.cancelled_by}" + (f"; {detail}" if detail else "")
    record_event(job.pk, JobEvent.Kind.CANCELLED, attempt=job.attempts or None, detail=words)

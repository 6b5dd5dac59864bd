"""Running a job: once, with retries for transient faults and dead-lettering for the rest.

Jobs are declared with `@job` (jobs/declare.py), which makes a JobTask that calls
`self.run_once(key, work)` around a plain function. The rules live here, in one place:

- the job is *claimed* before the work starts. The claim is a lease on the job row; a second
  copy of the same message (redelivered after a connection loss, published twice by the
  outbox, replayed from a dead-letter queue) finds the job done and does nothing, or finds it
  claimed and comes back later;
- the outcome is written in the same transaction that marks the job done;
- a job staff cancelled (jobs/cancel.py) is not claimed, whenever its message arrives, and a
  running one that reaches a stop point ends CANCELLED: the message is acknowledged, not
  retried and not dead-lettered;
- TransientError (and the soft time limit) retries with exponential backoff and jitter, up to
  `max_retries` retries counted on the job row; PermanentError, and a transient fault that
  used up its retries, reject the message without requeue so RabbitMQ dead-letters it; any
  other exception is a bug and is rejected the same way (task_acks_on_failure_or_timeout=False).
"""

import logging
import math
import os
import random
import socket
import uuid
from dataclasses import dataclass
from datetime import timedelta

from celery import Task
from celery.exceptions import Reject, SoftTimeLimitExceeded
from django.db.models import F, Q
from django.utils import timezone

from jobs import cancel, conf, topology
from jobs.errors import PermanentError, TransientError
from jobs.logs import current_job
from jobs.models import Job, JobEvent, record_event

logger = logging.getLogger(__name__)

# How often a copy that finds its job claimed by another attempt looks again.
BUSY_RECHECK_SECONDS = 5


def backoff_seconds(retries, base=None, cap=None):
    """Exponential backoff with jitter: about base * 2**retries, capped.

    Half of the delay is fixed, half random ("equal jitter"): the delay still grows with every
    attempt, and jobs that failed together do not all come back in the same second.
    """
    base = conf.JOB_RETRY_BACKOFF_SECONDS if base is None else base
    cap = conf.JOB_RETRY_BACKOFF_MAX_SECONDS if cap is None else cap
    delay = min(cap, base * 2**retries)
    return delay / 2 + random.uniform(0, delay / 2)


@dataclass
class Claim:
    got_it: bool
    job: Job
    owner: str = ""

    @property
    def already_done(self):
        return self.job.state == Job.State.SUCCEEDED

    @property
    def cancelled(self):
        return self.job.state == Job.State.CANCELLED

    def seconds_left(self):
        if self.job.claim_expires_at is None:
            return 0
        return max(0.0, (self.job.claim_expires_at - timezone.now()).total_seconds())


def claim_job(key, *, task_name, task_id, args, lease_seconds, worker=""):
    """Take the lease on job `key` unless it is done or another attempt holds a live lease."""
    Job.objects.get_or_create(
        key=key,
        defaults={
            "kind": key.split(":", 1)[0],
            "task_name": task_name,
            "task_id": task_id,
            "args": args,
            "state": Job.State.QUEUED,
        },
    )
    now = timezone.now()
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    free = Q(claim_expires_at__isnull=True) | Q(claim_expires_at__lte=now)
    holder = Job.objects.filter(key=key).values_list("claimed_by", flat=True).first()
    if holder and holder_is_dead(holder):
        # The attempt holding the lease was killed (its process is gone): no need to wait
        # for the lease to run out. Only the current holder can be taken over this way.
        free |= Q(claimed_by=holder)
    claimable = (
        Job.objects.filter(key=key)
        .exclude(state__in=(Job.State.SUCCEEDED, Job.State.CANCELLED))
        .filter(free)
    )
    got_it = claimable.filter(cancel_requested_at__isnull=True).update(
        state=Job.State.STARTED,
        claimed_by=owner,
        claim_expires_at=now + timedelta(seconds=lease_seconds),
        attempts=F("attempts") + 1,
        started_at=now,
        next_retry_at=None,
    )
    if got_it:
        job = Job.objects.get(key=key)
        record_event(job.pk, JobEvent.Kind.STARTED, attempt=job.attempts, worker=worker)
        return Claim(got_it=True, job=job, owner=owner)
    if claimable.filter(cancel_requested_at__isnull=False).exists():
        # Staff asked a running attempt to stop, and it is gone without reaching a stop point
        # (its worker died): this copy ends the job instead of running it again.
        cancel.record_cancelled(Job.objects.get(key=key), "its attempt ended before stopping")
    return Claim(got_it=False, job=Job.objects.get(key=key), owner=owner)


def holder_is_dead(owner):
    """True if `owner` ("host:pid:nonce") names a process of this machine that no longer runs.

    On another machine we cannot tell, and the lease has to run out.
    """
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, under another user
    return False


def record_success(job, outcome):
    # One statement, so the outcome and the "done" mark are one transaction.
    Job.objects.filter(pk=job.pk).update(
        state=Job.State.SUCCEEDED,
        outcome=outcome,
        last_error="",
        finished_at=timezone.now(),
        claimed_by="",
        claim_expires_at=None,
    )
    record_event(job.pk, JobEvent.Kind.SUCCEEDED, attempt=job.attempts)


def record_retry(job, reason, delay):
    next_try = timezone.now() + timedelta(seconds=delay)
    Job.objects.filter(pk=job.pk).exclude(state=Job.State.SUCCEEDED).update(
        state=Job.State.RETRYING,
        last_error=reason,
        next_retry_at=next_try,
        claimed_by="",
        claim_expires_at=None,
    )
    detail = f"{reason}; next try at {timezone.localtime(next_try):%H:%M:%S}"
    record_event(job.pk, JobEvent.Kind.RETRYING, attempt=job.attempts, detail=detail)


def record_failure(job, reason, dead_letter_queue=None):
    """The job failed for good; with `dead_letter_queue`, its message is parked there."""
    Job.objects.filter(pk=job.pk).exclude(state=Job.State.SUCCEEDED).update(
        state=Job.State.FAILED,
        last_error=reason,
        finished_at=timezone.now(),
        claimed_by="",
        claim_expires_at=None,
    )
    record_event(job.pk, JobEvent.Kind.FAILED, attempt=job.attempts, detail=reason)
    if dead_letter_queue:
        record_event(job.pk, JobEvent.Kind.DEAD_LETTERED, detail=f"parked in {dead_letter_queue}")


def dead_letter_queue_of(request):
    """Where RabbitMQ parks this message if we reject it: the dead-letter queue of its queue."""
    queue = (request.delivery_info or {}).get("routing_key")
    return topology.dead_letter_queue_name(queue) if queue else None


def describe_error(exc):
    return f"{exc}"[:500] or type(exc).__name__


class JobTask(Task):
    """Base class for tasks that do one unit of business work."""

    max_retries = conf.JOB_MAX_RETRIES
    # With task_retry_on_worker_lost, a task whose worker process died is published again
    # after this delay, at most max_retries times: then it is dead-lettered, so a message
    # that kills its worker every time (a poison message) cannot loop forever.
    default_retry_delay = conf.JOB_WORKER_LOST_RETRY_DELAY_SECONDS
    # Dead-letters a job killed at its hard time limit instead of requeueing it forever.
    Request = "jobs.worker:JobRequest"
    # The job's kind (jobs/kinds.py), given by @job (jobs/declare.py).
    kind = None

    def job_key(self, *args):
        """The key of this job for `args`: one job of this kind per arguments, ever."""
        return self.kind.key(":".join(str(arg) for arg in args))

    @property
    def lease_seconds(self):
        # Longer than the hard time limit: past it, the attempt holding the lease is dead.
        return (self.time_limit or self.app.conf.task_time_limit or 300) + 10

    def run_once(self, key, work):
        """Run `work()` for job `key` unless it already ran; return its outcome (JSON-able)."""
        request = self.request
        claim = claim_job(
            key,
            task_name=self.name,
            task_id=request.id,
            args=list(request.args or []),
            lease_seconds=self.lease_seconds,
            worker=request.hostname,
        )
        if claim.already_done:
            logger.info("job %s was already done; this copy does nothing", key)
            return claim.job.outcome
        if claim.cancelled:
            logger.info("job %s was cancelled by %s; this copy does nothing", key,
                        claim.job.cancelled_by)  # fmt: skip
            return None
        if not claim.got_it:
            delay = min(claim.seconds_left(), BUSY_RECHECK_SECONDS) + random.uniform(0, 1)
            logger.info("job %s is running elsewhere; looking again in %.1fs", key, delay)
            raise self.come_back_in(delay)

        job = claim.job
        dead_letter_queue = dead_letter_queue_of(request)
        log_context = current_job.set({"key": key, "attempt": job.attempts})
        try:
            return self._attempt(job, work, dead_letter_queue)
        finally:
            current_job.reset(log_context)

    def _attempt(self, job, work, dead_letter_queue):
        key = job.key
        try:
            outcome = work()
        except cancel.JobCancelled:
            cancel.record_cancelled(job)
            logger.info("job %s stopped: cancelled by staff", key)
            return None
        except PermanentError as exc:
            reason = describe_error(exc)
            record_failure(job, reason, dead_letter_queue)
            logger.error("job %s failed for good: %s", key, reason)
            raise Reject(reason, requeue=False) from exc
        except (TransientError, SoftTimeLimitExceeded) as exc:
            # Celery raises SoftTimeLimitExceeded with a text of its own that only repeats the
            # class name ("SoftTimeLimitExceeded()"): say what happened instead.
            if isinstance(exc, SoftTimeLimitExceeded):
                reason = "took longer than its soft time limit"
            else:
                reason = describe_error(exc)
            if job.attempts > self.max_retries:
                reason = f"gave up after {job.attempts} attempts: {reason}"
                record_failure(job, reason, dead_letter_queue)
                logger.error("job %s %s", key, reason)
                raise Reject(reason, requeue=False) from exc
            # What the other side asked for, but never past the backoff's cap: a retry's
            # countdown is held unacknowledged by the worker, and RabbitMQ closes the channel
            # of a consumer that holds a message past its consumer_timeout (30 min).
            asked = min(getattr(exc, "retry_after", 0) or 0, conf.JOB_RETRY_BACKOFF_MAX_SECONDS)
            delay = max(backoff_seconds(job.attempts - 1), asked)
            record_retry(job, reason, delay)
            logger.warning("job %s attempt failed (%s); retrying in %.1fs", key, reason, delay)
            raise self.come_back_in(delay, exc) from exc
        except Exception as exc:
            record_failure(job, f"unexpected error: {exc!r}"[:500], dead_letter_queue)
            raise
        record_success(job, outcome)
        logger.info("job %s done", key)
        return outcome

    def come_back_in(self, seconds, exc=None):
        """Publish this message again to run in `seconds` (Celery's retry).

        The retry budget is counted in the job's attempts, not in Celery's retry counter, so
        a replay can start afresh and waiting for a busy job costs nothing; Celery's own
        limit is lifted for this one call.
        """
        if topology.queue_type_of(self.app) == "quorum":
            # Celery's native delayed delivery (quorum topology) waits whole seconds, at least
            # one: it refuses a shorter countdown and cuts a longer one down to the second.
            seconds = max(1, math.ceil(seconds))
        return self.retry(exc=exc, countdown=seconds, max_retries=self.request.retries + 1)

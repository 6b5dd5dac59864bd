"""Self-healing: find jobs whose message is gone and act on each, once.

The outbox's sweeper (jobs/outbox.py) covers a publish RabbitMQ never confirmed. Two more ways
a job can be left with no message to run it, both rare and both silent:

- **stuck QUEUED**: RabbitMQ confirmed the message, and then lost it (a queue purged or
  deleted by hand, a classic queue on a node that died with its disk). The job waits forever;
- **stuck STARTED past its lease**: an attempt claimed the job and its worker died, and the
  message did not come back (its host vanished with the message acknowledged, a queue deleted
  meanwhile). The lease says how long a live attempt can hold the job: the task's hard time
  limit plus a margin (jobs/runner.py: JobTask.lease_seconds), since past the hard limit the
  pool kills it.

The reconciler (celery beat, every RECONCILE_INTERVAL) publishes a job like that once more,
with a timeline entry saying why. It never decides on the clock alone that a job is lost, the
trap of rescue loops that re-ran long jobs several times a night (hexpm#1825): a QUEUED job is
rescued only when its queue holds no message it could be waiting behind, a STARTED one only
when its lease, which covers the longest a live attempt can run, has run out. A copy published
while the original message still exists somewhere does no harm: the job's claim runs it once.
A job rescued once and found stuck again is failed, with the reason, for staff to look at:
rescuing it forever would hide whatever keeps losing it.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from jobs import conf, outbox
from jobs.dashboard import queue_counts, queue_of
from jobs.models import Job, JobEvent, record_event
from jobs.runner import record_failure

logger = logging.getLogger(__name__)


# At most this many jobs acted on per round: a broker that lost a whole queue is rescued over a
# few minutes, each round short.
RESCUES_PER_ROUND = 500


@dataclass
class Rescues:
    republished: list = field(default_factory=list)
    failed: list = field(default_factory=list)


def rescue_stuck_jobs(now=None):
    """Publish again, once, the jobs stuck QUEUED or STARTED with no message; fail those
    rescued before. Returns the keys acted on."""
    now = now or timezone.now()
    done = Rescues()
    queued_before = now - timedelta(seconds=conf.JOBS_RESCUE_QUEUED_AFTER_SECONDS)
    lease_out_before = now - timedelta(seconds=conf.JOBS_RESCUE_GRACE_SECONDS)
    # A long backlog is not lost: only the queues with no ready message are looked into, so
    # a round reads task names, not the rows of every job waiting behind others.
    queued = Job.objects.filter(state=Job.State.QUEUED, queued_at__lt=queued_before)
    names = set(queued.values_list("task_name", flat=True).distinct())
    empty = _queues_without_ready_messages({queue_of(name) for name in names} - {None})
    lost = queued.filter(task_name__in=[name for name in names if queue_of(name) in empty])
    dead = Job.objects.filter(state=Job.State.STARTED, claim_expires_at__lt=lease_out_before)
    for job in [*lost[:RESCUES_PER_ROUND], *dead[:RESCUES_PER_ROUND]]:
        _rescue(job, now, done)
    return done


def _queues_without_ready_messages(names):
    if not names:
        return set()
    try:
        counts = queue_counts(sorted(names))
    except Exception as exc:  # no broker: nothing can be published now anyway
        logger.warning("cannot read the queues' depth, no stuck job rescued now: %s", exc)
        return set()
    return {name for name, (ready, _consumers) in counts.items() if ready == 0}


def _rescue(job, now, done):
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        still_stuck = job.state == Job.State.QUEUED or (
            job.state == Job.State.STARTED and job.claim_expires_at and job.claim_expires_at < now
        )
        if not still_stuck:
            return  # a worker took it meanwhile
        why = _why_stuck(job, now)
        rescued = job.events.filter(kind=JobEvent.Kind.RESCUED).order_by("-at").first()
        if rescued and now - rescued.at < timedelta(seconds=conf.JOBS_RESCUE_QUEUED_AFTER_SECONDS):
            return  # rescued a moment ago: its copy may be on its way to a worker
        if rescued:
            record_failure(job, f"stuck again after a rescue ({why}): given up, see its timeline")
            done.failed.append(job.key)
            logger.error("job %s stuck again after a rescue (%s): failed", job.key, why)
            return
        # Waiting again, for the copy: the dashboard and /metrics count it as waiting, and a
        # next round sees a QUEUED job (rescued only if its queue lost the copy too).
        Job.objects.filter(pk=job.pk).update(
            state=Job.State.QUEUED, claimed_by="", claim_expires_at=None
        )
        record_event(job.pk, JobEvent.Kind.RESCUED, detail=f"published again: {why}")
        # Inside the transaction: if RabbitMQ does not take it, nothing is recorded and the
        # next round tries again. A worker that gets the copy first waits for the commit at
        # the job's row lock.
        outbox.publish_copy(job)
    done.republished.append(job.key)
    logger.warning("job %s was stuck (%s): published again", job.key, why)


def _why_stuck(job, now):
    if job.state == Job.State.QUEUED:
        minutes = (now - job.queued_at).total_seconds() / 60
        return f"queued {minutes:.0f} min ago and its queue holds no message"
    seconds = (now - job.claim_expires_at).total_seconds()
    return f"its attempt's lease ran out {seconds:.0f} s ago: the worker holding it is gone"

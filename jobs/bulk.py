"""Acting on jobs from the staff jobs page: "retry now" for one, replay or discard for many.

After an outage the dead letters pile up by the thousand, and staff must send them again
without flooding the mail provider, and know beforehand how long it will take (sidekiq#6719).
So a bulk action is two steps:

1. `preview(jobs, action)`: how many of the jobs the filter shows would be acted on (the
   FAILED ones, at most BULK_MAX_JOBS), and, for the kinds held to a shared rate limit
   (settings.JOBS_RATE_LIMITED_KINDS), how long they take at it: "4,312 jobs, up to about
   18 minutes at the mail provider's limit". Nothing is sent.
2. `replay(...)` / `discard(...)`: the confirm step applies the same filter again and acts on
   at most the jobs the preview counted (none newer than the newest it saw), and says how many
   more match now. Work goes in chunks of BULK_CHUNK_SIZE, each a short transaction, and every
   message through the outbox (jobs/outbox.py: publish_many), never one giant transaction.

The replay itself keeps every promise of a single one:
- a FAILED job whose message sits in its dead-letter queue is replayed from there
  (jobs/deadletters.py: replay_found): the copy goes out and only then is the dead one
  acknowledged, so nothing is left behind to be replayed twice by hand later;
- a FAILED job with no dead letter (discarded, or dropped by the broker) gets a fresh copy: the
  row goes back to PENDING with a fresh retry budget and the outbox publishes it;
- either way the copy carries the job's task id, and the runner's claim (jobs/runner.py:
  claim_job) runs the work once per key, however many copies arrive.
A replayed newsletter chunk waits for the mail provider's slots like any chunk, so a bulk
replay keeps the provider's limit by itself.
"""

import math
from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from jobs import deadletters, outbox, topology
from jobs.dashboard import queue_of
from jobs.kinds import get_kind
from jobs.models import Job, JobEvent, record_event

# Jobs per transaction and per group of publishes.
BULK_CHUNK_SIZE = 500
# At most this many jobs per confirm: the preview says when more match.
BULK_MAX_JOBS = 10_000

ACTIONS = ("replay", "discard")


# --- The preview ------------------------------------------------------------------------------


@dataclass
class KindEstimate:
    """The jobs of one kind a bulk action would touch, and what they cost at their limit."""

    kind: str
    label: str
    jobs: int
    limit: str | None = None  # "the mail provider's limit"; None: held to no shared limit
    unit: str = ""
    units: int = 0  # at most, e.g. emails
    seconds: float | None = None


@dataclass
class Preview:
    action: str
    jobs: int  # the FAILED jobs it acts on, at most BULK_MAX_JOBS
    more: bool  # more than BULK_MAX_JOBS match
    up_to_pk: int | None  # the newest of them: the confirm acts on none newer
    not_failed: int  # jobs the filter shows that are not FAILED, left alone
    kinds: list = field(default_factory=list)

    @property
    def limits(self):
        """[(limit, units, unit, seconds)]: the time each shared limit needs, one after
        another for the kinds that share it."""
        total = {}
        for estimate in self.kinds:
            if estimate.limit:
                units, unit, seconds = total.get(estimate.limit, (0, estimate.unit, 0.0))
                total[estimate.limit] = (
                    units + estimate.units,
                    unit,
                    seconds + (estimate.seconds or 0),
                )
        return [(limit, *values) for limit, values in total.items()]

    @property
    def unlimited_jobs(self):
        return sum(e.jobs for e in self.kinds if not e.limit)

    def summary(self):
        """One line: "4,312 jobs, up to about 18 minutes at the mail provider's limit"."""
        head = f"{self.jobs:,} job{'' if self.jobs == 1 else 's'}"
        if self.action == "discard":
            return (
                f"{head}: their dead letters dropped, the jobs given up for good; nothing is sent"
            )
        parts = [
            f"up to {duration_in_words(seconds)} at {limit}" for limit, _, _, seconds in self.limits
        ]
        if self.unlimited_jobs:
            parts.append(f"{self.unlimited_jobs:,} of them held to no provider limit")
        return ", ".join([head, *parts])


def preview(jobs, action):
    """What `action` ("replay" or "discard") would do to the FAILED jobs among `jobs` (a
    filtered queryset). Reads at most BULK_MAX_JOBS + 1 rows; sends nothing."""
    if action not in ACTIONS:
        raise ValueError(f"unknown bulk action {action!r}")
    failed = _failed(jobs)
    rows = list(failed.order_by("pk").values_list("pk", "kind")[: BULK_MAX_JOBS + 1])
    more = len(rows) > BULK_MAX_JOBS
    rows = rows[:BULK_MAX_JOBS]
    shown = jobs.order_by()[: BULK_MAX_JOBS + 1].count()
    return Preview(
        action=action,
        jobs=len(rows),
        more=more,
        up_to_pk=rows[-1][0] if rows else None,
        not_failed=max(0, min(shown, BULK_MAX_JOBS) - len(rows)),
        kinds=estimate(Counter(kind for _, kind in rows)),
    )


def estimate(jobs_by_kind, limits=None):
    """[KindEstimate] for {kind: number of jobs}, most jobs first. A pure function of the
    counts and `limits` (settings.JOBS_RATE_LIMITED_KINDS)."""
    limits = getattr(settings, "JOBS_RATE_LIMITED_KINDS", {}) if limits is None else limits
    found = []
    for kind, count in sorted(jobs_by_kind.items(), key=lambda item: (-item[1], item[0])):
        estimate = KindEstimate(kind=kind, label=get_kind(kind).label, jobs=count)
        limit = limits.get(kind)
        if limit and limit.get("per_second"):
            estimate.limit = limit["limit"]
            estimate.unit = limit.get("unit", "request")
            estimate.units = count * limit.get("per_job", 1)
            estimate.seconds = estimate.units / limit["per_second"]
        found.append(estimate)
    return found


def duration_in_words(seconds):
    """ "about 40 seconds", "about 18 minutes", "about 2 hours 5 minutes"."""
    seconds = max(0, seconds)
    if seconds < 90:
        whole = max(1, math.ceil(seconds))
        return f"about {whole} second{'' if whole == 1 else 's'}"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {minutes} minutes"
    hours, minutes = divmod(minutes, 60)
    return f"about {hours} hour{'' if hours == 1 else 's'}" + (
        f" {minutes} minute{'' if minutes == 1 else 's'}" if minutes else ""
    )


# --- The confirm step -------------------------------------------------------------------------


@dataclass
class BulkDone:
    action: str
    from_dead_letters: int = 0  # replayed or dropped from a dead-letter queue
    fresh_copies: int = 0  # replays published anew through the outbox
    left_in_outbox: int = 0  # the broker did not take them: the sweeper publishes them
    given_up: int = 0  # discarded
    more_now: int = 0  # FAILED jobs matching now beyond those previewed

    def summary(self):
        if self.action == "discard":
            text = f"{self.given_up:,} failed job(s) given up for good"
            text += f", {self.from_dead_letters:,} dead letter(s) dropped."
        else:
            done = self.from_dead_letters + self.fresh_copies
            text = (
                f"{done:,} job(s) replayed: {self.from_dead_letters:,} from their dead-letter "
                f"queue, {self.fresh_copies:,} as a fresh copy."
            )
            if self.left_in_outbox:
                text += (
                    f" {self.left_in_outbox:,} wait in the outbox (the broker did not take "
                    "them): the sweeper sends them."
                )
        if self.more_now:
            text += (
                f" {self.more_now:,} more failed job(s) match the filter now, not in the "
                "preview: left alone; preview again to act on them."
            )
        return text


def replay(jobs, *, up_to_pk, limit, by):
    """Replay the FAILED jobs among `jobs` that the preview counted: at most `limit`, none
    newer than `up_to_pk`. Returns a BulkDone."""
    targets, more_now = _targets(jobs, up_to_pk, limit)
    done = BulkDone("replay", more_now=more_now)
    for chunk in _chunks(targets, BULK_CHUNK_SIZE):
        found = _from_dead_letters(chunk, lambda queue, ids: deadletters.replay_found(
            queue, ids, by=f"{by} (bulk replay)"))  # fmt: skip
        done.from_dead_letters += len(found)
        rest = [job.pk for job in chunk if job.task_id not in found]
        fresh, published = fresh_copies(rest, detail=f"bulk replay asked by {by}")
        done.fresh_copies += fresh
        done.left_in_outbox += fresh - published
    return done


def discard(jobs, *, up_to_pk, limit, by):
    """Give up for good on the FAILED jobs among `jobs` that the preview counted: their dead
    letters are dropped, the jobs stay FAILED with a timeline entry saying who gave up."""
    targets, more_now = _targets(jobs, up_to_pk, limit)
    done = BulkDone("discard", more_now=more_now)
    for chunk in _chunks(targets, BULK_CHUNK_SIZE):
        found = _from_dead_letters(chunk, deadletters.discard_found)
        done.from_dead_letters += len(found)
        now = timezone.now()
        JobEvent.objects.bulk_create(
            JobEvent(
                job_id=job.pk,
                kind=JobEvent.Kind.FAILED,
                at=now,
                detail=f"given up for good by {by}"
                + ("; its dead letter dropped" if job.task_id in found else ""),
            )
            for job in chunk
        )
        done.given_up += len(chunk)
    return done


def _failed(jobs):
    return jobs.filter(state=Job.State.FAILED)


def _targets(jobs, up_to_pk, limit):
    """([jobs to act on], how many more FAILED jobs match now)."""
    limit = max(0, min(limit, BULK_MAX_JOBS))
    failed = _failed(jobs)
    if up_to_pk is None:
        return [], failed.order_by()[:BULK_MAX_JOBS].count()
    targets = list(
        failed.filter(pk__lte=up_to_pk).order_by("pk").only("pk", "task_id", "task_name")[:limit]
    )
    matching = failed.order_by()[: BULK_MAX_JOBS + limit].count()
    return targets, max(0, matching - len(targets))


def _chunks(items, size):
    return [items[start : start + size] for start in range(0, len(items), size)]


def _from_dead_letters(jobs, take):
    """Call take(dead-letter queue, task ids) for each queue `jobs` died in; the ids taken."""
    by_queue = {}
    for job in jobs:
        queue = dead_letter_queue_of(job)
        if queue:
            by_queue.setdefault(queue, []).append(job.task_id)
    taken = set()
    for queue, ids in by_queue.items():
        taken.update(take(queue, ids))
    return taken


def dead_letter_queue_of(job):
    """The dead-letter queue `job`'s message is parked in when it fails, or None."""
    queue = queue_of(job.task_name)
    if not queue:
        return None
    name = topology.dead_letter_queue_name(queue)
    return name if name in deadletters.dead_letter_queues() else None


def fresh_copies(job_pks, *, detail):
    """Put the FAILED jobs `job_pks` back in the outbox with a fresh retry budget, in one short
    transaction, and publish them after it. Returns (how many, how many RabbitMQ took)."""
    with transaction.atomic():
        pks = list(
            Job.objects.select_for_update()
            .filter(pk__in=job_pks, state=Job.State.FAILED)
            .values_list("pk", flat=True)
        )
        Job.objects.filter(pk__in=pks).update(
            state=Job.State.PENDING,
            attempts=0,
            replays=F("replays") + 1,
            next_retry_at=None,
            publish_error="",
        )
        JobEvent.objects.bulk_create(
            JobEvent(job_id=pk, kind=JobEvent.Kind.REPLAYED, detail=detail) for pk in pks
        )
    return len(pks), outbox.publish_many(pks)


# --- Retry now --------------------------------------------------------------------------------


def retry_now(job_pk, *, by):
    """Run job `job_pk` again now, for a FAILED or a RETRYING job. Returns what was done, in
    words for the page.

    - FAILED: replayed from its dead-letter queue if its message is there, else a fresh copy
      through the outbox; either way with a fresh retry budget.
    - RETRYING: a copy is published now, through the outbox; the copy waiting for its retry
      (held by a worker, or in the broker's delay queues) finds the job done when it comes,
      or running and comes back later: the job's key keeps the work once.
    """
    job = Job.objects.get(pk=job_pk)
    if job.state == Job.State.FAILED:
        queue = dead_letter_queue_of(job)
        if queue and deadletters.replay_found(queue, [job.task_id], by=f"{by} (retry now)"):
            return f"Replayed from {queue}, with a fresh retry budget."
        fresh, published = fresh_copies([job.pk], detail=f"retry now, asked by {by}")
        if not fresh:
            return "It is no longer failed: nothing to retry."
        if not published:
            return "Put back in the outbox: the broker did not take it, the sweeper sends it."
        return "Published again, with a fresh retry budget."
    if job.state == Job.State.RETRYING:
        with transaction.atomic():
            moved = Job.objects.filter(pk=job.pk, state=Job.State.RETRYING).update(
                state=Job.State.PENDING, next_retry_at=None, publish_error=""
            )
            if moved:
                record_event(
                    job.pk,
                    JobEvent.Kind.REPLAYED,
                    attempt=job.attempts or None,
                    detail=f"retry now, asked by {by}: a copy published now",
                )
        if not moved:
            return "It has just started again: nothing to do."
        if not outbox.publish_many([job.pk]):
            return "Put back in the outbox: the broker did not take it, the sweeper sends it."
        return "A copy was published now; the one waiting for its retry will find it done."
    return f"It is {job.get_state_display()}: only a failed or retrying job can be retried."

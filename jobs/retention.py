"""Retention: old finished jobs, their timelines and old task results, deleted in small chunks.

Every finished job leaves a `Job` row, a few `JobEvent` rows and a django-celery-results
`TaskResult`; nothing removes them unless something does. Celery's own nightly
`celery.backend_cleanup` removes the results with one `TaskResult.objects.filter(date_done__lt=
...).delete()` in one transaction (django_celery_results/managers.py: delete_expired, 2.6.0).
On millions of rows that statement holds its locks and its transaction for minutes, and where
Django cannot take its fast path (a delete signal receiver, a relation to cascade: a `Job`
has both its events and a supplier's fetch run pointing at it) it first loads every row for
its cascade collector: django-celery-results#232, an out-of-memory kill or a time limit.

So each table is pruned here in chunks (`delete_in_chunks`):
- a chunk is at most `chunk_size` rows, picked by primary key in key order, after the last
  key of the chunk before (the table is walked once, never re-read from the start);
- each chunk is deleted by one `DELETE ... WHERE id BETWEEN first AND last AND <the rule>`,
  in a transaction of its own, so no lock is held longer than one chunk, web requests and
  workers get in between chunks, and a stop (a time limit, a restart) loses one chunk's work;
- the rule is checked again in the DELETE itself: a row that changed since it was picked
  (a job replayed from its dead letters, say) is not deleted;
- `QuerySet._raw_delete`, not `QuerySet.delete`: no collector, no signals, no rows loaded.
  What the collector would have done for a job, this module does itself, in the same chunks:
  the job's events first, then whatever else points at jobs (`_detach`), then the jobs. The
  lines a job logged (JobLogLine, found by the job's key) go with it.

What is never pruned:
- a job that is not finished (not in `Job.FINAL_STATES`), however old: it is still waited for;
- a job with a timeline event /metrics has not folded yet (jobs/metrics.py: fold_new_events
  adds the events up to the mark kept in the Tally row `Tally.FOLDED_UP_TO`, reading each
  event's job with it). The job and all its events stay until a scrape has counted them, so
  the counters read the same before and after a prune;
- anything younger than a day, whatever the settings say (`MINIMUM_KEEP`): the dashboard's
  last hour is read from the task results (jobs/dashboard.py: throughput), and a setting
  written in hours instead of days must not empty it.

Plain functions, no Celery: `jobs.prune_old_records` (jobs/tasks.py) runs `prune_old_records`
every night (CELERY_BEAT_SCHEDULE); docs/retention.md says why and what was measured.
"""

import logging
import time
from dataclasses import asdict, dataclass
from datetime import timedelta

from celery.utils.time import maybe_timedelta
from django.conf import settings
from django.db import models, router, transaction
from django.db.models import Exists, OuterRef
from django.db.models.functions import Cast
from django.utils import timezone
from django_celery_results.models import GroupResult, TaskResult

from jobs.models import Job, JobEvent, JobLogLine, Tally

logger = logging.getLogger(__name__)

# The settings (config/settings.py, "Retention"), with the defaults a project that copies jobs/
# gets without them. Task results are kept CELERY_RESULT_EXPIRES, Celery's own setting.
DEFAULT_KEEP_JOBS_DAYS = 30
DEFAULT_CHUNK_SIZE = 5000
MINIMUM_KEEP = timedelta(days=1)


@dataclass
class Pruned:
    """What one prune deleted, per table, and how."""

    jobs: int = 0
    job_events: int = 0
    job_log_lines: int = 0
    task_results: int = 0
    group_results: int = 0
    statements: int = 0  # DELETEs run, each of at most `chunk_size` rows
    complete: bool = True  # False: stopped at its deadline; the next run goes on

    def as_dict(self):
        return asdict(self)


def prune_old_records(*, now=None, deadline=None):
    """Prune everything older than its setting; a `Pruned` of what went.

    `deadline` (a time.monotonic() value) stops it between two chunks: the task stops before
    its time limit instead of being killed, and the rest waits for the next night.
    """
    now = now or timezone.now()
    size = getattr(settings, "RETENTION_CHUNK_SIZE", DEFAULT_CHUNK_SIZE)
    days = getattr(settings, "RETENTION_KEEP_JOBS_DAYS", DEFAULT_KEEP_JOBS_DAYS)
    keep_jobs = timedelta(days=days)
    keep_results = maybe_timedelta(getattr(settings, "CELERY_RESULT_EXPIRES", None))
    pruned = Pruned()
    prune_finished_jobs(now - keep_jobs, chunk_size=size, deadline=deadline, into=pruned)
    if keep_results:  # None or 0: results are kept for ever, as Celery reads it
        prune_task_results(now - keep_results, chunk_size=size, deadline=deadline, into=pruned)
    return pruned


def prune_finished_jobs(before, *, chunk_size, deadline=None, into=None):
    """Delete the jobs finished before `before`, with their timelines and log lines, but none
    /metrics has yet to count."""
    _check_arguments(before, chunk_size)
    _check_references()
    pruned = into or Pruned()
    jobs_before, events_before, lines_before = pruned.jobs, pruned.job_events, pruned.job_log_lines
    mark = folded_up_to()  # it only grows: what is folded now stays folded
    with Timer() as timer:
        candidates = prunable_jobs(before, mark)
        for first, last in _key_ranges(candidates, chunk_size, deadline, pruned):
            chunk = candidates.filter(pk__gte=first, pk__lte=last)
            # Their events first (the foreign key would refuse the jobs), in chunks of their
            # own: a chunk of jobs has several events per job. The range of job ids, implied
            # by the chunk, lets the database find them through the index on job_id instead
            # of walking every event in id order for those of the chunk's jobs.
            events = JobEvent.objects.filter(
                job_id__gte=first, job_id__lte=last, job__in=chunk.values("pk")
            )
            if mark is not None:
                events = events.filter(pk__lte=mark)  # never an event /metrics has not counted
            pruned.job_events += delete_in_chunks(events, chunk_size, pruned=pruned)
            # The lines they logged, found by key (no foreign key: jobs/logs.py writes them
            # without reading the job).
            lines = JobLogLine.objects.filter(job_key__in=chunk.values("key"))
            pruned.job_log_lines += delete_in_chunks(lines, chunk_size, pruned=pruned)
            with transaction.atomic(using=router.db_for_write(Job)):
                _detach(chunk)
                # Only jobs left without any event: one that got a new event since it was
                # picked (a replay) stays, and the foreign key is never violated.
                no_events = ~Exists(JobEvent.objects.filter(job=OuterRef("pk")))
                pruned.jobs += _delete(chunk.filter(no_events), pruned)
    _log(JobEvent, before, pruned.job_events - events_before, timer, pruned)
    _log(JobLogLine, before, pruned.job_log_lines - lines_before, timer, pruned)
    _log(Job, before, pruned.jobs - jobs_before, timer, pruned)
    return pruned


def prune_task_results(before, *, chunk_size, deadline=None, into=None):
    """Delete django-celery-results' TaskResult and GroupResult rows done before `before`."""
    _check_arguments(before, chunk_size)
    pruned = into or Pruned()
    for model, field in ((TaskResult, "task_results"), (GroupResult, "group_results")):
        with Timer() as timer:
            rows = delete_in_chunks(
                model.objects.filter(date_done__lt=before), chunk_size, deadline, pruned
            )
        setattr(pruned, field, getattr(pruned, field) + rows)
        _log(model, before, rows, timer, pruned)
    return pruned


def prunable_jobs(before, mark):
    """The jobs that may go: finished before `before`, no event of theirs above `mark` (the
    last one /metrics has folded into its tallies; None: no scrape yet, `folded_up_to`)."""
    # The state is compared as text, which no index holds: SQLite, which keeps no statistics
    # unless asked, bets on the index on (state, created_at) for `state IN (...)` and then
    # reads and sorts every old finished job for each chunk, instead of walking the primary
    # key: a million events took 20 s to prune instead of 8, and more the bigger the backlog
    # (docs/retention.md). PostgreSQL plans it the same either way.
    jobs = Job.objects.alias(state_text=Cast("state", models.TextField())).filter(
        state_text__in=Job.FINAL_STATES,
        finished_at__lt=before,
        # Implied by the line above (a job finishes after it is created), said for the index
        # on created_at: there is none on finished_at, and the last chunk, which finds
        # nothing, need not read the jobs kept.
        created_at__lt=before,
    )
    if mark is not None:
        unfolded = JobEvent.objects.filter(job=OuterRef("pk"), pk__gt=mark)
        jobs = jobs.exclude(Exists(unfolded))
    return jobs


def folded_up_to():
    """The last JobEvent id /metrics has counted, or None before its first scrape.

    Before the first scrape every event is history: that scrape starts its counters at the
    newest event there is (jobs/metrics.py: fold_new_events), so pruning older ones changes
    nothing it will count.
    """
    mark = Tally.objects.filter(name=Tally.FOLDED_UP_TO).values_list("value", flat=True).first()
    return None if mark is None else int(mark)


def delete_in_chunks(queryset, chunk_size, deadline=None, pruned=None):
    """Delete the rows of `queryset` in chunks of at most `chunk_size`; the number deleted."""
    pruned = pruned or Pruned()
    deleted = 0
    for first, last in _key_ranges(queryset, chunk_size, deadline, pruned):
        # A range, not `pk__in=keys`: a short statement, not chunk_size parameters (measured
        # slower on both databases), and the queryset's conditions are checked again when it
        # is deleted: a row that changed since it was picked stays.
        with transaction.atomic(using=router.db_for_write(queryset.model)):
            deleted += _delete(queryset.filter(pk__gte=first, pk__lte=last), pruned)
    return deleted


def _key_ranges(queryset, chunk_size, deadline, pruned):
    """(first, last) primary keys of successive chunks of `queryset`, each range holding at
    most `chunk_size` of its rows when it was picked, in key order."""
    after = None
    while True:
        if deadline is not None and time.monotonic() >= deadline:
            pruned.complete = False
            return
        rest = queryset if after is None else queryset.filter(pk__gt=after)
        # Only the keys are read: a few tens of kilobytes, whatever the rows hold. Each chunk
        # goes on from the last key of the one before: the table is walked once, not read
        # again from its start (through the rows just deleted) for every chunk.
        keys = list(rest.order_by("pk").values_list("pk", flat=True)[:chunk_size])
        if not keys:
            return
        yield keys[0], keys[-1]
        after = keys[-1]


def _delete(queryset, pruned):
    """One DELETE of `queryset`, without Django's collector; the number of rows deleted."""
    pruned.statements += 1
    return queryset._raw_delete(queryset.db)


def _check_references():
    """Raise unless every relation to Job is one this module handles: the events (deleted
    first) and nullable links (set to null, `_detach`). A project that points a CASCADE or a
    PROTECT at jobs says here what should happen to its rows."""
    for relation in _relations_to_jobs():
        if relation.related_model is JobEvent:
            continue
        if getattr(relation, "on_delete", None) not in (models.SET_NULL, models.DO_NOTHING):
            raise NotImplementedError(
                f"jobs/retention.py does not know how to prune jobs that "
                f"{relation.related_model._meta.label}.{relation.field.name} points at"
            )


def _detach(jobs):
    """Set to null what points at `jobs` with on_delete=SET_NULL (a supplier's fetch run)."""
    for relation in _relations_to_jobs():
        if relation.related_model is not JobEvent and relation.on_delete is models.SET_NULL:
            name = relation.field.name
            pointing = relation.related_model._base_manager.filter(**{f"{name}__in": jobs})
            pointing.update(**{name: None})


def _relations_to_jobs():
    """Every foreign key to Job, also those without a reverse name (related_name="+", as a
    supplier's fetch run has), which `Job._meta.related_objects` leaves out."""
    return [
        field
        for field in Job._meta.get_fields(include_hidden=True)
        if field.auto_created and not field.concrete and (field.one_to_many or field.one_to_one)
    ]


def _check_arguments(before, chunk_size):
    if timezone.now() - before < MINIMUM_KEEP:
        raise ValueError(f"retention keeps at least {MINIMUM_KEEP}; asked to prune up to {before}")
    if chunk_size < 1:
        raise ValueError(f"a chunk of {chunk_size} rows")


class Timer:
    def __enter__(self):
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.seconds = time.monotonic() - self.started


def _log(model, before, rows, timer, pruned):
    logger.info(
        "retention: %s %s rows older than %s deleted in %.1f s%s",
        rows, model._meta.label, before.isoformat(timespec="seconds"), timer.seconds,
        "" if pruned.complete else " (stopped at the deadline; the rest next run)",
    )  # fmt: skip

"""Celery beat that sends each run of a schedule once: one run per slot, whatever beat goes through.

A *slot* is the moment a run stands for: for `crontab(hour=1, minute=0)` in Europe/Berlin,
"2026-03-29T01:00:00+01:00"; for an interval of 15 s, the 15 s window (counted from the epoch)
the send falls in. Before `SlotScheduler` sends a run it claims the slot on the entry's own row,
django-celery-beat's `PeriodicTask`, with one conditional UPDATE:

    UPDATE django_celery_beat_periodictask SET last_run_at = now, total_run_count = ... + 1
    WHERE id = ... AND (last_run_at IS NULL OR last_run_at < <the slot>)

One process gets the row, any other finds it taken and sends nothing. That covers the three ways
beat runs a job the wrong number of times:

- **A second beat** started by mistake (a deploy that scaled it, `celery worker -B` beside it):
  both compute the same slot, one UPDATE wins. Celery says to run one beat only; with this, a
  second one costs a few queries, not duplicate jobs.
- **Beat down when a run was due**: it comes back, Celery finds the entry overdue and the slot
  is the latest one that has passed, so the missed runs make one run, not one per missed slot.
  django-celery-beat (2.8.1 on) loads a crontab entry only within two hours of its hour; here
  every entry is loaded, so the missed run goes out when beat is back, not up to a day later.
  And `last_run_at` is written when the run is sent, not up to 3 minutes later (Celery's
  `beat_sync_every`): a beat killed right after a send does not send it again when restarted.
- **Daylight saving time**: a crontab slot is a wall-clock time of the schedule's zone, made
  real with `fold=0`. 02:30 on the day the clocks skip it (last Sunday of March) is 03:30 summer
  time; 02:30 on the day it happens twice (last Sunday of October) is the first one. Whatever
  Celery's crontab decides around the change, a second send that day finds the slot taken.

A task whose function has a `slot` parameter receives the slot's ISO time as that keyword
(`shop.build_scheduled_sales_report` builds the report of the day before it, also when it is
sent late); every message beat sends carries it in the `schedule_slot` header.

tests/test_schedules.py proves each case with real beat processes and across both of 2026's
DST changes; docs/periodic-jobs.md says what Celery and django-celery-beat do without this.
"""

import inspect
from datetime import UTC, datetime, time, timedelta

from celery import schedules
from celery.utils.log import get_logger
from django.db.models import F, Q
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry

logger = get_logger(__name__)

SLOT_HEADER = "schedule_slot"
# How far back a crontab's latest time is looked for: a 29 February falls within 8 years.
CRON_LOOKBACK_DAYS = 366 * 8


def slot_of(schedule, now):
    """The slot `now` belongs to for `schedule`: an aware datetime in the schedule's zone, or
    None for a schedule without slots here (solar, clocked: sent as django-celery-beat does).

    crontab: the latest of its times at or before `now` (so a run sent late, or a catch-up,
    stands for the time it was due). Interval: the start of the `run_every` window, counted
    from the epoch, that `now` falls in.
    """
    if isinstance(schedule, schedules.crontab):
        return latest_cron_time(schedule, now)
    if isinstance(schedule, schedules.schedule) and not schedule.relative:
        every = schedule.run_every.total_seconds()
        if every <= 0:
            return None
        seconds = now.timestamp()
        return datetime.fromtimestamp(seconds - seconds % every, tz=schedule.tz)
    return None


def latest_cron_time(cron, now):
    """The latest time of crontab `cron` at or before `now`, in the crontab's zone.

    Each day's times are wall-clock times made real with fold=0: a time the clocks skip (02:30
    on the last Sunday of March in Europe/Berlin) is the moment an hour later in summer time
    (03:30+02:00), a time they repeat is its first occurrence. So every day has each of its
    times once. Compared in UTC: Python compares two times of one zone by their wall clock.
    """
    zone = cron.tz
    now_utc = now.astimezone(UTC)
    day = now.astimezone(zone).date()
    hours = sorted(cron.hour, reverse=True)
    minutes = sorted(cron.minute, reverse=True)
    for _ in range(CRON_LOOKBACK_DAYS):
        weekday = day.isoweekday() % 7  # crontab's Sunday is 0
        if (
            day.month in cron.month_of_year
            and day.day in cron.day_of_month
            and (weekday in cron.day_of_week)
        ):
            for hour in hours:
                for minute in minutes:
                    at = datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)
                    if at <= now_utc:
                        return at.astimezone(zone)  # a skipped time reads as the real one
        day -= timedelta(days=1)
    return None


def claim_slot(periodic_task_id, slot, now):
    """Mark the run of `slot` as sent at `now`, unless a run of that slot (or a later one) was
    sent already. True if this call got it. One UPDATE: two beats asking at the same moment
    cannot both get it (SQLite takes the write lock, PostgreSQL re-reads the row it waited for).
    """
    not_yet = Q(last_run_at__isnull=True) | Q(last_run_at__lt=slot)
    return bool(
        PeriodicTask.objects.filter(not_yet, pk=periodic_task_id).update(
            last_run_at=now, total_run_count=F("total_run_count") + 1
        )
    )


def release_slot(periodic_task_id, claimed_at, last_run_at):
    """Undo `claim_slot` after a send that failed: the run is due again. Only our own claim
    (`claimed_at`) is undone; one another beat made since is left alone."""
    PeriodicTask.objects.filter(pk=periodic_task_id, last_run_at=claimed_at).update(
        last_run_at=last_run_at, total_run_count=F("total_run_count") - 1
    )


def takes_slot(task):
    """True if `task`'s function has a `slot` parameter (then beat passes the slot to it)."""
    if task is None:
        return False
    try:
        return "slot" in inspect.signature(task.run, follow_wrapped=False).parameters
    except (TypeError, ValueError):
        return False


class SlotEntry(ModelEntry):
    """django-celery-beat's entry, which leaves `last_run_at` to the claim.

    django-celery-beat writes every entry's `last_run_at` from the beat's memory every few
    minutes (`DatabaseScheduler.sync`). Here the claim wrote it at the send: writing this
    process's copy back later could set it before a slot another beat has claimed since, and
    let that slot be sent again.
    """

    def save(self):
        if slot_of(self.schedule, self._default_now()) is None:
            super().save()


class SlotScheduler(DatabaseScheduler):
    """django-celery-beat's `DatabaseScheduler` that claims each run's slot before sending it
    (see the module's docstring). Set `CELERY_BEAT_SCHEDULER = "jobs.schedules:SlotScheduler"`.
    """

    Entry = SlotEntry

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        entry = self.reserve(entry) if advance else entry
        now = entry._default_now()
        slot = slot_of(entry.schedule, now)
        if slot is None:
            return super().apply_async(entry, producer, advance=False, **kwargs)
        label = slot.isoformat()
        if not claim_slot(entry.model.pk, slot, now):
            logger.info(
                "Scheduler: %s of slot %s was sent already (by another beat, or before a "
                "restart): not sending it again",
                entry.name, label,
            )  # fmt: skip
            return None
        try:
            return super().apply_async(with_slot(entry, label), producer, advance=False, **kwargs)
        except Exception:
            # Not sent (the broker is away): due again. The scheduler reads the entries from the
            # database within 5 minutes (django-celery-beat's full sync) and sends it then.
            release_slot(entry.model.pk, now, entry.last_run_at)
            entry.model.last_run_at = entry.last_run_at
            raise

    def _get_crontab_exclude_query(self):
        # django-celery-beat 2.8.1 on (celery/django-celery-beat#894) loads a crontab entry
        # with an hour only within two hours of it: a 01:00 run missed while beat was down
        # would go out at 23:00, not when beat is back. A shop has a few entries, not
        # thousands: load them all.
        return Q(pk__in=[])


def with_slot(entry, label):
    """A copy of `entry` whose message carries `label` (and passes it to a task taking `slot`)."""
    # Not copy.copy: Celery's entries pickle through __reduce__ with arguments ModelEntry lacks.
    entry, original = object.__new__(type(entry)), entry
    entry.__dict__.update(original.__dict__)
    headers = {**entry.options.get("headers", {}), SLOT_HEADER: label}
    entry.options = {**entry.options, "headers": headers}
    if takes_slot(entry.app.tasks.get(entry.task)):
        entry.kwargs = {**entry.kwargs, "slot": label}
    return entry

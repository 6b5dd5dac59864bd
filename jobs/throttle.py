"""Rate limits that hold across every worker: a minimum interval between two uses of a thing
(a mail provider, a supplier's host), kept in the database all workers share.

Celery's `rate_limit` task option is not such a limit, and cannot be made into one (celery#5732):
- it is counted by each worker *node* on its own: two workers, or one on each of two machines,
  each go at the full rate;
- it is counted per *task type* and spaces the *starts* of tasks, while what has to be spaced
  is every request a task makes: every email of a newsletter chunk, every page of a fetch;
- it knows nothing of what is limited: two suppliers on one host, or a newsletter and a replay
  of its dead-lettered chunks, would each get the full rate.
So each limited thing has a row (jobs.Throttle), and before each use a process takes the
thing's next slot (the row is locked while it does, so two processes never take the same
slot), then sleeps until that slot, outside any transaction. One short transaction per use: a
few hundred a second on PostgreSQL, well above what a mail provider or a polite scraper allows.

Times come from the clocks of the worker machines: keep them in sync (NTP), as for the job
leases.
"""

from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs.errors import TransientError
from jobs.models import Throttle


class Busy(TransientError):
    """The next slot is further away than a job should sleep: try again later."""

    def __init__(self, name, at):
        self.name = name
        self.at = at
        super().__init__(f"no request to {name} before {timezone.localtime(at):%H:%M:%S}")


def next_slot(now, last_slot_at, interval, not_before=None):
    """When the next use may come: the limiter's whole rule.

    `interval` is the one in force now (a robots.txt's Crawl-delay can lengthen it once read),
    counted from the last slot taken; `not_before` is what the other side asked for
    (Retry-After).
    """
    slot = now
    if last_slot_at is not None:
        slot = max(slot, last_slot_at + timedelta(seconds=interval))
    if not_before is not None:
        slot = max(slot, not_before)
    return slot


def reserve(name, interval, max_wait):
    """Take `name`'s next slot; return the seconds to wait for it.

    Raises Busy, and takes nothing, if the slot is more than `max_wait` seconds away (the
    other side asked us to back off for longer than a worker should sit idle).
    """
    Throttle.objects.get_or_create(name=name)
    with transaction.atomic():
        row = Throttle.objects.select_for_update().get(name=name)
        now = timezone.now()
        slot = next_slot(now, row.last_slot_at, interval, row.not_before)
        wait = (slot - now).total_seconds()
        if wait > max_wait:
            raise Busy(name, slot)
        row.last_slot_at = slot
        row.save(update_fields=["last_slot_at"])
    return wait


def hold_off(name, seconds):
    """The other side asked us to wait (Retry-After): no use of `name` for `seconds` from now."""
    until = timezone.now() + timedelta(seconds=seconds)
    Throttle.objects.get_or_create(name=name)
    later = Q(not_before__isnull=True) | Q(not_before__lt=until)
    Throttle.objects.filter(later, name=name).update(not_before=until)
    return until

"""The per-host rate limit: a minimum interval between two requests to the same host.

Celery's `rate_limit` task option is not that limit, and cannot be made into it:
- it is counted by each worker *node* on its own: two workers, or one worker on each of two
  machines, each send at the full rate;
- it is counted per *task type* and spaces the *starts* of tasks, while what has to be spaced
  is every HTTP request a task makes, dozens of them in one run;
- it knows nothing of hosts: two suppliers on one host (or a run of the schedule and a
  "fetch now" of the same supplier) would each get the full rate.
So the limit is kept per host, in the database every worker shares: before each request the
fetcher takes its host's next slot (the row is locked while it does, so two processes never
take the same slot) and then sleeps until that slot, outside any transaction.

Times come from the clocks of the worker machines: keep them in sync (NTP), as for the job
leases.
"""

from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs.errors import TransientError
from suppliers.models import HostThrottle


class HostBusy(TransientError):
    """The host's next slot is further away than a job should sleep: try again later."""

    def __init__(self, host, at):
        self.host = host
        self.at = at
        super().__init__(f"no request to {host} before {timezone.localtime(at):%H:%M:%S}")


def next_slot(now, last_request_at, interval, not_before=None):
    """When the next request to a host may go: the limiter's whole rule.

    `interval` is the one in force now (robots.txt's Crawl-delay can lengthen it once read),
    counted from the last request; `not_before` is what the host asked for (Retry-After).
    """
    slot = now
    if last_request_at is not None:
        slot = max(slot, last_request_at + timedelta(seconds=interval))
    if not_before is not None:
        slot = max(slot, not_before)
    return slot


def reserve(host, interval, max_wait):
    """Take `host`'s next slot; return the seconds to wait for it.

    Raises HostBusy, and takes nothing, if the slot is more than `max_wait` seconds away (the
    host asked us to back off for longer than a worker should sit idle).
    """
    HostThrottle.objects.get_or_create(host=host)
    with transaction.atomic():
        row = HostThrottle.objects.select_for_update().get(host=host)
        now = timezone.now()
        slot = next_slot(now, row.last_request_at, interval, row.not_before)
        wait = (slot - now).total_seconds()
        if wait > max_wait:
            raise HostBusy(host, slot)
        row.last_request_at = slot
        row.save(update_fields=["last_request_at"])
    return wait


def hold_off(host, seconds):
    """`host` asked us to wait (Retry-After): no request to it for `seconds` from now."""
    until = timezone.now() + timedelta(seconds=seconds)
    HostThrottle.objects.get_or_create(host=host)
    later = Q(not_before__isnull=True) | Q(not_before__lt=until)
    HostThrottle.objects.filter(later, host=host).update(not_before=until)
    return until

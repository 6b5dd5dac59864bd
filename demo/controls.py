"""Demo knobs that make the patterns visible in Flower and on the dashboard."""

import uuid

from celery import current_app

from demo.tasks import poison_pill
from jobs.tasks import noop


def flood(count, seconds_each=0.02):
    """Queue `count` low-priority filler jobs on the emails queue, behind which a checkout's
    confirmation can be watched overtaking them."""
    with current_app.producer_or_acquire() as producer:
        for i in range(count):
            noop.apply_async(args=[f"flood-{i}", seconds_each], producer=producer)
    return count


def poison():
    """A job that kills its worker every time: watch it land in maintenance.dead."""
    return poison_pill.delay(uuid.uuid4().hex[:8])

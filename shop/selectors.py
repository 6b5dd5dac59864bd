"""Reads for the shop's pages."""

from jobs.models import Job
from jobs.outbox import subject_label


def jobs_for(obj):
    """The background jobs attached to `obj`, oldest first, with their timelines."""
    return list(Job.objects.filter(subject=subject_label(obj)).prefetch_related("events"))

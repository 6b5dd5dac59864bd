"""Reads for the staff jobs pages (jobs/staff_views.py): the filter, a page of jobs, one job.

A shop keeps every job for a month (jobs/retention.py): a million rows is ordinary. So the
list never counts them all and never skips with OFFSET:
- a page is the PAGE_SIZE jobs older than the last one shown (keyset pagination on
  created_at and pk, newest first): page 500 costs what page 1 costs;
- the total is counted up to COUNT_CAP and shown as "10,000+" beyond.

The filter is a Django form: whatever is typed or put in the address is checked before it
reaches a query, and a wrong value is an error next to its field, never a 500.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from celery import current_app
from django import forms
from django.core.validators import RegexValidator
from django.db.models import Q
from django.http import QueryDict

from jobs import topology
from jobs.dashboard import queue_of
from jobs.kinds import JobKind
from jobs.models import Job, JobLogLine

PAGE_SIZE = 50
COUNT_CAP = 10_000
# A job's page shows at most this many of its log lines (the handler keeps few per attempt).
LOG_LINES_SHOWN = 200

# The cursor of the next page: the last job shown, as "<created_at in microseconds>-<pk>".
# Whole microseconds, counted in integers: a float timestamp can be a microsecond off, and the
# page would then skip or repeat a job created in the same microsecond as another.
CURSOR = re.compile(r"^(\d{1,18})-(\d{1,18})$")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def job_kinds():
    """[(kind, label)] of every job the app declares (jobs/declare.py), by label."""
    kinds = {
        task.kind.name: task.kind.label
        for task in current_app.tasks.values()
        if isinstance(getattr(task, "kind", None), JobKind)
    }
    return sorted(kinds.items(), key=lambda item: item[1])


def task_names_on(queue):
    """The names of the tasks routed to `queue`: a job's queue is its task's route."""
    return sorted(name for name in current_app.tasks if queue_of(name) == queue)


class JobFilter(forms.Form):
    """What the jobs page filters by. Every field is optional; blank means "any"."""

    kind = forms.ChoiceField(required=False)
    state = forms.ChoiceField(required=False, choices=[("", "any"), *Job.State.choices])
    queue = forms.ChoiceField(required=False)
    subject = forms.CharField(
        required=False,
        max_length=100,
        validators=[
            RegexValidator(
                r"^[a-z_]+:\d{1,18}$",
                "A subject is a kind of object and its number, like order:42.",
            )
        ],
        help_text="order:42",
    )
    created_from = forms.DateTimeField(required=False, label="Created from")
    created_to = forms.DateTimeField(required=False, label="Created to")
    error = forms.CharField(required=False, max_length=200, label="Error contains")
    before = forms.CharField(required=False, widget=forms.HiddenInput)

    # Past these a date is a typo, and converting it to UTC could overflow.
    EARLIEST, LATEST = 1970, 2999

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [("", "any"), *job_kinds()]
        queues = topology.work_queue_names(current_app)
        self.fields["queue"].choices = [("", "any"), *((q, q) for q in queues)]

    def _clean_when(self, name):
        value = self.cleaned_data.get(name)
        if value and not self.EARLIEST <= value.year <= self.LATEST:
            raise forms.ValidationError(f"Pick a date between {self.EARLIEST} and {self.LATEST}.")
        return value

    def clean_created_from(self):
        return self._clean_when("created_from")

    def clean_created_to(self):
        return self._clean_when("created_to")

    def clean_before(self):
        text = self.cleaned_data.get("before") or ""
        if not text:
            return None
        found = CURSOR.match(text)
        if not found:
            raise forms.ValidationError("This page link is damaged: start from the first page.")
        micros, pk = (int(part) for part in found.groups())
        try:
            at = EPOCH + micros * MICROSECOND
        except (OverflowError, ValueError) as exc:
            raise forms.ValidationError("This page link is damaged: start again.") from exc
        return at, pk

    def clean(self):
        data = super().clean()
        start, end = data.get("created_from"), data.get("created_to")
        if start and end and start > end:
            self.add_error("created_to", "This is before “created from”.")
        return data

    def jobs(self):
        """The jobs this (valid) filter shows, not yet ordered."""
        data = self.cleaned_data
        found = Job.objects.all()
        if data.get("kind"):
            found = found.filter(kind=data["kind"])
        if data.get("state"):
            found = found.filter(state=data["state"])
        if data.get("queue"):
            found = found.filter(task_name__in=task_names_on(data["queue"]))
        if data.get("subject"):
            found = found.filter(subject=data["subject"])
        if data.get("created_from"):
            found = found.filter(created_at__gte=data["created_from"])
        if data.get("created_to"):
            found = found.filter(created_at__lte=data["created_to"])
        if data.get("error"):
            found = found.filter(last_error__icontains=data["error"])
        return found

    def as_query(self, **changes):
        """The filter as a query string (for links and hidden fields), with `changes`."""
        query = QueryDict(mutable=True)
        for name in ("kind", "state", "queue", "subject", "created_from", "created_to", "error"):
            value = self.data.get(name, "")
            if value:
                query[name] = value
        for name, value in changes.items():
            if value:
                query[name] = value
        return query.urlencode()


@dataclass
class JobsPage:
    jobs: list
    next_cursor: str | None  # None on the last page
    first: bool


def newest_first(jobs):
    return jobs.order_by("-created_at", "-pk")


def page_of(jobs, before=None):
    """The PAGE_SIZE jobs of `jobs` just older than `before` ((created_at, pk), or None for
    the newest), newest first, each with its queue."""
    if before is not None:
        at, pk = before
        jobs = jobs.filter(Q(created_at__lt=at) | Q(created_at=at, pk__lt=pk))
    rows = list(newest_first(jobs)[: PAGE_SIZE + 1])
    shown = rows[:PAGE_SIZE]
    for job in shown:
        job.queue = queue_of(job.task_name)
    cursor = cursor_after(shown[-1]) if len(rows) > PAGE_SIZE else None
    return JobsPage(jobs=shown, next_cursor=cursor, first=before is None)


def cursor_after(job):
    return f"{(job.created_at - EPOCH) // MICROSECOND}-{job.pk}"


def count_capped(jobs, cap=None):
    """(how many, True if there are more than `cap`, COUNT_CAP by default): counts at most
    cap + 1 rows."""
    cap = COUNT_CAP if cap is None else cap
    counted = jobs.order_by()[: cap + 1].count()
    return min(counted, cap), counted > cap


@dataclass
class JobDetail:
    job: Job
    queue: str | None
    dead_letter_queue: str | None
    events: list
    log_lines: list


def job_detail(job):
    """Everything the job's page shows: its timeline and the lines it logged."""
    queue = queue_of(job.task_name)
    lines = JobLogLine.objects.filter(job_key=job.key).order_by("at", "pk")[:LOG_LINES_SHOWN]
    return JobDetail(
        job=job,
        queue=queue,
        dead_letter_queue=topology.dead_letter_queue_name(queue) if queue else None,
        events=list(job.events.order_by("at", "pk")),
        log_lines=list(lines),
    )

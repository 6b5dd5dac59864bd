from django.db import models
from django.utils import timezone

from jobs.kinds import get_kind


class Job(models.Model):
    """One unit of background work, tracked from the moment it is asked for.

    The row is three things at once:
    - the outbox entry: written in the same transaction as the business change that asks for
      it, so the work is never lost even if the broker is down at that moment;
    - the idempotency record: its unique key says whether the work was already done, and the
      outcome is written in the same transaction that marks it done;
    - what people see: its state, attempts and last error feed the order's status page.
    """

    class State(models.TextChoices):
        PENDING = "pending", "waiting for the broker"
        QUEUED = "queued", "queued"
        STARTED = "started", "started"
        RETRYING = "retrying", "retrying"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    FINAL_STATES = (State.SUCCEEDED, State.FAILED, State.CANCELLED)

    key = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=50)
    subject = models.CharField(
        max_length=100, db_index=True, help_text="The business object, e.g. order:42"
    )
    task_name = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    task_id = models.CharField(max_length=64, unique=True)

    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    replays = models.PositiveIntegerField(default=0, help_text="Times replayed from dead letters")
    last_error = models.TextField(blank=True)
    publish_error = models.TextField(blank=True)
    outcome = models.JSONField(null=True, blank=True)

    # A running attempt holds a lease on the job, so a redelivered copy of the same message
    # waits instead of doing the work a second time.
    claimed_by = models.CharField(max_length=200, blank=True)
    claim_expires_at = models.DateTimeField(null=True, blank=True)

    # Staff asked to cancel it (jobs/cancel.py). Kept here, not in a worker's memory as
    # Celery's revokes are: a worker that takes the message later, after a restart, still
    # finds it, and a running attempt sees it at its next stop point.
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.CharField(max_length=150, blank=True)

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(fields=["state", "created_at"]),
            # What started lately, per queue: the stall check (jobs/dashboard.py).
            models.Index(fields=["started_at"]),
        ]

    def __str__(self):
        return f"{self.key} ({self.state})"

    @property
    def label(self):
        return get_kind(self.kind).label

    @property
    def is_final(self):
        return self.state in self.FINAL_STATES

    @property
    def status_word(self):
        """The state in one word of the job's kind: queued, sending, retrying, sent, failed."""
        kind = get_kind(self.kind)
        return {
            self.State.PENDING: "delayed" if self.publish_error else "queued",
            self.State.QUEUED: "queued",
            self.State.STARTED: kind.doing,
            self.State.RETRYING: "retrying",
            self.State.SUCCEEDED: kind.done,
            self.State.CANCELLED: "cancelled",
        }.get(self.state, "failed")

    def describe(self):
        """The state in words a customer understands."""
        kind = get_kind(self.kind)
        local = timezone.localtime
        if self.state == self.State.PENDING:
            if self.publish_error:
                return "delayed: our job queue is unreachable, it goes out as soon as it is back"
            return "queued"
        if self.state == self.State.QUEUED:
            return "queued"
        if self.state == self.State.STARTED:
            return f"{kind.doing} (attempt {self.attempts})"
        if self.state == self.State.RETRYING:
            when = f" at {local(self.next_retry_at):%H:%M:%S}" if self.next_retry_at else ""
            return f"will retry{when} after attempt {self.attempts}: {self.last_error}"
        if self.state == self.State.SUCCEEDED:
            return f"{kind.done} at {local(self.finished_at):%H:%M:%S} on attempt {self.attempts}"
        if self.state == self.State.CANCELLED:
            return f"cancelled at {local(self.finished_at):%H:%M:%S} by {self.cancelled_by}"
        return f"failed: {self.last_error}"


class JobEvent(models.Model):
    """One step in a job's life: its timeline, as the order page and the admin show it."""

    class Kind(models.TextChoices):
        QUEUED = "queued", "queued"
        DELAYED = "delayed", "broker unreachable, kept in the outbox"
        STARTED = "started", "started"
        RETRYING = "retrying", "will retry"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        DEAD_LETTERED = "dead_lettered", "dead-lettered"
        REPLAYED = "replayed", "replayed"
        CANCEL_ASKED = "cancel_asked", "cancel asked"
        CANCELLED = "cancelled", "cancelled"
        RESCUED = "rescued", "rescued: published again"

    job = models.ForeignKey(Job, related_name="events", on_delete=models.CASCADE)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    at = models.DateTimeField(default=timezone.now)
    attempt = models.PositiveIntegerField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self):
        return f"{self.job.key}: {self.kind}"


def record_event(job_id, kind, *, attempt=None, worker="", detail=""):
    return JobEvent.objects.create(
        job_id=job_id, kind=kind, attempt=attempt, worker=worker or "", detail=detail[:1000]
    )


class QueuePause(models.Model):
    """A queue staff paused (jobs/pause.py): its workers take nothing from it until resumed.

    A row, not only a message to the workers: a worker that starts while the queue is paused
    reads it and does not consume, so the pause survives restarts.
    """

    queue = models.CharField(max_length=200, unique=True)
    paused_by = models.CharField(max_length=150, blank=True)
    paused_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.queue} paused by {self.paused_by}"


class Throttle(models.Model):
    """A rate limit every worker process on every machine shares (jobs/throttle.py).

    One row per limited thing (the mail provider, a supplier's host): when its last slot went
    and how long the other side asked us to stay away.
    """

    name = models.CharField(max_length=300, unique=True)
    last_slot_at = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(
        null=True, blank=True, help_text="From the other side's Retry-After: nothing before then."
    )

    def __str__(self):
        return self.name


class Tally(models.Model):
    """A running total that /metrics reports (jobs/metrics.py), folded from the job timeline.

    Counters and histograms must only grow, whichever web process Prometheus reaches; the
    processes share this table, not their memory. The row named `FOLDED_UP_TO` holds the last
    JobEvent folded in, so each scrape reads only the events written since the one before.
    """

    FOLDED_UP_TO = "folded_up_to_event"

    name = models.CharField(max_length=100)
    labels = models.CharField(max_length=300, blank=True, help_text='JSON: {"queue": "emails"}')
    value = models.FloatField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "labels"], name="one_tally_each")]

    def __str__(self):
        return f"{self.name}{self.labels} = {self.value}"


class JobLogLine(models.Model):
    """A line logged while a job ran, kept for its page (jobs/logs.py: JobLogHandler).

    Found by the job's key, not a foreign key: the handler knows the key from the log record
    and writes without reading the job first. Bounded per attempt by the handler
    (JobLogHandler.MAX_LINES_PER_ATTEMPT), and pruned with their job (jobs/retention.py).
    """

    job_key = models.CharField(max_length=200)
    at = models.DateTimeField(default=timezone.now)
    attempt = models.PositiveIntegerField(null=True, blank=True)
    level = models.CharField(max_length=10)
    logger = models.CharField(max_length=200)
    message = models.TextField()

    class Meta:
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["job_key", "at"])]

    def __str__(self):
        return f"{self.job_key} {self.level}: {self.message[:60]}"

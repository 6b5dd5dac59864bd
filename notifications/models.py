"""Newsletters: who subscribed, what staff wrote, and what became of each email.

The order emails need no table of their own: their Job row (jobs.models) is the record. A
newsletter goes to thousands of people, so each recipient gets a Delivery row, the unit that
is sent once and counted on the progress bar.
"""

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class Subscriber(models.Model):
    """An address that asked for the newsletter. Only CONFIRMED ones are sent it (double opt-in:
    the address's owner followed the link we emailed to it)."""

    class Status(models.TextChoices):
        PENDING = "pending", "waiting for confirmation"
        CONFIRMED = "confirmed", "confirmed"
        UNSUBSCRIBED = "unsubscribed", "unsubscribed"

    # Stored in lower case (notifications/forms.py), so one mailbox is one subscriber.
    email = models.EmailField(max_length=254, unique=True)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    created_at = models.DateTimeField(default=timezone.now)
    # Numbers the confirmation emails (each is a job of its own) and spaces them out.
    confirmations_asked = models.PositiveIntegerField(default=0)
    confirmation_asked_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self):
        return self.email


class Newsletter(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft", "draft"
        QUEUED = "queued", "waiting for a worker"  # "send" was pressed; not planned yet
        SENDING = "sending", "sending"
        SENT = "sent", "sent"  # nothing left to send (some may have failed or be in doubt)
        CANCELLED = "cancelled", "cancelled"  # staff stopped it: what was left is not sent

    subject = models.CharField(max_length=200)
    body = models.TextField(max_length=50_000, help_text="Plain text; links become clickable.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    state = models.CharField(max_length=20, choices=State.choices, default=State.DRAFT)
    send_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    send_requested_at = models.DateTimeField(null=True, blank=True)
    # Filled in by the planner (notifications/newsletters.py: plan_newsletter).
    planned_at = models.DateTimeField(null=True, blank=True)
    recipients = models.PositiveIntegerField(default=0)
    chunks = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    ACTIVE_STATES = (State.QUEUED, State.SENDING)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return self.subject

    def get_absolute_url(self):
        return reverse("newsletters:detail", args=[self.pk])

    @property
    def is_active(self):
        return self.state in self.ACTIVE_STATES

    @property
    def badge(self):
        """The colour of its state badge, in the shop's stylesheet's words."""
        colours = {"draft": "pending", "sending": "running", "sent": "done", "cancelled": "failed"}
        return colours.get(self.state, self.state)


class Delivery(models.Model):
    """One newsletter to one subscriber: sent at most once (see notifications/newsletters.py)."""

    class State(models.TextChoices):
        QUEUED = "queued", "waiting"
        SENDING = "sending", "being sent"
        SENT = "sent", "sent"
        FAILED = "failed", "failed"
        # A process died (or lost its connection) between handing the email to the mail server
        # and hearing back: it may have arrived or not. Not sent again unless staff ask.
        UNKNOWN = "unknown", "in doubt"
        SKIPPED = "skipped", "skipped: unsubscribed before it went out"
        CANCELLED = "cancelled", "not sent: the newsletter was cancelled"

    OUTSTANDING = (State.QUEUED, State.SENDING)

    newsletter = models.ForeignKey(Newsletter, related_name="deliveries", on_delete=models.CASCADE)
    subscriber = models.ForeignKey(Subscriber, related_name="deliveries", on_delete=models.CASCADE)
    # The chunk job that sends it (notifications.send_newsletter_chunk).
    chunk = models.PositiveIntegerField()
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED)
    # Times it was handed to the mail server; a recipient refused for now goes to the back.
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            # Planning twice cannot make a second row, hence a second email.
            models.UniqueConstraint(
                fields=["newsletter", "subscriber"], name="one_delivery_per_recipient"
            )
        ]
        indexes = [
            models.Index(fields=["newsletter", "chunk"]),
            models.Index(fields=["newsletter", "state"]),
        ]

    def __str__(self):
        return f"{self.newsletter_id} → {self.subscriber_id} ({self.state})"

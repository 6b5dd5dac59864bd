"""Newsletters as plain functions: plan the fan-out, send a chunk, count the progress.

Nothing here knows about Celery; notifications/tasks.py wraps these in jobs.

The road of one newsletter:

1. Staff press "send" (notifications/services.py: send_newsletter): one job, published on
   commit; pressing again asks for nothing new.
2. The planner (`plan_newsletter`) writes, in one transaction, one Delivery row per confirmed
   subscriber (unique per newsletter and subscriber) numbered into chunks of
   NEWSLETTER_CHUNK_SIZE, and one outbox Job per chunk. The task then publishes the chunks as
   a Celery group on the `emails` queue at PRIORITY_BULK. A planner that runs twice (its
   message redelivered) finds the rows written and only publishes what is still unpublished;
   a planner killed after its commit leaves the chunk jobs in the outbox, where the sweeper
   publishes them (jobs/outbox.py).
3. Each chunk (`send_chunk`) sends its recipients one by one over one SMTP connection, each
   Delivery going QUEUED -> SENDING (committed before the SMTP call) -> SENT (committed after
   the server accepted it).

Delivery guarantee: **at most once per recipient**, where order emails are **at least once**.

An order confirmation that may have been sent by a worker that died is sent again: a
customer without their confirmation is worse off than one with two. For a newsletter the
balance tips the other way: a duplicate to thousands of people is spam, and one missing
newsletter harms nobody. So a Delivery found in SENDING by a later attempt (its process died,
or its connection broke, after handing the email over and before hearing the answer) is not
sent again: it becomes UNKNOWN, "in doubt". Staff see how many, and can send those again on
purpose (services.resend_in_doubt). Every attempt for a recipient carries the same Message-ID,
a staff resend too, so a mail system that keeps them can drop a copy.

Only one attempt at a chunk runs at a time: the chunk's job is leased (jobs/runner.py), so a
row in SENDING found by the attempt holding the lease was left by an attempt that is dead.
How many rows can end up in doubt: at most one per process killed mid-send.
"""

import enum
import logging
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timeuntil

from jobs import throttle
from jobs.cancel import stop_if_cancelled
from jobs.errors import PermanentError, TransientError
from jobs.models import Job
from jobs.outbox import record_group
from notifications import emails, tokens
from notifications.models import Delivery, Newsletter, Subscriber

logger = logging.getLogger(__name__)

# The chunk task's name (notifications/tasks.py), for the outbox rows written here.
CHUNK_TASK = "notifications.send_newsletter_chunk"

IN_DOUBT = "in doubt: the process sending it stopped before the mail server answered"

# The mail provider's limit, as a jobs.Throttle row: one slot per newsletter email.
MAIL_PROVIDER = "mail provider: newsletters"
# A slot further away than this (the provider asked us to back off) retries the chunk later.
MAIL_SLOT_MAX_WAIT_SECONDS = 10


# --- Pure rules -----------------------------------------------------------------------------


def chunks_of(items, size):
    """`items` cut into lists of at most `size`, in order: the recipients of each chunk."""
    if size < 1:
        raise ValueError(f"a chunk holds at least one recipient, not {size}")
    items = list(items)
    return [items[start : start + size] for start in range(0, len(items), size)]


def mail_slot_interval(emails_per_second):
    """Seconds between two newsletter emails, whichever worker sends them; None: no limit."""
    return None if emails_per_second <= 0 else 1 / emails_per_second


class Step(enum.Enum):
    SEND = "send it"
    SKIP = "skip it: unsubscribed since the plan"
    GIVE_UP_IN_DOUBT = "mark it in doubt: an attempt that died was sending it"
    NOTHING = "nothing: already decided"


def next_step(state, subscribed):
    """What an attempt at a chunk does with a delivery it finds in `state` (the in-doubt rule).

    Called by the one attempt holding the chunk's lease: a delivery in SENDING was handed to
    the mail server, or was about to be, by an attempt that is gone. It may have arrived: at
    most once means it is not sent again.
    """
    if state == Delivery.State.SENDING:
        return Step.GIVE_UP_IN_DOUBT
    if state != Delivery.State.QUEUED:
        return Step.NOTHING  # sent, failed, in doubt or skipped: decided for good
    return Step.SEND if subscribed else Step.SKIP


class Verdict(enum.Enum):
    RETRY = "the server said not now: it does not have it, try again later"
    FAILED = "the server said never: it does not have it, give up"
    IN_DOUBT = "no answer: it may have it"


def failure_verdict(exc):
    """What an exception from handing one email to the mail server says about that email.

    Only an SMTP reply proves the server did not keep the message; a broken connection, a
    timeout or our own time limit in the middle of the exchange proves nothing.
    """
    refusal = emails.smtp_refusal(exc)
    if refusal is None:
        return Verdict.IN_DOUBT
    return Verdict.RETRY if refusal == emails.TEMPORARY else Verdict.FAILED


def newsletter_message_id(newsletter_id, subscriber_id):
    """The same Message-ID for every attempt to send this newsletter to this subscriber."""
    return f"<newsletter.{newsletter_id}.{subscriber_id}@shop-jobs.test>"


# --- The emails -----------------------------------------------------------------------------


def site_link(viewname, token):
    return settings.SITE_URL + reverse(viewname, args=[token])


def render_newsletter_email(newsletter, subscriber):
    """The newsletter for one subscriber, with its own unsubscribe link in the body and in
    the List-Unsubscribe headers (RFC 2369, and RFC 8058's one-click POST)."""
    unsubscribe_url = site_link(
        "subscriptions:unsubscribe", tokens.unsubscribe_token(subscriber.pk)
    )
    message = emails.render_email(
        "newsletter",
        {"newsletter": newsletter, "subscriber": subscriber, "unsubscribe_url": unsubscribe_url},
        to=subscriber.email,
        message_id=newsletter_message_id(newsletter.pk, subscriber.pk),
    )
    message.extra_headers["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message.extra_headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return message


def send_confirmation(subscriber_id, job_key):
    """Email a new subscriber the link that confirms their address. At least once, like the
    order emails: a second copy of this one only costs a second click."""
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None:
        raise PermanentError(f"subscriber {subscriber_id} does not exist")
    if subscriber.status != Subscriber.Status.PENDING:
        return {"skipped": f"the subscriber is {subscriber.status} already"}
    max_age = settings.NEWSLETTER_CONFIRM_MAX_AGE_SECONDS
    now = timezone.now()
    message = emails.render_email(
        "newsletter_confirmation",
        {
            "subscriber": subscriber,
            "confirm_url": site_link(
                "subscriptions:confirm", tokens.confirmation_token(subscriber.pk)
            ),
            "valid_for": timeuntil(now + timedelta(seconds=max_age), now),
        },
        to=subscriber.email,
        message_id=emails.job_message_id(job_key),
    )
    emails.deliver(message)
    return {
        "to": message.to,
        "subject": message.subject,
        "message_id": message.extra_headers["Message-ID"],
    }


# --- Planning the fan-out -------------------------------------------------------------------


def plan_newsletter(newsletter_id, chunk_size=None):
    """Write a delivery row for every confirmed subscriber and a job for every chunk.

    One transaction: either the whole plan is written or none of it. Runs once per
    newsletter; a second run (a redelivered message) finds it planned and writes nothing.
    Returns the plan's size. The chunk jobs are left in the outbox for the caller to publish.

    Limit: the plan of a very large list (hundreds of thousands) is one long transaction; it
    would then be written in batches, each remembering the last subscriber planned.
    """
    chunk_size = chunk_size or settings.NEWSLETTER_CHUNK_SIZE
    with transaction.atomic():
        newsletter = Newsletter.objects.select_for_update().filter(pk=newsletter_id).first()
        if newsletter is None:
            raise PermanentError(f"newsletter {newsletter_id} does not exist")
        if newsletter.state == Newsletter.State.QUEUED:
            confirmed = Subscriber.objects.filter(status=Subscriber.Status.CONFIRMED)
            recipients = list(confirmed.order_by("pk").values_list("pk", flat=True))
            chunks = chunks_of(recipients, chunk_size)
            for number, subscriber_ids in enumerate(chunks):
                Delivery.objects.bulk_create(
                    [
                        Delivery(newsletter=newsletter, subscriber_id=pk, chunk=number)
                        for pk in subscriber_ids
                    ],
                    # The unique (newsletter, subscriber) makes a second row impossible anyway.
                    ignore_conflicts=True,
                )
            create_chunk_jobs(newsletter, range(len(chunks)))
            now = timezone.now()
            newsletter.state = Newsletter.State.SENDING if recipients else Newsletter.State.SENT
            newsletter.recipients = len(recipients)
            newsletter.chunks = len(chunks)
            newsletter.planned_at = now
            newsletter.finished_at = None if recipients else now
            newsletter.save()
    return {
        "newsletter": newsletter.pk,
        "recipients": newsletter.recipients,
        "chunks": newsletter.chunks,
    }


def create_chunk_jobs(newsletter, chunks):
    """One outbox Job per chunk number, PENDING until published (tasks.publish_chunks)."""
    record_group(CHUNK_TASK, newsletter, [(newsletter.pk, chunk) for chunk in chunks])


def unpublished_chunk_jobs(newsletter_id):
    return list(
        Job.objects.filter(
            task_name=CHUNK_TASK,
            subject=f"newsletter:{newsletter_id}",
            state=Job.State.PENDING,
        ).order_by("pk")
    )


# --- Sending a chunk ------------------------------------------------------------------------


def send_chunk(newsletter_id, chunk):
    """Send chunk `chunk` of a newsletter: every delivery in it that is still to be sent.

    Safe to run again at any point (redelivered, retried, replayed): what was sent is skipped,
    what was being sent by an attempt that died is marked in doubt (`next_step`). A mail server
    that says "not now" puts the recipient back, at the end of the line, and the chunk is
    retried later (TransientError); "never" fails that recipient and the chunk goes on.
    Returns what this attempt did, counted.
    """
    newsletter = Newsletter.objects.filter(pk=newsletter_id).first()
    if newsletter is None:
        raise PermanentError(f"newsletter {newsletter_id} does not exist")
    deliveries = list(
        Delivery.objects.filter(newsletter=newsletter, chunk=chunk)
        .select_related("subscriber")
        .order_by("attempts", "pk")  # a recipient refused for now waits behind the others
    )
    done = Counter()
    to_send = []
    for delivery in deliveries:
        step = next_step(
            delivery.state, subscribed=delivery.subscriber.status == Subscriber.Status.CONFIRMED
        )
        if step is Step.SEND:
            to_send.append(delivery)
        elif step is Step.GIVE_UP_IN_DOUBT:
            settle(delivery, Delivery.State.SENDING, Delivery.State.UNKNOWN, IN_DOUBT)
            done["in_doubt"] += 1
        elif step is Step.SKIP:
            settle(delivery, Delivery.State.QUEUED, Delivery.State.SKIPPED, "unsubscribed")
            done["skipped"] += 1
    if done["in_doubt"]:
        logger.warning(
            "newsletter %s chunk %s: %d recipient(s) in doubt, not sent again",
            newsletter_id, chunk, done["in_doubt"],
        )  # fmt: skip
    if to_send:
        with smtp_connection() as connection:
            for delivery in to_send:
                stop_if_cancelled()  # staff cancelled the newsletter: the rest are not sent
                wait_for_a_mail_slot()
                done[send_one(connection, newsletter, delivery)] += 1
    finish_if_done(newsletter_id)
    return {"newsletter": newsletter_id, "chunk": chunk, **done}


def wait_for_a_mail_slot():
    """Sleep until this email's slot under the mail provider's limit: NEWSLETTER_EMAILS_PER_SECOND
    in total, across every email worker and process (jobs/throttle.py), not per worker as
    Celery's rate_limit counts (celery#5732)."""
    interval = mail_slot_interval(settings.NEWSLETTER_EMAILS_PER_SECOND)
    if interval is not None:
        time.sleep(throttle.reserve(MAIL_PROVIDER, interval, max_wait=MAIL_SLOT_MAX_WAIT_SECONDS))


@contextmanager
def smtp_connection():
    """This thread's connection to the mail server (emails.mail_connection), for a chunk."""
    try:
        connection = emails.mail_connection()
    except OSError as exc:  # smtplib's errors and timeouts are OSErrors
        raise TransientError(f"mail server unreachable: {exc}") from exc
    try:
        yield connection
    except BaseException:
        emails.close_mail_connection()  # whatever state it is in, the next chunk starts afresh
        raise


def send_one(connection, newsletter, delivery):
    """Send one delivery; returns "sent" or "failed", or raises TransientError to retry the
    chunk later."""
    # Rendered before the delivery is marked: a template error leaves nothing in doubt.
    message = render_newsletter_email(newsletter, delivery.subscriber)
    claimed = Delivery.objects.filter(pk=delivery.pk, state=Delivery.State.QUEUED).update(
        state=Delivery.State.SENDING, attempts=F("attempts") + 1, started_at=timezone.now()
    )
    if not claimed:  # not ours to send (it cannot happen under the chunk's lease)
        return "not_ours"
    # From here until the row says SENT, a crash leaves this recipient in doubt.
    try:
        connection.send_messages([message])
    except Exception as exc:  # SoftTimeLimitExceeded too: it may strike mid-conversation
        verdict = failure_verdict(exc)
        reason = emails.describe_smtp_error(exc)
        if verdict is Verdict.FAILED:
            settle(delivery, Delivery.State.SENDING, Delivery.State.FAILED, reason)
            return "failed"
        if verdict is Verdict.RETRY:
            settle(delivery, Delivery.State.SENDING, Delivery.State.QUEUED, reason)
            raise TransientError(f"{delivery.subscriber.email}: {reason}") from exc
        settle(delivery, Delivery.State.SENDING, Delivery.State.UNKNOWN, f"in doubt: {reason}")
        raise TransientError(f"connection lost while sending: {reason}") from exc
    settle(delivery, Delivery.State.SENDING, Delivery.State.SENT, "")
    return "sent"


def settle(delivery, from_state, to_state, error):
    final = to_state not in Delivery.OUTSTANDING
    Delivery.objects.filter(pk=delivery.pk, state=from_state).update(
        state=to_state, error=error[:500], finished_at=timezone.now() if final else None
    )


def finish_if_done(newsletter_id):
    """Mark the newsletter sent once nothing is left to send (one statement, so a resend
    committed in between is not overlooked)."""
    outstanding = Delivery.objects.filter(newsletter=OuterRef("pk"), state__in=Delivery.OUTSTANDING)
    Newsletter.objects.filter(pk=newsletter_id, state=Newsletter.State.SENDING).exclude(
        Exists(outstanding)
    ).update(state=Newsletter.State.SENT, finished_at=timezone.now())


# --- Progress -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0
    cancelled: int = 0  # not sent: staff cancelled the newsletter
    remaining: int = 0  # waiting or being sent right now

    @property
    def total(self):
        return (
            self.sent + self.failed + self.unknown + self.skipped + self.cancelled + self.remaining
        )

    @property
    def finished(self):
        return self.total - self.remaining

    @property
    def percent(self):
        return self.finished * 100 // self.total if self.total else 0

    def as_dict(self):
        return {
            "total": self.total,
            "sent": self.sent,
            "failed": self.failed,
            "unknown": self.unknown,
            "skipped": self.skipped,
            "cancelled": self.cancelled,
            "remaining": self.remaining,
            "percent": self.percent,
        }


def progress_of(newsletter_id):
    """How far a newsletter has got, from its delivery rows (one grouped count)."""
    counts = dict(
        Delivery.objects.filter(newsletter_id=newsletter_id)
        .values_list("state")
        .annotate(n=Count("pk"))
        .order_by()
    )
    state = Delivery.State
    return Progress(
        sent=counts.get(state.SENT, 0),
        failed=counts.get(state.FAILED, 0),
        unknown=counts.get(state.UNKNOWN, 0),
        skipped=counts.get(state.SKIPPED, 0),
        cancelled=counts.get(state.CANCELLED, 0),
        remaining=counts.get(state.QUEUED, 0) + counts.get(state.SENDING, 0),
    )


def chunk_jobs(newsletter_id):
    return Job.objects.filter(task_name=CHUNK_TASK, subject=f"newsletter:{newsletter_id}")

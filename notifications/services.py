"""Writes for newsletters and their subscribers. Views call these; these know nothing of HTTP.

Every one is one transaction, and the background work it asks for is published after the
commit (jobs.outbox.enqueue_on_commit), as everywhere in the shop.
"""

import enum
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from jobs import cancel
from jobs.models import Job
from jobs.outbox import enqueue_on_commit, subject_label
from notifications import newsletters, tokens
from notifications.models import Delivery, Newsletter, Subscriber
from notifications.tasks import plan_newsletter, publish_chunks, send_newsletter_confirmation

# --- Subscribers ----------------------------------------------------------------------------


@transaction.atomic
def subscribe(email):
    """Ask to subscribe `email` (already checked and lower-cased): double opt-in.

    A new or unsubscribed address gets a confirmation email, and is only sent newsletters
    once its owner follows the link in it. An address waiting for confirmation gets another
    one, at most every NEWSLETTER_CONFIRM_RESEND_SECONDS. A confirmed address gets nothing.
    The caller shows the same page in every case: the form must not tell a stranger who
    subscribes to what.
    """
    subscriber, _ = Subscriber.objects.select_for_update().get_or_create(email=email)
    if subscriber.status == Subscriber.Status.CONFIRMED:
        return subscriber
    now = timezone.now()
    asked_lately = subscriber.confirmation_asked_at and (
        now - subscriber.confirmation_asked_at
        < timedelta(seconds=settings.NEWSLETTER_CONFIRM_RESEND_SECONDS)
    )
    if subscriber.status == Subscriber.Status.PENDING and asked_lately:
        return subscriber
    subscriber.status = Subscriber.Status.PENDING
    subscriber.confirmations_asked += 1
    subscriber.confirmation_asked_at = now
    subscriber.save()
    # One job per request of theirs: a second "send me the link again" is a second email.
    number = subscriber.confirmations_asked
    enqueue_on_commit(send_newsletter_confirmation, subscriber.pk, number, subject=subscriber)
    return subscriber


class Confirmation(enum.Enum):
    CONFIRMED = "confirmed"
    ALREADY = "already confirmed"
    UNSUBSCRIBED = "unsubscribed since"


@transaction.atomic
def confirm(token):
    """Confirm the subscription a confirmation link stands for: (Confirmation, subscriber).

    Raises tokens.BadLink (ExpiredLink for an old one), or Subscriber.DoesNotExist.
    """
    subscriber_id = tokens.read_confirmation_token(token)
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber_id)
    if subscriber.status == Subscriber.Status.CONFIRMED:
        return Confirmation.ALREADY, subscriber
    if subscriber.status == Subscriber.Status.UNSUBSCRIBED:
        # An old confirmation link must not undo an unsubscribe: subscribing again does.
        return Confirmation.UNSUBSCRIBED, subscriber
    subscriber.status = Subscriber.Status.CONFIRMED
    subscriber.confirmed_at = timezone.now()
    subscriber.save(update_fields=["status", "confirmed_at"])
    return Confirmation.CONFIRMED, subscriber


def subscriber_of_unsubscribe_link(token):
    """The subscriber an unsubscribe link stands for; raises tokens.BadLink or DoesNotExist."""
    return Subscriber.objects.get(pk=tokens.read_unsubscribe_token(token))


@transaction.atomic
def unsubscribe(subscriber):
    """Stop sending `subscriber` newsletters, from now on: chunks not sent yet skip them.
    Returns False if they had unsubscribed already."""
    changed = Subscriber.objects.filter(pk=subscriber.pk).exclude(
        status=Subscriber.Status.UNSUBSCRIBED
    )
    return bool(
        changed.update(status=Subscriber.Status.UNSUBSCRIBED, unsubscribed_at=timezone.now())
    )


# --- Newsletters ----------------------------------------------------------------------------


def create_newsletter(*, subject, body, created_by):
    return Newsletter.objects.create(subject=subject, body=body, created_by=created_by)


@transaction.atomic
def send_newsletter(newsletter, requested_by):
    """Ask for `newsletter` to go to every confirmed subscriber. One job, on commit.

    Only a draft can be sent: asking again (a double click, a second tab, a replayed request)
    finds it queued or sending and asks for nothing new. Returns True if this call asked.
    """
    asked = Newsletter.objects.filter(pk=newsletter.pk, state=Newsletter.State.DRAFT).update(
        state=Newsletter.State.QUEUED,
        send_requested_by=requested_by,
        send_requested_at=timezone.now(),
    )
    if asked:
        enqueue_on_commit(plan_newsletter, newsletter.pk, subject=newsletter)
    return bool(asked)


@transaction.atomic
def cancel_newsletter(newsletter, cancelled_by):
    """Stop a newsletter on its way: nobody still waiting for it gets it.

    The recipients still waiting are marked CANCELLED, and every unfinished job of the
    newsletter (the planner, the chunks) is cancelled (jobs/cancel.py): a chunk being sent
    stops before its next recipient; the one being handed to the mail server at that moment
    is sent. Only a newsletter on its way can be cancelled. Returns how many recipients
    will not get it.
    """
    stopped = Newsletter.objects.filter(
        pk=newsletter.pk, state__in=Newsletter.ACTIVE_STATES
    ).update(state=Newsletter.State.CANCELLED, finished_at=timezone.now())
    if not stopped:
        return 0
    by = cancelled_by.get_username() if hasattr(cancelled_by, "get_username") else cancelled_by
    left = newsletter.deliveries.filter(state=Delivery.State.QUEUED).update(
        state=Delivery.State.CANCELLED, error=f"cancelled by {by}", finished_at=timezone.now()
    )
    cancel.cancel_many(Job.objects.filter(subject=subject_label(newsletter)), by=by)
    return left


@transaction.atomic
def resend_in_doubt(newsletter):
    """Send the newsletter again, on purpose, to its recipients in doubt (UNKNOWN).

    Some of them did get it: they will have it twice (with the same Message-ID). That is
    staff's call to make, never the machine's. The deliveries go back to the queue in new
    chunks, each a new job. Returns how many recipients are asked for.
    """
    newsletter = Newsletter.objects.select_for_update().get(pk=newsletter.pk)
    in_doubt = newsletter.deliveries.filter(state=Delivery.State.UNKNOWN)
    ids = list(in_doubt.order_by("pk").values_list("pk", flat=True))
    if not ids:
        return 0
    last_chunk = newsletter.deliveries.aggregate(last=Max("chunk"))["last"]
    chunks = newsletters.chunks_of(ids, settings.NEWSLETTER_CHUNK_SIZE)
    numbers = range(last_chunk + 1, last_chunk + 1 + len(chunks))
    for number, delivery_ids in zip(numbers, chunks, strict=True):
        Delivery.objects.filter(pk__in=delivery_ids, state=Delivery.State.UNKNOWN).update(
            state=Delivery.State.QUEUED,
            chunk=number,
            error="sent again by staff: it was in doubt",
            finished_at=None,
        )
    newsletters.create_chunk_jobs(newsletter, numbers)
    newsletter.state = Newsletter.State.SENDING
    newsletter.chunks += len(chunks)
    newsletter.finished_at = None
    newsletter.save(update_fields=["state", "chunks", "finished_at"])
    transaction.on_commit(lambda: publish_chunks(newsletter.pk))
    return len(ids)

"""Email tasks: thin wrappers that give a plain function the job runner's guarantees."""

import logging

from celery import shared_task
from django.conf import settings

from jobs import outbox
from jobs.runner import JobTask
from notifications import emails, newsletters
from notifications.jobs import (
    NEWSLETTER_CONFIRMATION,
    NEWSLETTER_SEND,
    ORDER_CONFIRMATION,
    SHIPPING_NOTICE,
)

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    base=JobTask,
    name="notifications.send_order_confirmation",
    soft_time_limit=20,
    time_limit=30,
)
def send_order_confirmation(self, order_id):
    """Email the customer their order confirmation, once, however often the message comes."""
    key = ORDER_CONFIRMATION.key(order_id)
    return self.run_once(key, lambda: emails.send_order_confirmation(order_id, key))


@shared_task(
    bind=True,
    base=JobTask,
    name="notifications.send_shipping_notification",
    soft_time_limit=20,
    time_limit=30,
)
def send_shipping_notification(self, order_id):
    """Tell the customer their order is on its way, once."""
    key = SHIPPING_NOTICE.key(order_id)
    return self.run_once(key, lambda: emails.send_shipping_notification(order_id, key))


# --- Newsletters (notifications/newsletters.py) -------------------------------------------------


@shared_task(
    bind=True,
    base=JobTask,
    name="notifications.send_newsletter_confirmation",
    soft_time_limit=20,
    time_limit=30,
)
def send_newsletter_confirmation(self, subscriber_id, request_number):
    """Email a new subscriber their confirmation link (each request of theirs is one job)."""
    key = NEWSLETTER_CONFIRMATION.key(f"{subscriber_id}:{request_number}")
    return self.run_once(key, lambda: newsletters.send_confirmation(subscriber_id, key))


@shared_task(
    bind=True,
    base=JobTask,
    name="notifications.plan_newsletter",
    soft_time_limit=120,
    time_limit=150,
)
def plan_newsletter(self, newsletter_id):
    """Write a newsletter's delivery rows and chunk jobs, once; then publish the chunks."""
    key = NEWSLETTER_SEND.key(newsletter_id)
    outcome = self.run_once(key, lambda: newsletters.plan_newsletter(newsletter_id))
    # Also when this copy found the plan done: whatever the broker has not confirmed yet
    # goes now (a planner killed between its commit and here left it in the outbox).
    publish_chunks(newsletter_id)
    return outcome


@shared_task(
    bind=True,
    base=JobTask,
    name=newsletters.CHUNK_TASK,
    # Chunks are short (NEWSLETTER_CHUNK_SIZE emails): a worker is never held long by one, and
    # an order confirmation waits for at most the chunk that is running.
    soft_time_limit=60,
    time_limit=75,
    # Chunks per minute per worker, from NEWSLETTER_EMAILS_PER_SECOND: see chunk_rate_limit
    # for what Celery's rate_limit does and does not limit.
    rate_limit=newsletters.chunk_rate_limit(
        settings.NEWSLETTER_EMAILS_PER_SECOND, settings.NEWSLETTER_CHUNK_SIZE
    ),
)
def send_newsletter_chunk(self, newsletter_id, chunk):
    """Send one chunk of a newsletter: each recipient at most once, however often it runs."""
    key = newsletters.chunk_key(newsletter_id, chunk)
    return self.run_once(key, lambda: newsletters.send_chunk(newsletter_id, chunk))


def publish_chunks(newsletter_id):
    """Publish the newsletter's chunk jobs still in the outbox, as one group (jobs/outbox.py:
    publish_group). Returns how many went out."""
    return outbox.publish_group(newsletters.unpublished_chunk_jobs(newsletter_id))

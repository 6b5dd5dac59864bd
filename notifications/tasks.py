"""Email jobs: each a thin declaration around a plain function of emails.py or newsletters.py.

Where each goes and how it may fail is said here, once: the queue and priority (a customer's
confirmation overtakes a newsletter), the time limits, and the words the pages use for it.
"""

import logging

from config.queues import EMAILS
from jobs import outbox
from jobs.declare import job
from jobs.topology import PRIORITY_BULK, PRIORITY_HIGH, PRIORITY_NORMAL, PRIORITY_URGENT
from notifications import emails, newsletters

logger = logging.getLogger(__name__)

# One email: one SMTP conversation, seconds at most. A provider that hangs past the soft limit
# is retried like any transient fault; the hard limit frees the worker if even that hangs.
EMAIL = {
    "queue": EMAILS,
    "doing": "sending",
    "done": "sent",
    "soft_time_limit": 20,
    "time_limit": 30,
}


@job(
    "notifications.send_order_confirmation",
    kind="order_confirmation",
    label="Confirmation email",
    priority=PRIORITY_URGENT,  # a customer is waiting for it
    **EMAIL,
)
def send_order_confirmation(order_id, job_key):
    """Email the customer their order confirmation, once, however often the message comes."""
    return emails.send_order_confirmation(order_id, job_key)


@job(
    "notifications.send_shipping_notification",
    kind="shipping_notification",
    label="Shipping email",
    priority=PRIORITY_HIGH,
    **EMAIL,
)
def send_shipping_notification(order_id, job_key):
    """Tell the customer their order is on its way, once."""
    return emails.send_shipping_notification(order_id, job_key)


# --- Newsletters (notifications/newsletters.py) -------------------------------------------------


@job(
    "notifications.send_newsletter_confirmation",
    kind="newsletter_confirmation",
    label="Subscription confirmation email",
    # Someone just subscribed and waits for the link; the newsletter itself can wait.
    priority=PRIORITY_URGENT,
    **EMAIL,
)
def send_newsletter_confirmation(subscriber_id, request_number, job_key):
    """Email a new subscriber their confirmation link (each request of theirs is one job)."""
    return newsletters.send_confirmation(subscriber_id, job_key)


@job(
    "notifications.plan_newsletter",
    kind="newsletter",
    label="Newsletter planning",
    doing="planning",
    done="planned",
    queue=EMAILS,
    # Seconds, once per newsletter: it goes before the chunks it publishes.
    priority=PRIORITY_NORMAL,
    soft_time_limit=120,
    time_limit=150,
    bind=True,
)
def plan_newsletter(task, newsletter_id):
    """Write a newsletter's delivery rows and chunk jobs, once; then publish the chunks."""
    key = task.job_key(newsletter_id)
    outcome = task.run_once(key, lambda: newsletters.plan_newsletter(newsletter_id))
    # Also when this copy found the plan done: whatever the broker has not confirmed yet
    # goes now (a planner killed between its commit and here left it in the outbox).
    publish_chunks(newsletter_id)
    return outcome


@job(
    newsletters.CHUNK_TASK,
    kind="newsletter_chunk",  # keyed newsletter_chunk:<newsletter>:<chunk>
    label="Newsletter chunk",
    priority=PRIORITY_BULK,
    # No Celery rate_limit: it would count per worker. Each email waits for its slot under
    # the provider's limit, shared by all workers (newsletters.wait_for_a_mail_slot).
    queue=EMAILS,
    doing="sending",
    done="sent",
    # Chunks are short (NEWSLETTER_CHUNK_SIZE emails): a worker is never held long by one, and
    # an order confirmation waits for at most the chunk that is running.
    soft_time_limit=60,
    time_limit=75,
)
def send_newsletter_chunk(newsletter_id, chunk):
    """Send one chunk of a newsletter: each recipient at most once, however often it runs."""
    return newsletters.send_chunk(newsletter_id, chunk)


def publish_chunks(newsletter_id):
    """Publish the newsletter's chunk jobs still in the outbox, as one group (jobs/outbox.py:
    publish_group). Returns how many went out."""
    return outbox.publish_group(newsletters.unpublished_chunk_jobs(newsletter_id))

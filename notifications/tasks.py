"""Email tasks: thin wrappers that give a plain function the job runner's guarantees."""

from celery import shared_task

from jobs.runner import JobTask
from notifications import emails
from notifications.jobs import ORDER_CONFIRMATION, SHIPPING_NOTICE


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

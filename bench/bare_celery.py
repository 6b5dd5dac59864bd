"""A Celery app with Celery's default settings: the baseline of bench/throughput.py.

Nothing of config/settings.py applies here: the broker comes from CELERY_BROKER_URL (the
benchmark's vhost, same broker as ours) and everything else is Celery's default: the default
queue `celery` without priorities, prefetch multiplier 4, acknowledgement before the task runs,
no publisher confirms, no result backend (results are not stored), no task events. The tasks
call the same plain functions as ours, without the job runner (no claim, no outcome, no
retries). Django is set up by Celery's own Django fixup (DJANGO_SETTINGS_MODULE is set), which
the email needs for the order and its templates.
"""

import json
import os

from celery import Celery

# Not the current app: in the benchmark process the shop's app stays current, so its
# shared tasks keep publishing with its own routes and settings.
app = Celery("bare", set_as_current=False)
# A baseline variant's few changes (bench/throughput.py, BARE_VARIANTS), e.g. late acks.
app.conf.update(json.loads(os.environ.get("BARE_CELERY_SETTINGS", "{}")))


@app.task(name="bare.noop")
def noop(label="", seconds=0):
    return label


@app.task(name="bare.send_order_confirmation")
def send_order_confirmation(order_id):
    from notifications import emails
    from notifications.tasks import send_order_confirmation

    return emails.send_order_confirmation(order_id, send_order_confirmation.job_key(order_id))


@app.task(name="bare.send_newsletter_email")
def send_newsletter_email(newsletter_id, subscriber_id):
    """One newsletter email, sent the plain way: rendered, then Django's send() (a connection
    of its own). No delivery row, no rate limit. bench/newsletter.py sends these in chunks."""
    from notifications.models import Newsletter, Subscriber
    from notifications.newsletters import render_newsletter_email

    newsletter = Newsletter.objects.get(pk=newsletter_id)
    message = render_newsletter_email(newsletter, Subscriber.objects.get(pk=subscriber_id))
    return message.send()

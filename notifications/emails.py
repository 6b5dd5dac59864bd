"""Emails as plain functions: render from templates, send over SMTP, say what went wrong.

Nothing here knows about Celery. The task wrapper in tasks.py decides what to do with a
TransientError (retry later) or a PermanentError (dead-letter).
"""

import smtplib

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.template.loader import render_to_string

from jobs.errors import PermanentError, TransientError
from shop.models import Order


def render_email(template, context, *, to, message_id):
    """An email with a plain-text and an HTML part, both from templates.

    The templates are ordinary Django templates, so whatever the customer typed (name,
    address) is HTML-escaped in the HTML part.
    """
    context = {**context, "site_url": settings.SITE_URL}
    subject = render_to_string(f"notifications/email/{template}_subject.txt", context)
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),  # a header must be one line
        body=render_to_string(f"notifications/email/{template}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers={"Message-ID": message_id},
    )
    message.attach_alternative(
        render_to_string(f"notifications/email/{template}.html", context), "text/html"
    )
    return message


def job_message_id(job_key):
    """The same Message-ID for every attempt of a job, so a mail system can spot a duplicate."""
    return f"<{job_key.replace(':', '.')}@shop-jobs.test>"


def render_order_email(template, order, message_id):
    """An email about `order` to its customer, from the templates named `template`."""
    return render_email(
        template,
        {"order": order, "lines": list(order.lines.all())},
        to=order.email,
        message_id=message_id,
    )


def send_order_confirmation(order_id, job_key):
    """Send the confirmation email of order `order_id`. Returns what was sent."""
    return send_order_email(order_id, job_key, "order_confirmation")


def send_shipping_notification(order_id, job_key):
    """Tell the customer their order `order_id` is on its way. Returns what was sent."""
    return send_order_email(order_id, job_key, "shipping_notification")


def send_order_email(order_id, job_key, template):
    try:
        order = Order.objects.get(pk=order_id)
    except Order.DoesNotExist:
        raise PermanentError(f"order {order_id} does not exist") from None
    message = render_order_email(template, order, job_message_id(job_key))
    deliver(message)
    return {
        "to": message.to,
        "subject": message.subject,
        "message_id": message.extra_headers["Message-ID"],
    }


def deliver(message):
    """Send `message` over SMTP, turning the many ways that can fail into our two kinds."""
    try:
        get_connection(fail_silently=False).send_messages([message])
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        if all(400 <= code < 500 for code in codes):
            raise TransientError(
                f"recipient refused for now: {_smtp_reason(exc.recipients)}"
            ) from exc
        raise PermanentError(f"recipient refused: {_smtp_reason(exc.recipients)}") from exc
    except smtplib.SMTPResponseException as exc:
        reason = f"SMTP {exc.smtp_code} {_text(exc.smtp_error)}"
        if 400 <= exc.smtp_code < 500:
            raise TransientError(reason) from exc
        raise PermanentError(reason) from exc
    except OSError as exc:
        # Refused or dropped connections, DNS failures, timeouts: smtplib's own errors and
        # socket.timeout are all OSErrors.
        raise TransientError(f"mail server unreachable: {exc}") from exc


def _text(value):
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _smtp_reason(recipients):
    return "; ".join(f"{addr}: {code} {_text(msg)}" for addr, (code, msg) in recipients.items())

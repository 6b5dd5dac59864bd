"""Emails as plain functions: render from templates, send over SMTP, say what went wrong.

Nothing here knows about Celery. The task wrapper in tasks.py decides what to do with a
TransientError (retry later) or a PermanentError (dead-letter).
"""

import smtplib
import threading
import time

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
        mail_connection().send_messages([message])
    except OSError as exc:
        # smtplib's own errors, refused or dropped connections, DNS failures and timeouts are
        # all OSErrors. Whatever state the connection is in now, the next email starts afresh.
        close_mail_connection()
        refusal = smtp_refusal(exc)
        if refusal is None:
            raise TransientError(f"mail server unreachable: {exc}") from exc
        error = TransientError if refusal == TEMPORARY else PermanentError
        raise error(describe_smtp_error(exc)) from exc


# One open connection to the mail server per thread, kept between emails. Opening one costs a
# TCP handshake, the greeting and EHLO, and with a real provider TLS and AUTH too: round trips
# that can take longer than the email itself. Each process of the email worker (each thread,
# where a process runs several) has its own, never shared.
_held = threading.local()
# A connection idle longer than this is asked NOOP before it is used: providers close idle
# connections, and a send on a closed one would fail an attempt for nothing.
IDLE_CHECK_SECONDS = 30


def mail_connection():
    """This thread's open connection to the mail server (EMAIL_BACKEND), opened if needed.

    Raises what opening raises (OSError): the mail server is unreachable.
    """
    # A test that points EMAIL_PORT elsewhere, or a backend that is not SMTP, gets its own.
    wanted = (settings.EMAIL_BACKEND, settings.EMAIL_HOST, settings.EMAIL_PORT)
    connection = getattr(_held, "connection", None)
    if connection is not None and (_held.wanted != wanted or not _still_open(connection)):
        close_mail_connection()
        connection = None
    if connection is None:
        connection = get_connection(fail_silently=False)
        connection.open()
        _held.connection, _held.wanted = connection, wanted
    _held.last_used = time.monotonic()
    return connection


def close_mail_connection():
    connection = getattr(_held, "connection", None)
    _held.connection = None
    if connection is not None:
        try:
            connection.close()  # QUIT, or just the socket if the server is gone
        except OSError:
            pass


def _still_open(connection):
    if time.monotonic() - _held.last_used < IDLE_CHECK_SECONDS:
        return True
    smtp = getattr(connection, "connection", None)  # smtplib.SMTP; None for other backends
    if smtp is None:
        return True
    try:
        return smtp.noop()[0] == 250
    except OSError:
        return False


# What the mail server's reply says of a message it did not take.
TEMPORARY = "temporary"  # 4xx: try again later
PERMANENT = "permanent"  # 5xx: it will never take it


def smtp_refusal(exc):
    """TEMPORARY or PERMANENT from the SMTP reply in `exc`; None when there was no reply (a
    broken connection, a timeout): then nothing is known of the message.

    Refused recipients are temporary only if every one of them is (450 and 550 together are
    permanent: the 550 will not change its mind).
    """
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return TEMPORARY if codes and all(400 <= c < 500 for c in codes) else PERMANENT
    if isinstance(exc, smtplib.SMTPResponseException):
        return TEMPORARY if 400 <= exc.smtp_code < 500 else PERMANENT
    return None


def describe_smtp_error(exc):
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "recipient refused: " + "; ".join(
            f"{address}: {code} {_text(message)}"
            for address, (code, message) in exc.recipients.items()
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"SMTP {exc.smtp_code} {_text(exc.smtp_error)}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _text(value):
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)

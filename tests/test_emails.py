"""The confirmation email as a plain function: rendering and what each SMTP failure means."""

import smtplib

import pytest

from jobs.errors import PermanentError, TransientError
from notifications import emails
from shop.models import Order, OrderLine


@pytest.fixture
def order(product):
    order = Order.objects.create(
        customer_name="<b>Eve</b> & Co",
        email="eve@example.com",
        shipping_address="1 <script>alert(1)</script> Street",
    )
    OrderLine.objects.create(
        order=order, product=product, product_name=product.name, unit_price="12.50", quantity=2
    )
    return order


@pytest.mark.django_db
def test_confirmation_has_text_and_html_parts_with_customer_input_escaped(order):
    message = emails.render_order_email("order_confirmation", order, "<id@shop-jobs.test>")
    html, mimetype = message.alternatives[0]

    assert mimetype == "text/html"
    assert message.to == ["eve@example.com"]
    assert message.subject == f"Your order #{order.pk} is confirmed"
    # Prices as the shop's pages show them (shop/templatetags/money.py).
    assert "2 x Blue Mug  $25.00" in message.body and "Total: $" in message.body
    assert "$25.00" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in html and "<b>Eve</b>" not in html
    assert order.token in html and order.token in message.body
    assert message.extra_headers["Message-ID"] == "<id@shop-jobs.test>"


def test_the_message_id_is_the_same_for_every_attempt_of_a_job():
    first = emails.job_message_id("order_confirmation:5")
    assert first == emails.job_message_id("order_confirmation:5")
    assert first != emails.job_message_id("order_confirmation:6")


@pytest.mark.django_db
def test_a_missing_order_is_a_permanent_failure():
    with pytest.raises(PermanentError, match="does not exist"):
        emails.send_order_confirmation(424242, "order_confirmation:424242")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ConnectionRefusedError(111, "Connection refused"), TransientError),
        (TimeoutError("timed out"), TransientError),
        (smtplib.SMTPServerDisconnected("gone"), TransientError),
        (smtplib.SMTPDataError(451, b"try again later"), TransientError),
        (smtplib.SMTPDataError(554, b"message refused"), PermanentError),
        (smtplib.SMTPRecipientsRefused({"a@x": (550, b"no such user")}), PermanentError),
        (smtplib.SMTPRecipientsRefused({"a@x": (450, b"mailbox busy")}), TransientError),
        # One recipient refused for good makes the whole message permanent.
        (
            smtplib.SMTPRecipientsRefused({"a@x": (450, b"busy"), "b@x": (550, b"no such user")}),
            PermanentError,
        ),
        (smtplib.SMTPSenderRefused(421, b"busy", "from@x"), TransientError),
    ],
)
def test_smtp_failures_are_sorted_into_transient_and_permanent(monkeypatch, error, expected):
    class FailingConnection:
        def open(self):
            pass

        def send_messages(self, messages):
            raise error

        def close(self):
            pass

    monkeypatch.setattr(emails, "get_connection", lambda **kwargs: FailingConnection())
    with pytest.raises(expected):
        emails.deliver(object())

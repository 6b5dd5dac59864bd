"""Newsletters end to end: real RabbitMQ, real workers, real SMTP server, counted in its Maildir."""

import os
import re
import signal
import time
from collections import Counter
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from demo.maildir import get_message
from demo.subscribers import seed_subscribers
from jobs.models import Job
from notifications.models import Delivery, Newsletter, Subscriber
from notifications.newsletters import progress_of
from notifications.tasks import send_order_confirmation
from testkit.processes import wait_for
from tests.flows import checkout

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

SUBSCRIBERS = 1000
# Small chunks, so that a thousand recipients make twenty jobs.
CHUNKS_OF_50 = {"NEWSLETTER_CHUNK_SIZE": "50"}


@pytest.fixture
def staff():
    user = get_user_model().objects.create_user("editor", password="x", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


def send_newsletter(staff, subject="Winter sale"):
    """Write a newsletter and press "send" on the staff pages; returns it."""
    response = staff.post(reverse("newsletters:list"), {"subject": subject, "body": "Mugs!"})
    assert response.status_code == 302, response.content[:500]
    newsletter = Newsletter.objects.get(subject=subject)
    assert staff.post(reverse("newsletters:send", args=[newsletter.pk])).status_code == 302
    return newsletter


def recipients_of(messages, subject):
    """How many copies of the email with `subject` each address received."""
    return Counter(m["to"] for m in messages if m["subject"] == subject)


def wait_until_sent(newsletter, timeout=120):
    return wait_for(
        lambda: Newsletter.objects.get(pk=newsletter.pk).state == Newsletter.State.SENT,
        timeout=timeout,
        interval=0.5,
        message="the newsletter to be sent",
    )


def test_a_newsletter_reaches_everyone_once_and_a_confirmation_overtakes_it(
    client, staff, broker, smtp_sink, start_worker, product
):
    seed_subscribers(SUBSCRIBERS)
    newsletter = send_newsletter(staff)
    # The rate limit (100 emails/s per worker) is on, as it would be in production.
    start_worker(NEWSLETTER_EMAILS_PER_SECOND="100", **CHUNKS_OF_50)
    wait_for(lambda: progress_of(newsletter.pk).sent >= 100, message="the sending to be under way")

    order = checkout(client, product, email="customer@example.com")
    confirmation = Job.objects.filter(key=send_order_confirmation.job_key(order.pk))
    wait_for(lambda: confirmation.get().state == Job.State.SUCCEEDED, message="the confirmation")
    outstanding = progress_of(newsletter.pk).remaining
    chunks = Job.objects.filter(kind="newsletter_chunk")
    overtaken = chunks.filter(state=Job.State.QUEUED).count()
    assert outstanding > 0, "the confirmation went out while the newsletter was being sent"
    # ... ahead of chunks published before it. First in, first out, the worker would have
    # taken every chunk before it, and at most one (held beside it, prefetch 1 x 2 processes)
    # could still be waiting.
    assert overtaken >= 2, f"{overtaken} chunk(s) left waiting: the confirmation did not overtake"

    wait_until_sent(newsletter)
    messages = smtp_sink.messages()
    received = recipients_of(messages, "Winter sale")
    assert len(received) == SUBSCRIBERS
    assert set(received.values()) == {1}, "exactly once each"
    assert set(received) == set(Subscriber.objects.values_list("email", flat=True))
    assert [m["to"] for m in messages if "#" in m["subject"]] == ["customer@example.com"]
    progress = progress_of(newsletter.pk)
    assert (progress.sent, progress.total) == (SUBSCRIBERS, SUBSCRIBERS)
    # Twenty chunk jobs, each done once.
    assert chunks.count() == 20
    assert set(chunks.values_list("state", flat=True)) == {Job.State.SUCCEEDED}


def test_a_worker_killed_mid_send_sends_nobody_the_newsletter_twice(
    staff, broker, smtp_sink, start_worker
):
    seed_subscribers(SUBSCRIBERS)
    # The mail server stores each email, then waits before saying so: a worker killed now has
    # handed over emails it will never hear about.
    smtp_sink.set(reply_delay=0.1)
    newsletter = send_newsletter(staff)
    worker = start_worker(NEWSLETTER_EMAILS_PER_SECOND="0", **CHUNKS_OF_50)
    sending = Delivery.objects.filter(newsletter=newsletter, state=Delivery.State.SENDING)
    wait_for(lambda: progress_of(newsletter.pk).sent >= 20, message="some emails to be sent")
    wait_for(lambda: sending.count() == 2, interval=0.01, message="both processes mid-send")
    time.sleep(0.03)  # inside the sink's reply delay: stored, not yet acknowledged

    os.killpg(worker.proc.pid, signal.SIGKILL)  # the worker and its pool, with no warning
    worker.proc.wait()
    killed_mid_send = sending.count()
    assert 1 <= killed_mid_send <= 2
    smtp_sink.set(reply_delay=0)
    start_worker(NEWSLETTER_EMAILS_PER_SECOND="0", **CHUNKS_OF_50)

    wait_until_sent(newsletter)
    received = recipients_of(smtp_sink.messages(), "Winter sale")
    assert max(received.values()) == 1, "nobody got it twice"
    progress = progress_of(newsletter.pk)
    assert progress.sent + progress.unknown == SUBSCRIBERS
    assert progress.unknown == killed_mid_send, "only what was being sent is in doubt"
    sent = Delivery.objects.filter(newsletter=newsletter, state=Delivery.State.SENT)
    assert set(sent.values_list("subscriber__email", flat=True)) <= set(received)
    # The ones in doubt have (almost always: the kill lands in the sink's reply delay) in fact
    # arrived: sending them again would have made the duplicates this test looks for.
    assert len(received) >= SUBSCRIBERS - killed_mid_send

    # What the progress bar shows adds up.
    numbers = staff.get(reverse("newsletters:progress", args=[newsletter.pk])).json()
    assert numbers["total"] == SUBSCRIBERS
    assert sum(numbers[k] for k in ("sent", "failed", "unknown", "skipped", "remaining")) == (
        SUBSCRIBERS
    )
    assert (numbers["unknown"], numbers["remaining"], numbers["active"]) == (
        killed_mid_send,
        0,
        False,
    )
    page = staff.get(newsletter.get_absolute_url()).content.decode()
    assert f"{killed_mid_send} recipient{'s' if killed_mid_send > 1 else ''} in doubt" in page


def link_in(smtp_sink, to, subject_part, path_part):
    """The path of the first link containing `path_part` in the email to `to`."""
    [mail] = [m for m in smtp_sink.messages() if m["to"] == to and subject_part in m["subject"]]
    text = get_message(smtp_sink.maildir, mail["key"])["text"]
    [url] = re.findall(rf"https?://\S*{re.escape(path_part)}\S*", text)
    return urlsplit(url).path


def test_double_opt_in_and_the_unsubscribe_link_of_a_real_newsletter(
    client, staff, broker, smtp_sink, start_worker
):
    start_worker()
    for email in ["Grace@Example.com", "never-confirms@example.com"]:
        response = client.post(reverse("subscriptions:subscribe"), {"email": email})
        assert response.status_code == 302

    wait_for(lambda: len(smtp_sink.messages()) == 2, message="two confirmation emails")
    confirm = link_in(smtp_sink, "grace@example.com", "Confirm", "/newsletter/confirm/")
    assert Subscriber.objects.get(email="grace@example.com").status == "pending"
    response = client.get(confirm)
    assert response.status_code == 200 and "You are subscribed" in response.content.decode()
    assert Subscriber.objects.get(email="grace@example.com").status == "confirmed"

    newsletter = send_newsletter(staff)
    wait_until_sent(newsletter, timeout=60)
    received = recipients_of(smtp_sink.messages(), "Winter sale")
    assert received == {"grace@example.com": 1}, "the unconfirmed address gets nothing"

    [mail] = [m for m in smtp_sink.messages() if m["subject"] == "Winter sale"]
    headers = dict(get_message(smtp_sink.maildir, mail["key"])["headers"])
    unsubscribe = link_in(smtp_sink, "grace@example.com", "Winter", "/newsletter/unsubscribe/")
    [header_url] = re.findall(r"<([^>]+)>", "".join(headers["List-Unsubscribe"].split()))
    assert urlsplit(header_url).path == unsubscribe
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    stranger = Client()  # not logged in, no cookies: whoever has the email
    last = unsubscribe[-2]  # the signature's last character, before the final slash
    forged = stranger.post(f"{unsubscribe[:-2]}{'B' if last == 'A' else 'A'}/")
    assert forged.status_code == 400 and "This link is not valid" in forged.content.decode()
    assert stranger.get(unsubscribe).status_code == 200
    assert Subscriber.objects.get(email="grace@example.com").status == "confirmed"
    response = stranger.post(unsubscribe)
    assert response.status_code == 200 and "You are unsubscribed" in response.content.decode()
    assert Subscriber.objects.get(email="grace@example.com").status == "unsubscribed"

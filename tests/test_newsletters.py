"""Newsletters without a broker: chunking, signed links, the in-doubt rule, pages and forms.

The fan-out on real workers, SMTP and RabbitMQ is in test_newsletters_flow.py.
"""

import io
import smtplib
import time
from collections import Counter
from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.contrib.auth import get_user_model
from django.core import mail, signing
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from demo.maildir import list_messages
from demo.subscribers import seed_subscribers
from jobs import outbox
from jobs.errors import TransientError
from jobs.models import Job
from notifications import emails, newsletters, services, tasks, tokens
from notifications.models import Delivery, Newsletter, Subscriber
from notifications.newsletters import Step, Verdict, failure_verdict, next_step
from notifications.tasks import send_newsletter_chunk

State = Delivery.State


# --- Chunking and the rate limit ------------------------------------------------------------


def test_recipients_are_cut_into_chunks_in_order():
    chunks = newsletters.chunks_of(range(1, 251), 100)
    assert [len(chunk) for chunk in chunks] == [100, 100, 50]
    assert [r for chunk in chunks for r in chunk] == list(range(1, 251))
    assert newsletters.chunks_of([], 100) == []
    assert newsletters.chunks_of([7], 100) == [[7]]
    with pytest.raises(ValueError):
        newsletters.chunks_of([1, 2], 0)


def test_the_newsletter_limit_is_one_slot_per_email_for_every_worker_together():
    assert newsletters.mail_slot_interval(50) == pytest.approx(0.02)
    assert newsletters.mail_slot_interval(0) is None
    # No per-worker Celery limit besides: it would let each worker go at the full rate.
    assert send_newsletter_chunk.rate_limit is None


# --- Signed links ---------------------------------------------------------------------------


def tampered(token):
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def test_signed_links_round_trip_and_refuse_tampering():
    assert tokens.read_confirmation_token(tokens.confirmation_token(42)) == 42
    assert tokens.read_unsubscribe_token(tokens.unsubscribe_token(42)) == 42
    for bad in [
        tampered(tokens.unsubscribe_token(42)),
        tokens.unsubscribe_token(42).replace("42", "43", 1),  # another subscriber's id
        "42",
        "",
        "garbage:garbage",
        signing.Signer().sign("42"),  # signed with our key, but not for this purpose
    ]:
        with pytest.raises(tokens.BadLink):
            tokens.read_unsubscribe_token(bad)
    with pytest.raises(tokens.BadLink):
        tokens.read_confirmation_token(tampered(tokens.confirmation_token(42)))


def test_a_link_of_one_kind_does_not_work_as_the_other():
    with pytest.raises(tokens.BadLink):
        tokens.read_confirmation_token(tokens.unsubscribe_token(42))
    with pytest.raises(tokens.BadLink):
        tokens.read_unsubscribe_token(tokens.confirmation_token(42))


def test_a_confirmation_link_expires_and_an_unsubscribe_link_does_not(monkeypatch, settings):
    settings.NEWSLETTER_CONFIRM_MAX_AGE_SECONDS = 3600
    a_year_ago = time.time() - 365 * 86400
    with monkeypatch.context() as m:
        m.setattr(signing.time, "time", lambda: a_year_ago)
        old_confirmation = tokens.confirmation_token(42)
        old_unsubscribe = tokens.unsubscribe_token(42)
        recent_confirmation = tokens.confirmation_token(43)
    with pytest.raises(tokens.ExpiredLink):
        tokens.read_confirmation_token(old_confirmation)
    assert tokens.read_unsubscribe_token(old_unsubscribe) == 42
    assert tokens.read_confirmation_token(recent_confirmation, max_age=400 * 86400) == 43


# --- The in-doubt rule ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "subscribed", "step"),
    [
        (State.QUEUED, True, Step.SEND),
        (State.QUEUED, False, Step.SKIP),
        # Found mid-send by the attempt holding the chunk's lease: the one sending it is dead.
        (State.SENDING, True, Step.GIVE_UP_IN_DOUBT),
        (State.SENDING, False, Step.GIVE_UP_IN_DOUBT),
        (State.SENT, True, Step.NOTHING),
        (State.FAILED, True, Step.NOTHING),
        (State.UNKNOWN, True, Step.NOTHING),
        (State.SKIPPED, True, Step.NOTHING),
    ],
)
def test_what_an_attempt_does_with_each_delivery(state, subscribed, step):
    assert next_step(state, subscribed) is step


@pytest.mark.parametrize(
    ("exc", "verdict"),
    [
        (smtplib.SMTPRecipientsRefused({"a@x.test": (450, b"mailbox busy")}), Verdict.RETRY),
        (smtplib.SMTPRecipientsRefused({"a@x.test": (550, b"no such user")}), Verdict.FAILED),
        (smtplib.SMTPDataError(451, b"try again later"), Verdict.RETRY),
        (smtplib.SMTPDataError(554, b"rejected"), Verdict.FAILED),
        (smtplib.SMTPSenderRefused(421, b"closing", "from@x.test"), Verdict.RETRY),
        # No answer: the server may have kept it.
        (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), Verdict.IN_DOUBT),
        (TimeoutError("timed out"), Verdict.IN_DOUBT),
        (ConnectionResetError(104, "reset by peer"), Verdict.IN_DOUBT),
        (SoftTimeLimitExceeded(), Verdict.IN_DOUBT),
    ],
)
def test_only_an_smtp_answer_proves_an_email_was_not_kept(exc, verdict):
    assert failure_verdict(exc) is verdict


# --- Planning and sending a chunk, with Django's in-memory mail backend ----------------------


@pytest.fixture
def locmem_mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    return mail.outbox


def queued_newsletter(subject="Winter sale"):
    newsletter = Newsletter.objects.create(
        subject=subject, body="Everything must go: http://x.test"
    )
    Newsletter.objects.filter(pk=newsletter.pk).update(state=Newsletter.State.QUEUED)
    return newsletter


def rows(newsletter, chunk=None):
    found = Delivery.objects.filter(newsletter=newsletter).select_related("subscriber")
    return found if chunk is None else found.filter(chunk=chunk)


@pytest.mark.django_db
def test_the_plan_writes_one_row_per_confirmed_subscriber_once():
    seed_subscribers(5)
    Subscriber.objects.create(email="pending@example.com")  # never confirmed
    Subscriber.objects.create(email="gone@example.com", status=Subscriber.Status.UNSUBSCRIBED)
    newsletter = queued_newsletter()

    outcome = newsletters.plan_newsletter(newsletter.pk, chunk_size=2)
    again = newsletters.plan_newsletter(newsletter.pk, chunk_size=2)

    assert outcome == again == {"newsletter": newsletter.pk, "recipients": 5, "chunks": 3}
    assert sorted(Counter(rows(newsletter).values_list("chunk", flat=True)).items()) == [
        (0, 2),
        (1, 2),
        (2, 1),
    ]
    assert {d.subscriber.status for d in rows(newsletter)} == {Subscriber.Status.CONFIRMED}
    jobs = newsletters.chunk_jobs(newsletter.pk)
    assert sorted(job.args for job in jobs) == [[newsletter.pk, n] for n in range(3)]
    assert {job.state for job in jobs} == {Job.State.PENDING}, "in the outbox until published"
    newsletter.refresh_from_db()
    assert newsletter.state == Newsletter.State.SENDING


@pytest.mark.django_db
def test_send_asks_for_one_job_however_often_it_is_pressed():
    newsletter = Newsletter.objects.create(subject="Hi", body="Hello")
    assert services.send_newsletter(newsletter, requested_by=None) is True
    assert services.send_newsletter(newsletter, requested_by=None) is False
    assert Job.objects.filter(kind="newsletter").count() == 1


@pytest.mark.django_db
def test_a_chunk_sends_each_recipient_once_and_leaves_the_in_doubt_alone(locmem_mail):
    seed_subscribers(4)
    newsletter = queued_newsletter()
    newsletters.plan_newsletter(newsletter.pk, chunk_size=4)
    first, second, third, fourth = rows(newsletter).order_by("pk")
    # An attempt that died: it had sent `first`, was sending `second`; `fourth` unsubscribed.
    Delivery.objects.filter(pk=first.pk).update(state=State.SENT)
    Delivery.objects.filter(pk=second.pk).update(state=State.SENDING)
    Subscriber.objects.filter(pk=fourth.subscriber_id).update(status=Subscriber.Status.UNSUBSCRIBED)

    outcome = newsletters.send_chunk(newsletter.pk, 0)
    again = newsletters.send_chunk(newsletter.pk, 0)

    assert [m.to for m in locmem_mail] == [[third.subscriber.email]]
    assert outcome == {
        "newsletter": newsletter.pk,
        "chunk": 0,
        "in_doubt": 1,
        "skipped": 1,
        "sent": 1,
    }
    assert again == {"newsletter": newsletter.pk, "chunk": 0}
    states = dict(rows(newsletter).values_list("pk", "state"))
    assert states == {
        first.pk: State.SENT,
        second.pk: State.UNKNOWN,
        third.pk: State.SENT,
        fourth.pk: State.SKIPPED,
    }
    progress = newsletters.progress_of(newsletter.pk)
    assert (progress.sent, progress.unknown, progress.skipped, progress.remaining) == (2, 1, 1, 0)
    assert progress.total == 4 and progress.percent == 100
    newsletter.refresh_from_db()
    assert newsletter.state == Newsletter.State.SENT


class ScriptedConnection:
    """An SMTP connection whose answer for each recipient is scripted (an exception or None)."""

    def __init__(self, answers):
        self.answers = answers
        self.sent = []

    def open(self):
        pass

    def close(self):
        pass

    def send_messages(self, messages):
        [message] = messages
        answer = self.answers.get(message.to[0])
        if answer is not None:
            raise answer
        self.sent.append(message.to[0])
        return 1


@pytest.mark.django_db
def test_what_the_mail_server_answers_decides_each_recipients_fate(monkeypatch):
    seed_subscribers(4)
    newsletter = queued_newsletter()
    newsletters.plan_newsletter(newsletter.pk, chunk_size=4)
    busy, gone, fine, lost = (d.subscriber.email for d in rows(newsletter).order_by("pk"))
    connection = ScriptedConnection(
        {
            busy: smtplib.SMTPRecipientsRefused({busy: (450, b"mailbox busy")}),
            gone: smtplib.SMTPRecipientsRefused({gone: (550, b"no such user")}),
        }
    )
    monkeypatch.setattr(emails, "get_connection", lambda **kwargs: connection)

    # "Not now" for the first: back in the queue, and the chunk is retried later.
    with pytest.raises(TransientError, match="450"):
        newsletters.send_chunk(newsletter.pk, 0)
    assert rows(newsletter).get(subscriber__email=busy).state == State.QUEUED
    assert connection.sent == []

    # Next attempt: the refused-for-now recipient waits behind the others; "never" fails one
    # recipient and the chunk goes on; a connection lost mid-send leaves that one in doubt.
    connection.answers[lost] = smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
    with pytest.raises(TransientError, match="connection lost"):
        newsletters.send_chunk(newsletter.pk, 0)
    assert connection.sent == [fine]

    del connection.answers[busy]
    del connection.answers[lost]  # the server is back: `lost` is not sent again all the same
    newsletters.send_chunk(newsletter.pk, 0)
    assert connection.sent == [fine, busy]
    states = {d.subscriber.email: (d.state, d.attempts) for d in rows(newsletter)}
    assert states == {
        busy: (State.SENT, 2),
        gone: (State.FAILED, 1),
        fine: (State.SENT, 1),
        lost: (State.UNKNOWN, 1),
    }
    assert "550" in rows(newsletter).get(subscriber__email=gone).error


@pytest.mark.django_db
def test_staff_can_send_again_on_purpose_to_those_in_doubt(
    locmem_mail, django_capture_on_commit_callbacks, settings
):
    settings.NEWSLETTER_CHUNK_SIZE = 2
    seed_subscribers(3)
    newsletter = queued_newsletter()
    newsletters.plan_newsletter(newsletter.pk)
    Delivery.objects.filter(newsletter=newsletter).update(state=State.UNKNOWN)

    with django_capture_on_commit_callbacks() as callbacks:
        assert services.resend_in_doubt(newsletter) == 3
    assert len(callbacks) == 1  # the new chunks are published after the commit
    assert services.resend_in_doubt(newsletter) == 0
    assert sorted(set(rows(newsletter).values_list("chunk", flat=True))) == [2, 3]
    for chunk in (2, 3):
        newsletters.send_chunk(newsletter.pk, chunk)
    assert len(locmem_mail) == 3
    assert newsletters.progress_of(newsletter.pk).sent == 3


@pytest.mark.django_db
def test_a_newsletter_email_has_its_unsubscribe_link_and_a_stable_message_id():
    [subscriber] = [Subscriber.objects.create(email="ada@example.com")]
    newsletter = Newsletter.objects.create(
        subject="Mugs & cups\r\nBcc: evil@x.test", body="<b>Hi</b>"
    )

    message = newsletters.render_newsletter_email(newsletter, subscriber)
    again = newsletters.render_newsletter_email(newsletter, subscriber)

    link = newsletters.site_link(
        "subscriptions:unsubscribe", tokens.unsubscribe_token(subscriber.pk)
    )
    assert message.extra_headers["List-Unsubscribe"] == f"<{link}>"
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert link in message.body
    assert link in message.alternatives[0][0]
    assert "&lt;b&gt;Hi&lt;/b&gt;" in message.alternatives[0][0], "staff text is escaped"
    assert message.subject == "Mugs & cups Bcc: evil@x.test", "one line, not HTML"
    assert message.extra_headers["Message-ID"] == again.extra_headers["Message-ID"]
    assert (
        message.extra_headers["Message-ID"]
        == f"<newsletter.{newsletter.pk}.{subscriber.pk}@shop-jobs.test>"
    )
    message.message()  # builds without complaint


# --- Pages and forms ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("email", "error"),
    [
        ("", "Enter your email address."),
        ("   ", "Enter your email address."),
        ("not an email", "Enter a valid email address"),
        ("ada@", "Enter a valid email address"),
        ("a\x00da@example.com", "Null characters are not allowed"),
        ("a" * 250 + "@example.com", "at most 254 characters"),
    ],
)
def test_garbage_gets_a_clear_form_error_and_subscribes_nobody(client, email, error):
    response = client.post(reverse("subscriptions:subscribe"), {"email": email})
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Subscriber.objects.exists()
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_subscribing_asks_for_one_confirmation_and_says_the_same_to_everyone(client, settings):
    settings.NEWSLETTER_CONFIRM_RESEND_SECONDS = 300
    Subscriber.objects.create(email="old@example.com", status=Subscriber.Status.CONFIRMED)
    for email in ["Ada@Example.com", "ada@example.com", "old@example.com"]:
        response = client.post(reverse("subscriptions:subscribe"), {"email": email})
        assert response.status_code == 302
        assert response["Location"] == reverse("subscriptions:check_inbox")

    ada = Subscriber.objects.get(email="ada@example.com")
    assert ada.status == Subscriber.Status.PENDING
    # Once, not twice in a row (the form is no way to flood a mailbox), and nothing for the
    # confirmed subscriber.
    assert list(Job.objects.values_list("key", flat=True)) == [
        f"newsletter_confirmation:{ada.pk}:1"
    ]
    assert Job.objects.get().task_name == "notifications.send_newsletter_confirmation"


@pytest.mark.django_db
def test_confirmation_links_confirm_and_bad_ones_get_a_clear_400(client, monkeypatch, settings):
    ada = Subscriber.objects.create(email="ada@example.com")
    link = reverse("subscriptions:confirm", args=[tokens.confirmation_token(ada.pk)])

    bad = client.get(
        reverse("subscriptions:confirm", args=[tampered(tokens.confirmation_token(ada.pk))])
    )
    assert bad.status_code == 400 and "This link is not valid" in bad.content.decode()
    missing = client.get(reverse("subscriptions:confirm", args=[tokens.confirmation_token(999)]))
    assert missing.status_code == 400
    ada.refresh_from_db()
    assert ada.status == Subscriber.Status.PENDING

    response = client.get(link)
    assert response.status_code == 200 and "You are subscribed" in response.content.decode()
    ada.refresh_from_db()
    assert ada.status == Subscriber.Status.CONFIRMED and ada.confirmed_at
    assert "subscribed already" in client.get(link).content.decode()

    settings.NEWSLETTER_CONFIRM_MAX_AGE_SECONDS = 60
    an_hour_ago = time.time() - 3600
    with monkeypatch.context() as m:
        m.setattr(signing.time, "time", lambda: an_hour_ago)
        old = reverse("subscriptions:confirm", args=[tokens.confirmation_token(ada.pk)])
    expired = client.get(old)
    assert expired.status_code == 400 and "This link has expired" in expired.content.decode()


@pytest.mark.django_db
def test_unsubscribe_works_without_login_in_one_click_and_never_on_a_get():
    ada = Subscriber.objects.create(email="ada@example.com", status=Subscriber.Status.CONFIRMED)
    link = reverse("subscriptions:unsubscribe", args=[tokens.unsubscribe_token(ada.pk)])
    # A mail client's one-click unsubscribe (RFC 8058): a bare POST, no cookie, no CSRF token.
    browser = Client(enforce_csrf_checks=True)

    page = browser.get(link)
    assert page.status_code == 200 and "ada@example.com" in page.content.decode()
    ada.refresh_from_db()
    assert ada.status == Subscriber.Status.CONFIRMED, "a GET (a link scanner) changes nothing"

    bad = browser.post(link[:-2] + "x/", {"List-Unsubscribe": "One-Click"})
    assert bad.status_code == 400 and "This link is not valid" in bad.content.decode()
    ada.refresh_from_db()
    assert ada.status == Subscriber.Status.CONFIRMED

    response = browser.post(link, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and "You are unsubscribed" in response.content.decode()
    ada.refresh_from_db()
    assert ada.status == Subscriber.Status.UNSUBSCRIBED and ada.unsubscribed_at
    assert browser.post(link).status_code == 200  # twice is fine

    # An old confirmation link does not undo it.
    confirm = reverse("subscriptions:confirm", args=[tokens.confirmation_token(ada.pk)])
    assert "You unsubscribed since" in browser.get(confirm).content.decode()
    ada.refresh_from_db()
    assert ada.status == Subscriber.Status.UNSUBSCRIBED


@pytest.fixture
def staff_client(db):
    user = get_user_model().objects.create_user("editor", password="x", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_staff_pages_are_for_staff_only(client):
    newsletter = Newsletter.objects.create(subject="Hi", body="Hello")
    for url in [
        reverse("newsletters:list"),
        reverse("newsletters:detail", args=[newsletter.pk]),
        reverse("newsletters:progress", args=[newsletter.pk]),
    ]:
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    response = client.post(reverse("newsletters:send", args=[newsletter.pk]))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert Newsletter.objects.get().state == Newsletter.State.DRAFT


@pytest.mark.django_db
def test_staff_write_a_newsletter_send_it_and_watch_the_numbers(staff_client):
    seed_subscribers(3)
    response = staff_client.post(reverse("newsletters:list"), {"subject": "", "body": ""})
    assert "Give the newsletter a subject." in response.content.decode()

    response = staff_client.post(
        reverse("newsletters:list"), {"subject": "Spring", "body": "New mugs."}
    )
    newsletter = Newsletter.objects.get()
    assert response["Location"] == newsletter.get_absolute_url()
    assert (
        "Send to 3 confirmed subscribers" in staff_client.get(response["Location"]).content.decode()
    )

    staff_client.post(reverse("newsletters:send", args=[newsletter.pk]))
    newsletters.plan_newsletter(newsletter.pk)  # what the planner job does
    Delivery.objects.filter(pk=Delivery.objects.first().pk).update(state=State.SENT)

    progress = staff_client.get(reverse("newsletters:progress", args=[newsletter.pk])).json()
    assert progress == {
        "state": "sending",
        "active": True,
        "total": 3,
        "sent": 1,
        "failed": 0,
        "unknown": 0,
        "skipped": 0,
        "cancelled": 0,
        "remaining": 2,
        "percent": 33,
    }
    page = staff_client.get(newsletter.get_absolute_url()).content.decode()
    assert 'class="report-progress" max="100" value="33"' in page
    assert reverse("newsletters:progress", args=[newsletter.pk]) in page


@pytest.mark.django_db
def test_admin_lists_subscribers_newsletters_and_deliveries(admin_client):
    seed_subscribers(2)
    newsletter = queued_newsletter()
    newsletters.plan_newsletter(newsletter.pk)
    for model in ["subscriber", "newsletter", "delivery"]:
        response = admin_client.get(reverse(f"admin:notifications_{model}_changelist"))
        assert response.status_code == 200, model
    assert (
        "reader000001@example.com"
        in admin_client.get(reverse("admin:notifications_delivery_changelist")).content.decode()
    )
    # Someone who asked by phone to be taken off the list.
    reader = Subscriber.objects.get(email="reader000002@example.com")
    admin_client.post(
        reverse("admin:notifications_subscriber_changelist"),
        {"action": "unsubscribe", "_selected_action": [reader.pk]},
    )
    reader.refresh_from_db()
    assert reader.status == Subscriber.Status.UNSUBSCRIBED and reader.unsubscribed_at


@pytest.mark.django_db
def test_seed_demo_makes_confirmed_subscribers_once(settings):
    settings.DEBUG = True
    out = io.StringIO()
    call_command("seed_demo", "--products", "0", "--subscribers", "300", stdout=out)
    assert "300 demo newsletter subscribers ready (300 new)" in out.getvalue()
    Subscriber.objects.filter(email="reader000002@example.com").update(
        status=Subscriber.Status.UNSUBSCRIBED
    )

    call_command("seed_demo", "--products", "0", "--subscribers", "300", stdout=out)

    assert "(0 new)" in out.getvalue()
    assert Subscriber.objects.count() == 300
    assert Subscriber.objects.filter(status=Subscriber.Status.CONFIRMED).count() == 299


# --- Restart safety of the fan-out ----------------------------------------------------------


@pytest.mark.django_db
def test_chunks_the_broker_did_not_take_wait_in_the_outbox_for_the_sweeper(monkeypatch):
    seed_subscribers(3)
    newsletter = queued_newsletter()
    newsletters.plan_newsletter(newsletter.pk, chunk_size=2)

    def broker_down(*args, **kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr(outbox.current_app, "connection_for_write", broker_down)
    assert tasks.publish_chunks(newsletter.pk) == 0
    jobs = newsletters.chunk_jobs(newsletter.pk)
    assert {(job.state, job.publish_error) for job in jobs} == {
        (Job.State.PENDING, "OSError: connection refused")
    }

    # Later, the broker back, the outbox sweeper (celery beat) publishes them like any other
    # job: same task, same id.
    monkeypatch.setattr(outbox, "_broker_failed_until", 0.0)
    published = []
    monkeypatch.setattr(
        send_newsletter_chunk, "apply_async", lambda **kwargs: published.append(kwargs)
    )
    assert outbox.republish_pending_jobs(older_than=timedelta(0)) == 2
    assert sorted((p["args"], p["task_id"]) for p in published) == sorted(
        (job.args, job.task_id) for job in jobs
    )
    assert {job.state for job in newsletters.chunk_jobs(newsletter.pk)} == {Job.State.QUEUED}


# --- The mailbox page with a newsletter's worth of mail -------------------------------------


def test_the_mailbox_lists_the_newest_messages_without_reading_them_all(tmp_path):
    (tmp_path / "tmp").mkdir()
    (tmp_path / "cur").mkdir()
    (tmp_path / "new").mkdir()
    for seconds, micro in [
        (1700000000, 5),
        (1700000001, 99),
        (1700000001, 123456),
        (1690000000, 0),
    ]:
        name = f"{seconds}.M{micro}P42Q1.sink"
        (tmp_path / "new" / name).write_bytes(f"Subject: {seconds}.{micro}\n\nhi\n".encode())

    newest = list_messages(tmp_path, limit=2)

    assert sorted(m["subject"] for m in newest) == ["1700000001.123456", "1700000001.99"]
    assert len(list_messages(tmp_path)) == 4

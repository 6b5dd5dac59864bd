"""The staff jobs page: filters that refuse garbage, pages that never count a million rows,
a bulk preview with its numbers, dead letters grouped by cause, and "retry now" and bulk replay
on a real worker, each job sending its email once."""

import logging
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError, transaction
from django.urls import reverse
from django.utils import timezone

from jobs import bulk, deadletters, selectors
from jobs.deadletters import Cause, classify
from jobs.logs import JobLogHandler, TaskContextFilter, current_job
from jobs.models import Job, JobEvent, JobLogLine
from notifications.tasks import send_order_confirmation
from testkit.processes import wait_for
from tests.flows import confirmation_job, place_order, wait_for_job_state

JOBS = "/staff/jobs/"
CONFIRMATION = "notifications.send_order_confirmation"
CHUNK = "notifications.send_newsletter_chunk"
RENDITIONS = "media_jobs.make_renditions"


def make_job(key, *, kind="order_confirmation", task_name=CONFIRMATION, **fields):
    fields.setdefault("subject", f"order:{key.rpartition(':')[2]}")
    return Job.objects.create(
        key=key, kind=kind, task_name=task_name, task_id=str(uuid.uuid4()), **fields
    )


@pytest.fixture
def staff_client(client, db):
    user = get_user_model().objects.create_superuser("clerk", "clerk@example.com", "pw")
    client.force_login(user)
    return client


def keys_on(response):
    return [job.key for job in response.context["page"].jobs]


# --- Filters -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_filters_find_jobs_by_kind_state_queue_subject_time_and_error(staff_client):
    now = timezone.now()
    make_job("order_confirmation:1", state=Job.State.FAILED, last_error="550 mailbox unavailable")
    make_job("order_confirmation:2", state=Job.State.SUCCEEDED, created_at=now - timedelta(days=3))
    make_job(
        "renditions:7", kind="renditions", task_name=RENDITIONS, subject="productimage:7",
        state=Job.State.RETRYING, last_error="disk full",
    )  # fmt: skip

    def shown(**query):
        response = staff_client.get(JOBS, query)
        assert response.status_code == 200, response.context["form"].errors
        return sorted(keys_on(response))

    assert shown() == ["order_confirmation:1", "order_confirmation:2", "renditions:7"]
    assert shown(kind="renditions") == ["renditions:7"]
    assert shown(state="failed") == ["order_confirmation:1"]
    assert shown(queue="media") == ["renditions:7"]
    assert shown(queue="emails") == ["order_confirmation:1", "order_confirmation:2"]
    assert shown(subject="order:2") == ["order_confirmation:2"]
    day_ago = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert shown(created_to=day_ago) == ["order_confirmation:2"]
    assert "order_confirmation:2" not in shown(created_from=day_ago)
    assert shown(error="MAILBOX") == ["order_confirmation:1"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query, field, words",
    [
        ({"state": "exploded"}, "state", "Select a valid choice"),
        ({"kind": "<script>alert(1)</script>"}, "kind", "Select a valid choice"),
        ({"queue": "emails.dead"}, "queue", "Select a valid choice"),
        ({"subject": "42"}, "subject", "like order:42"),
        ({"subject": "order:4' OR 1=1 --"}, "subject", "like order:42"),
        ({"created_from": "2026-13-45"}, "created_from", "Enter a valid date/time"),
        ({"created_from": "0001-01-01T00:00"}, "created_from", "between 1970 and 2999"),
        ({"created_from": "2026-03-02T10:00", "created_to": "2026-03-01T10:00"}, "created_to",
         "before"),
        ({"error": "x" * 300}, "error", "at most 200 characters"),
        ({"error": "nul\x00byte"}, "error", "Null characters are not allowed"),
        ({"before": "yesterday"}, "before", "damaged"),
        ({"before": "999999999999999999-1"}, "before", "damaged"),
    ],
)  # fmt: skip
def test_the_filter_refuses_garbage_with_a_clear_error_never_a_500(
    staff_client, query, field, words
):
    response = staff_client.get(JOBS, query)
    assert response.status_code == 400
    assert words in " ".join(response.context["form"].errors[field])


def test_the_jobs_pages_are_for_staff_only(client, db):
    for url in (JOBS, reverse("jobs:job_detail", args=[1])):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


# --- Pagination --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_pages_go_newest_first_by_keyset_and_the_count_stops_at_its_cap(staff_client, monkeypatch):
    now = timezone.now()
    Job.objects.bulk_create(
        Job(
            key=f"order_confirmation:{n}", kind="order_confirmation", subject=f"order:{n}",
            task_name=CONFIRMATION, task_id=str(uuid.uuid4()),
            # Pairs created in the same microsecond: the pk breaks the tie.
            created_at=now - timedelta(seconds=n // 2),
        )
        for n in range(120)
    )  # fmt: skip
    monkeypatch.setattr(selectors, "PAGE_SIZE", 50)
    monkeypatch.setattr(selectors, "COUNT_CAP", 100)
    seen, cursor, pages = [], None, 0
    while True:
        response = staff_client.get(JOBS, {"before": cursor} if cursor else {})
        seen += keys_on(response)
        pages += 1
        cursor = response.context["page"].next_cursor
        if cursor is None:
            break
    assert pages == 3
    expected = Job.objects.order_by("-created_at", "-pk").values_list("key", flat=True)
    assert seen == list(expected), "every job once, newest first"
    assert "100+ jobs" in response.content.decode()
    assert selectors.count_capped(Job.objects.all(), cap=200) == (120, False)


# --- The bulk preview --------------------------------------------------------------------------


def test_the_estimate_counts_emails_at_the_providers_limit_and_names_kinds_without_one():
    limits = {
        "newsletter_chunk": {
            "limit": "the mail provider's limit", "per_second": 50, "per_job": 25, "unit": "email",
        }
    }  # fmt: skip
    estimates = bulk.estimate({"newsletter_chunk": 1800, "order_confirmation": 4}, limits)
    chunk, confirmation = estimates
    assert (chunk.jobs, chunk.units, chunk.seconds) == (1800, 45_000, 900)
    assert confirmation.limit is None and confirmation.seconds is None
    preview = bulk.Preview("replay", 1804, False, 99, 0, estimates)
    assert preview.summary() == (
        "1,804 jobs, up to about 15 minutes at the mail provider's limit, "
        "4 of them held to no provider limit"
    )
    assert bulk.duration_in_words(1080) == "about 18 minutes"
    assert bulk.duration_in_words(0.2) == "about 1 second"
    assert bulk.duration_in_words(7500) == "about 2 hours 5 minutes"


@pytest.mark.django_db
def test_the_preview_counts_the_failed_jobs_the_filter_shows_and_sends_nothing(
    staff_client, settings
):
    settings.JOBS_RATE_LIMITED_KINDS = {
        "newsletter_chunk": {
            "limit": "the mail provider's limit", "per_second": 50, "per_job": 25, "unit": "email",
        }
    }  # fmt: skip
    for chunk in range(30):
        make_job(
            f"newsletter_chunk:1:{chunk}", kind="newsletter_chunk", task_name=CHUNK,
            subject="newsletter:1", state=Job.State.FAILED,
        )  # fmt: skip
    for n in range(4):
        make_job(f"order_confirmation:{n}", state=Job.State.FAILED)
    make_job("order_confirmation:9", state=Job.State.SUCCEEDED)

    response = staff_client.get(JOBS, {"preview": "replay"})
    preview = response.context["preview"]
    assert (preview.jobs, preview.not_failed, preview.more) == (34, 1, False)
    # 30 chunks of up to 25 emails at 50 a second: 750 emails, 15 s.
    assert preview.limits == [("the mail provider's limit", 750, "email", 15.0)]
    page = response.content.decode()
    assert "34 jobs, up to about 15 seconds at the mail provider&#x27;s limit" in page
    assert "4 of them held to no provider limit" in page
    assert "Replay 34 jobs" in page
    assert not Job.objects.filter(state=Job.State.PENDING).exists(), "a preview sends nothing"
    discard = staff_client.get(JOBS, {"preview": "discard", "kind": "order_confirmation"})
    assert discard.context["preview"].summary().startswith("4 jobs: their dead letters dropped")


# --- Dead letters by cause ---------------------------------------------------------------------


def death(reason, queue="emails", count=1):
    """An x-death entry as RabbitMQ writes it (kombu decodes the table to a dict)."""
    return {
        "count": count, "reason": reason, "queue": queue, "time": timezone.now(),
        "exchange": "jobs", "routing-keys": [queue],
    }  # fmt: skip


CELERY_HEADERS = {
    "lang": "py", "task": CONFIRMATION, "id": "6f1c", "retries": 0, "argsrepr": "(42,)",
}  # fmt: skip


@pytest.mark.parametrize(
    "headers, reason, expected",
    [
        # A worker rejected it: the runner's words say why.
        ({**CELERY_HEADERS, "x-death": [death("rejected")]},
         "550 5.1.1 mailbox unavailable", Cause("exception", "PermanentError")),
        ({**CELERY_HEADERS, "x-death": [death("rejected")]},
         "unexpected error: KeyError('total')", Cause("exception", "KeyError")),
        ({**CELERY_HEADERS, "x-death": [death("rejected")]},
         "smtplib.SMTPServerDisconnected: Connection unexpectedly closed",
         Cause("exception", "SMTPServerDisconnected")),
        ({**CELERY_HEADERS, "x-death": [death("rejected")]},
         "gave up after 9 attempts: mail server unreachable", Cause("retries_used_up")),
        ({**CELERY_HEADERS, "x-death": [death("rejected")]},
         "its worker process died 3 time(s): Worker exited prematurely: signal 9 (SIGKILL).",
         Cause("worker_lost")),
        ({**CELERY_HEADERS, "x-death": [death("rejected")]},
         "killed at its hard time limit (TimeLimitExceeded(30,) s) on attempt 1",
         Cause("time_limit")),
        ({**CELERY_HEADERS, "x-death": [death("rejected")]}, "rejected by the worker",
         Cause("unknown")),
        # The broker's own reasons win over the words: a quorum queue's delivery limit.
        ({**CELERY_HEADERS, "x-delivery-count": 10, "x-death": [death("delivery_limit")],
          "x-first-death-reason": "delivery_limit", "x-last-death-reason": "delivery_limit"},
         "its worker process died 1 time(s)", Cause("delivery_limit")),
        ({**CELERY_HEADERS, "x-delivery-count": 10}, "rejected by the worker",
         Cause("delivery_limit")),
        ({**CELERY_HEADERS, "x-last-death-reason": b"expired"}, "", Cause("expired")),
        ({**CELERY_HEADERS, "x-death": [death("maxlen")]}, "", Cause("queue_full")),
        # Newest death first: replayed after a delivery limit, then rejected by a worker.
        ({**CELERY_HEADERS, "x-death": [death("rejected"), death("delivery_limit")]},
         "unexpected error: ValueError('x')", Cause("exception", "ValueError")),
    ],
)  # fmt: skip
def test_each_dead_letter_is_classified_by_its_cause(headers, reason, expected):
    assert classify(headers, reason) == expected


def test_a_message_no_worker_can_read_is_its_own_cause():
    # What jobs/worker.py parks: no Celery headers at all, a body that is not JSON.
    headers = {"x-death": [death("rejected")]}
    cause = classify(headers, "the body is not valid JSON: Expecting value", unreadable=True)
    assert cause == Cause("undecodable")
    assert cause.label == "a message no worker can read or run"
    assert Cause("exception", "KeyError").label == "an exception: KeyError"


# --- A job's log lines -------------------------------------------------------------------------


def log_record(message, level=logging.INFO):
    record = logging.LogRecord("shop.test", level, __file__, 1, message, (), None)
    TaskContextFilter().filter(record)
    return record


@pytest.mark.django_db(transaction=True)
def test_a_job_keeps_its_own_log_lines_bounded_and_a_broken_table_never_fails_it(monkeypatch):
    handler = JobLogHandler()
    handler.emit(log_record("outside any job"))
    token = current_job.set({"key": "order_confirmation:5", "attempt": 1})
    try:
        for n in range(JobLogHandler.MAX_LINES_PER_ATTEMPT + 5):
            handler.emit(log_record(f"line {n}"))
        handler.emit(log_record("the error that ends it", logging.ERROR))

        def unreachable(*args, **kwargs):
            raise OperationalError("no such table: jobs_joblogline")

        monkeypatch.setattr(JobLogLine.objects, "create", unreachable)
        with transaction.atomic():
            handler.emit(log_record("while the table is gone", logging.ERROR))
            # The task's own transaction is still usable: the insert failed in a savepoint.
            assert Job.objects.count() == 0
    finally:
        current_job.reset(token)
    lines = list(JobLogLine.objects.values_list("message", flat=True))
    assert len(lines) == JobLogHandler.MAX_LINES_PER_ATTEMPT + 1
    assert lines[-1] == "the error that ends it"
    assert "outside any job" not in lines


# --- On a real broker and worker ---------------------------------------------------------------


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_failed_jobs_retried_now_and_replayed_in_chunks_each_send_their_email_once(
    broker, smtp_sink, start_worker, product, staff_client, monkeypatch
):
    smtp_sink.set(reject_next=5)  # five confirmations refused for good (SMTP 550)
    start_worker()
    orders = [place_order(product) for _ in range(5)]
    for order in orders:
        wait_for_job_state(order, Job.State.FAILED)
    wait_for(lambda: broker.depth("emails.dead") == 5, message="five dead letters")
    jobs = [confirmation_job(order) for order in orders]
    # The dead-letters page counts them by cause: the mail server's 550, a PermanentError.
    letters = staff_client.get(reverse("admin:jobs_dead_letters")).content.decode()
    assert '<th scope="row">an exception: PermanentError</th><td>5</td>' in letters
    # The worker kept each job's own log lines: the runner's "failed for good".
    assert JobLogLine.objects.filter(job_key=jobs[0].key, level="ERROR").exists()
    # Two lose their dead letter (discarded by someone): they are replayed as fresh copies.
    assert deadletters.discard_found("emails.dead", [jobs[3].task_id, jobs[4].task_id])

    # Retry now, from the job's page: replayed from emails.dead, sent once.
    response = staff_client.post(reverse("jobs:job_retry", args=[jobs[0].pk]))
    assert response.status_code == 302
    wait_for_job_state(orders[0], Job.State.SUCCEEDED)
    assert JobEvent.objects.filter(
        job=jobs[0], kind=JobEvent.Kind.REPLAYED, detail__contains="clerk (retry now)"
    ).exists()

    # The other four in bulk, two per chunk: preview, then confirm what was previewed.
    monkeypatch.setattr(bulk, "BULK_CHUNK_SIZE", 2)
    preview = staff_client.get(JOBS, {"state": "failed", "preview": "replay"}).context["preview"]
    assert preview.jobs == 4
    confirm = {"state": "failed", "action": "replay", "up_to_pk": preview.up_to_pk, "expected": 4}
    response = staff_client.post(reverse("jobs:job_bulk"), confirm, follow=True)
    message = " ".join(str(m) for m in response.context["messages"])
    assert "4 job(s) replayed: 2 from their dead-letter queue, 2 as a fresh copy." in message
    for order in orders:
        wait_for_job_state(order, Job.State.SUCCEEDED)
    assert broker.depth("emails.dead") == 0
    wait_for(lambda: len(smtp_sink.messages()) == 5, message="five emails")
    # One email per order, however it was replayed.
    keys = [send_order_confirmation.job_key(order.pk) for order in orders]
    assert Job.objects.filter(key__in=keys, state=Job.State.SUCCEEDED).count() == 5
    assert all(job.replays == 1 for job in Job.objects.filter(key__in=keys))


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_the_confirm_acts_on_at_most_what_was_previewed_and_says_how_many_more_match(
    broker, staff_client
):
    first = [make_job(f"order_confirmation:{n}", state=Job.State.FAILED) for n in range(3)]
    preview = staff_client.get(JOBS, {"state": "failed", "preview": "discard"}).context["preview"]
    later = make_job("order_confirmation:99", state=Job.State.FAILED)  # failed since
    confirm = {"state": "failed", "action": "discard", "up_to_pk": preview.up_to_pk, "expected": 3}
    response = staff_client.post(reverse("jobs:job_bulk"), confirm, follow=True)
    message = " ".join(str(m) for m in response.context["messages"])
    assert "3 failed job(s) given up for good" in message
    assert "1 more failed job(s) match the filter now" in message
    given_up = JobEvent.objects.filter(detail__startswith="given up for good by clerk")
    assert sorted(given_up.values_list("job_id", flat=True)) == [job.pk for job in first]
    assert not JobEvent.objects.filter(job=later).exists()

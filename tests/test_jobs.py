"""The job plumbing's own logic, without a broker: backoff, claims, the outbox."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import outbox, runner
from jobs.models import Job
from notifications.tasks import send_order_confirmation


def test_backoff_grows_exponentially_with_bounded_jitter():
    for retries in range(6):
        ceiling = min(300, 2 * 2**retries)
        delays = [runner.backoff_seconds(retries, base=2, cap=300) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len({round(d, 3) for d in delays}) > 100, "the delays are jittered"
    assert runner.backoff_seconds(20, base=2, cap=300) <= 300


def make_job(key="order_confirmation:1", **fields):
    fields = {"kind": "order_confirmation", "task_name": "t", "task_id": key, **fields}
    return Job.objects.create(key=key, **fields)


def claim(key="order_confirmation:1", lease=30):
    return runner.claim_job(key, task_name="t", task_id=key, args=[1], lease_seconds=lease)


@pytest.mark.django_db
def test_a_claimed_job_is_busy_for_other_copies_until_its_lease_runs_out():
    make_job(state=Job.State.QUEUED)
    first = claim()
    assert first.got_it and first.job.state == Job.State.STARTED and first.job.attempts == 1

    second = claim()
    assert not second.got_it and not second.already_done
    assert 25 < second.seconds_left() <= 30

    Job.objects.update(claim_expires_at=timezone.now() - timedelta(seconds=1))
    third = claim()  # the first attempt died: its lease ran out, the job is free again
    assert third.got_it and third.job.attempts == 2


@pytest.mark.django_db
def test_a_done_job_is_never_claimed_again():
    make_job()
    runner.record_success(claim().job, {"message_id": "<x@y>"})
    again = claim()
    assert not again.got_it and again.already_done
    assert again.job.outcome == {"message_id": "<x@y>"}
    assert again.job.attempts == 1


@pytest.mark.django_db
def test_a_job_a_worker_started_before_its_publish_was_confirmed_still_gets_queued_at():
    make_job()
    claim()  # the worker was faster than RabbitMQ's confirm to the publisher
    published_at = timezone.now() - timedelta(milliseconds=5)
    outbox._mark_queued(list(Job.objects.all()), published_at)
    job = Job.objects.get()
    assert job.state == Job.State.STARTED, "a started job is not set back to queued"
    assert job.queued_at == published_at, "its wait is measured from the publish"


@pytest.mark.django_db
def test_claiming_an_unknown_job_creates_its_record():
    got = claim("order_confirmation:77")
    assert got.got_it
    assert Job.objects.get(key="order_confirmation:77").kind == "order_confirmation"


@pytest.mark.django_db
def test_enqueue_records_one_job_per_key_and_publishes_after_commit(
    product, django_capture_on_commit_callbacks, monkeypatch
):
    published = []
    monkeypatch.setattr(outbox, "publish_many", lambda pks: published.append(pks) or len(pks))
    with django_capture_on_commit_callbacks(execute=True):
        first = outbox.enqueue_on_commit(send_order_confirmation, product.pk, subject=product)
        second = outbox.enqueue_on_commit(send_order_confirmation, product.pk, subject=product)
        assert published == [], "nothing is published before the commit"
    assert first == second == f"order_confirmation:{product.pk}"
    job = Job.objects.get()
    assert job.state == Job.State.PENDING
    assert job.args == [product.pk]
    assert published == [[job.pk], []], "asking twice publishes once"


@pytest.mark.django_db
def test_a_failed_publish_keeps_the_job_pending_with_the_reason(product, monkeypatch):
    job = make_job(args=[product.pk], task_name=send_order_confirmation.name)

    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(send_order_confirmation, "apply_async", broker_down)
    assert outbox.publish(job.pk) is False
    job.refresh_from_db()
    assert job.state == Job.State.PENDING
    assert "Connection refused" in job.publish_error
    assert "delayed" in job.describe()


@pytest.mark.django_db
def test_the_sweeper_republishes_only_jobs_that_waited_long_enough(monkeypatch):
    published = []
    monkeypatch.setattr(outbox, "publish", lambda pk: published.append(pk) or True)
    old = make_job("order_confirmation:1", created_at=timezone.now() - timedelta(minutes=5))
    make_job("order_confirmation:2")  # just asked for: its own on-commit publish is under way
    make_job("order_confirmation:3", state=Job.State.QUEUED, created_at=old.created_at)

    assert outbox.republish_pending_jobs(older_than=timedelta(seconds=30)) == 1
    assert published == [old.pk]


@pytest.mark.django_db
def test_after_a_failed_publish_the_process_leaves_the_broker_alone_for_a_while(
    product, monkeypatch
):
    calls = []

    def broker_hangs(*args, **kwargs):
        calls.append(args)
        raise TimeoutError("timed out")

    monkeypatch.setattr(send_order_confirmation, "apply_async", broker_hangs)
    first, second = (
        make_job(f"order_confirmation:{i}", args=[i], task_name=send_order_confirmation.name)
        for i in (1, 2)
    )
    assert outbox.publish(first.pk) is False
    assert outbox.publish(second.pk) is False
    assert len(calls) == 1, "the second checkout did not wait for the broker"
    second.refresh_from_db()
    assert second.state == Job.State.PENDING and "moments ago" in second.publish_error

    monkeypatch.setattr(outbox, "_broker_failed_until", 0.0)  # the pause is over
    assert outbox.publish(second.pk) is False
    assert len(calls) == 2


class ComeBack(Exception):
    """Stands in for Celery's Retry: what JobTask.come_back_in would raise."""


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("retry_after", "low", "high"),
    # An hour asked is capped at the backoff's cap: RabbitMQ's consumer_timeout is 30 minutes.
    [(None, 1, 2), (120, 120, 120), (3600, 300, 300)],
)
def test_a_transient_fault_comes_back_no_sooner_than_the_other_side_asked(
    settings, monkeypatch, retry_after, low, high
):
    settings.JOB_RETRY_BACKOFF_SECONDS = 2  # the first retry: 1 to 2 s
    settings.JOB_RETRY_BACKOFF_MAX_SECONDS = 300
    make_job()
    job = claim().job
    delays = []

    def come_back_in(seconds, exc=None):
        delays.append(seconds)
        return ComeBack()

    monkeypatch.setattr(send_order_confirmation, "come_back_in", come_back_in)

    def work():
        raise runner.TransientError("HTTP 429 Too Many Requests", retry_after=retry_after)

    with pytest.raises(ComeBack):
        send_order_confirmation._attempt(job, work, "emails.dead")
    assert low <= delays[0] <= high


def test_a_publish_that_fails_after_the_response_is_logged_not_raised(monkeypatch, caplog):
    """After the response nobody is waiting for an answer: an error raised there would reach
    the web server instead. The jobs stay in the outbox for the sweeper."""

    def database_gone(job_pks):
        raise RuntimeError("database is gone")

    monkeypatch.setattr(outbox, "publish_many", database_gone)
    outbox._this_request.waiting = [[41], [42]]
    outbox.request_finished()
    assert outbox._this_request.waiting is None
    assert "could not publish jobs [41]" in caplog.text
    assert "could not publish jobs [42]" in caplog.text


@pytest.mark.django_db
def test_a_renamed_kind_keeps_its_jobs_under_the_new_name():
    from django.apps import apps as live_apps

    from jobs.kinds import renamed_kind

    Job.objects.create(key="old_name:7", kind="old_name", task_name="t", task_id="a")
    Job.objects.create(key="other:7", kind="other", task_name="t", task_id="b")
    rename = renamed_kind("old_name", "new_name")
    rename.code(live_apps, None)
    assert sorted(Job.objects.values_list("kind", "key")) == [
        ("new_name", "new_name:7"),
        ("other", "other:7"),
    ]
    rename.reverse_code(live_apps, None)
    assert Job.objects.get(task_id="a").key == "old_name:7"


@pytest.mark.django_db(transaction=True)
def test_a_group_of_jobs_goes_out_with_its_confirms_awaited_together(broker, product):
    from tests.counted_job import count_me

    outbox.record_group(count_me.name, product, [(n,) for n in range(300)])
    jobs = list(Job.objects.filter(task_name=count_me.name).order_by("pk"))
    assert outbox.publish_group(jobs) == 300
    assert broker.depth("maintenance") == 300
    queued = Job.objects.filter(task_name=count_me.name, state=Job.State.QUEUED)
    assert queued.count() == 300
    # Each message carries its own job's task id, whatever order RabbitMQ confirmed them in.
    sent = {m["headers"]["id"]: m["headers"]["argsrepr"] for m in broker.peek("maintenance", 300)}
    assert sent == {job.task_id: f"[{job.args[0]}]" for job in jobs}

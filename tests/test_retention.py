"""Retention (jobs/retention.py): old finished jobs, their events and old task results go, in
chunks; nothing still waited for or not yet counted by /metrics goes; the figures stay."""

import os
import time
import tracemalloc
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from django_celery_beat import schedulers
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import GroupResult, TaskResult
from kombu.utils.imports import symbol_by_name

from config.celery import app as celery_app
from jobs import dashboard, metrics, retention
from jobs.models import Job, JobEvent, JobLogLine, Tally
from notifications.tasks import send_order_confirmation
from suppliers.models import FetchRun, Supplier

pytestmark = pytest.mark.django_db
UNFINISHED = [state for state in Job.State if state not in Job.FINAL_STATES]


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """/metrics asks RabbitMQ for queue depths; here it is "not answering", at once."""

    def unreachable(names):
        raise ConnectionError("no broker in these tests")

    monkeypatch.setattr(metrics, "queue_counts", unreachable)
    monkeypatch.setattr(metrics, "SETTLE_SECONDS", 0)


def a_job(name, state=Job.State.SUCCEEDED, *, days_ago=60, events=3):
    """A job of `state` created and (if final) finished `days_ago`, with `events` events."""
    at = timezone.now() - timedelta(days=days_ago)
    job = Job.objects.create(
        key=f"{send_order_confirmation.kind.name}:{name}",
        kind=send_order_confirmation.kind.name,
        subject=f"order:{name}",
        task_name=send_order_confirmation.name,
        task_id=f"task-{name}",
        state=state,
        created_at=at,
        queued_at=at,
        started_at=at + timedelta(seconds=1),
        finished_at=at + timedelta(seconds=2) if state in Job.FINAL_STATES else None,
    )
    kinds = [JobEvent.Kind.QUEUED, JobEvent.Kind.STARTED, JobEvent.Kind.SUCCEEDED]
    for i in range(events):
        JobEvent.objects.create(job=job, kind=kinds[i % 3], at=at + timedelta(seconds=i), attempt=1)
    return job


def a_result(task_id, days_ago, status="SUCCESS", model=TaskResult):
    if model is TaskResult:
        row = TaskResult.objects.create(task_id=task_id, status=status)
    else:
        row = GroupResult.objects.create(group_id=task_id)
    # date_done is auto_now: set afterwards, as time would have.
    model.objects.filter(pk=row.pk).update(date_done=timezone.now() - timedelta(days=days_ago))
    return row


def prune(days=30, chunk_size=2):
    before = timezone.now() - timedelta(days=days)
    return retention.prune_finished_jobs(before, chunk_size=chunk_size)


def test_old_finished_jobs_go_with_their_events_and_unfinished_or_recent_ones_stay():
    old_finished = [a_job(f"old-{state}", state) for state in Job.FINAL_STATES]
    old_unfinished = [a_job(f"old-{state}", state) for state in UNFINISHED]
    # As if each had finished long ago and been replayed from its dead letters since: the
    # replay sets the state back, not finished_at. The state alone must keep them.
    long_ago = timezone.now() - timedelta(days=59)
    Job.objects.filter(pk__in=[j.pk for j in old_unfinished]).update(finished_at=long_ago)
    recent = a_job("recent", days_ago=2)
    for job in [old_finished[0], old_unfinished[0], recent]:
        JobLogLine.objects.create(job_key=job.key, level="INFO", logger="x", message="hello")

    pruned = prune(chunk_size=2)

    assert pruned.jobs == len(old_finished) and pruned.job_events == 3 * len(old_finished)
    assert not Job.objects.filter(pk__in=[j.pk for j in old_finished]).exists()
    assert not JobEvent.objects.filter(job_id__in=[j.pk for j in old_finished]).exists()
    kept = {j.pk for j in [*old_unfinished, recent]}
    assert set(Job.objects.values_list("pk", flat=True)) == kept
    assert JobEvent.objects.count() == 3 * len(kept)
    assert pruned.job_log_lines == 1
    assert set(JobLogLine.objects.values_list("job_key", flat=True)) == {
        old_unfinished[0].key,
        recent.key,
    }
    # A chunk of 2 jobs has 6 events: 3 DELETEs of at most 2 events, then one of the jobs.
    assert pruned.statements >= len(old_finished) * 2


def test_a_job_with_an_event_metrics_has_not_counted_stays_until_it_has():
    counted = a_job("counted")
    metrics.render()  # the first scrape: every event there is, is history
    waiting = a_job("waiting")  # its events are newer than the mark: not counted yet
    mark = Tally.objects.get(name=Tally.FOLDED_UP_TO).value
    assert waiting.events.filter(pk__gt=mark).count() == 3

    prune()
    assert not Job.objects.filter(pk=counted.pk).exists()
    assert Job.objects.filter(pk=waiting.pk).exists() and waiting.events.count() == 3

    metrics.render()  # counts them
    prune()
    assert not Job.objects.filter(pk=waiting.pk).exists()


def test_results_older_than_celery_result_expires_go_and_newer_ones_stay(settings):
    settings.CELERY_RESULT_EXPIRES = timedelta(days=7)
    old = [a_result(f"old-{i}", days_ago=8) for i in range(5)]
    fresh = [a_result(f"fresh-{i}", days_ago=6) for i in range(2)]
    old_group = a_result("old-group", days_ago=8, model=GroupResult)
    fresh_group = a_result("fresh-group", days_ago=1, model=GroupResult)
    settings.RETENTION_CHUNK_SIZE = 2

    pruned = retention.prune_old_records()

    assert (pruned.task_results, pruned.group_results) == (len(old), 1)
    assert set(TaskResult.objects.values_list("pk", flat=True)) == {r.pk for r in fresh}
    assert list(GroupResult.objects.values_list("pk", flat=True)) == [fresh_group.pk]
    assert old_group.pk != fresh_group.pk
    assert pruned.statements == 3 + 1  # 5 old results in chunks of 2, then the group


def test_results_are_kept_for_ever_when_celery_result_expires_is_off(settings):
    settings.CELERY_RESULT_EXPIRES = None
    a_result("ancient", days_ago=400)
    assert retention.prune_old_records().task_results == 0
    assert TaskResult.objects.count() == 1


def test_nothing_younger_than_a_day_is_pruned_whatever_it_is_asked():
    a_job("an-hour-old", days_ago=1 / 24)
    with pytest.raises(ValueError, match="at least"):
        retention.prune_finished_jobs(timezone.now() - timedelta(hours=1), chunk_size=10)
    with pytest.raises(ValueError, match="at least"):
        retention.prune_task_results(timezone.now() - timedelta(hours=1), chunk_size=10)
    assert Job.objects.count() == 1


def test_a_fetch_run_keeps_its_counts_and_loses_its_pruned_job():
    supplier = Supplier.objects.create(name="Acme", base_url="http://127.0.0.1:9/")
    run = FetchRun.objects.create(supplier=supplier, job=a_job("fetch"), pages_fetched=7)

    assert prune().jobs == 1

    run.refresh_from_db()
    assert (run.job, run.pages_fetched) == (None, 7)


@contextmanager
def rolled_back():
    """Whatever is done inside is undone: /metrics folds what it reads, and must read again."""

    class Undo(Exception):
        pass

    try:
        with transaction.atomic():
            yield
            raise Undo
    except Undo:
        pass


def test_metrics_and_the_dashboard_read_the_same_before_and_after_a_prune(monkeypatch):
    a_job("old-1")
    a_job("old-2", Job.State.FAILED)
    a_job("waiting-for-ever", Job.State.QUEUED)
    a_job("retrying", Job.State.RETRYING, days_ago=3)
    a_job("recent", days_ago=0.01)
    for i in range(3):
        a_result(f"old-{i}", days_ago=30)
        a_result(f"last-hour-{i}", days_ago=0.01, status="FAILURE" if i else "SUCCESS")
    metrics.render()  # the mark: what is there so far has been counted
    a_job("old-not-counted-yet")  # finished long ago, but its events are not folded yet
    a_job("recent-not-counted-yet", days_ago=0.01)

    frozen = timezone.now()  # the ages and the last hour, read at one instant
    monkeypatch.setattr(timezone, "now", lambda: frozen)

    def figures():
        return {
            "metrics": metrics.render().decode(),
            "throughput": dashboard.throughput(),
            "oldest": dashboard.oldest_waiting_by_queue(),
            "chart": dashboard.bars_svg(dashboard.throughput()),
        }

    with rolled_back():
        before = figures()
    pruned = retention.prune_old_records(now=frozen)
    after = figures()

    assert (pruned.jobs, pruned.job_events, pruned.task_results) == (2, 6, 3)
    assert Job.objects.filter(key__endswith=":old-not-counted-yet").exists()
    assert after == before
    assert "shopjobs_jobs_finished_total" in after["metrics"]
    assert sum(b["failed"] for b in after["throughput"]) == 2


def test_the_nightly_entry_runs_ours_and_celerys_whole_table_delete_never_runs(monkeypatch):
    # The scheduler closes "old" connections, the test's own transaction among them.
    monkeypatch.setattr(schedulers, "close_old_connections", lambda: None)
    # What beat does at every start: django-celery-beat installs its own entry named
    # celery.backend_cleanup (as CELERY_RESULT_EXPIRES is set), then writes the settings'.
    symbol_by_name(celery_app.conf.beat_scheduler)(app=celery_app)

    entry = PeriodicTask.objects.get(name="celery.backend_cleanup")
    assert entry.task == "jobs.prune_old_records"
    assert (entry.crontab.hour, entry.crontab.minute) == ("4", "0")
    assert not PeriodicTask.objects.filter(task="celery.backend_cleanup").exists()
    route = celery_app.amqp.router.route({}, "jobs.prune_old_records")
    assert route["queue"].name == "maintenance"


# --- A million rows ---------------------------------------------------------------------------

MILLION = 1_000_000
EVENTS_PER_JOB = 4
CHUNK = 5000


def series(count):
    """SQL rows i = 1..count, made by the database itself: (FROM clause, WITH clause)."""
    if connection.vendor == "postgresql":
        return f"generate_series(1, {int(count)}) AS s(i)", ""
    return (
        "s",
        f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {count}) ",
    )


def insert_rows(model, count, expressions):
    """INSERT `count` rows of `model` in one statement. `expressions`: {field: SQL over i, or
    (SQL with one %s, its value)} for some fields; every other field gets its default, so a
    field added to the model later needs nothing here."""
    template = model()
    columns, values, params = [], [], []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(connection.ops.quote_name(field.column))
        expression = expressions.get(field.name)
        if expression is None:
            values.append("%s")
            params.append(field.get_db_prep_save(getattr(template, field.attname), connection))
        elif isinstance(expression, tuple):
            values.append(expression[0])
            params.append(field.get_db_prep_save(expression[1], connection))
        else:
            values.append(expression)
    from_clause, with_clause = series(count)
    with connection.cursor() as cursor:
        cursor.execute(
            f"{with_clause}INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "
            f"SELECT {', '.join(values)} FROM {from_clause}",
            params,
        )


class DeleteSizes(list):
    longest_seconds = 0.0


@contextmanager
def delete_sizes():
    """[rows each DELETE statement removed], as the database driver reports them."""
    sizes = DeleteSizes()

    def count(execute, sql, params, many, context):
        started = time.monotonic()
        result = execute(sql, params, many, context)
        if sql.lstrip().upper().startswith("DELETE"):
            sizes.append(context["cursor"].rowcount)
            count.longest = max(count.longest, time.monotonic() - started)
        return result

    count.longest = 0.0

    with connection.execute_wrapper(count):
        yield sizes
    sizes.longest_seconds = count.longest


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "").split(":")[0] not in ("postgres", "postgresql")
    and not os.environ.get("TEST_RETENTION_MILLION"),
    reason="a million rows: the PostgreSQL run (TEST_RETENTION_MILLION=1 runs it on SQLite)",
)
def test_a_million_events_are_pruned_in_chunks_in_bounded_memory(settings):
    """1,000,000 events of 250,000 old finished jobs go, in DELETEs of at most CHUNK rows,
    with flat memory; unfinished, recent and not-yet-counted jobs stay."""
    old = timezone.now() - timedelta(days=60)
    jobs = MILLION // EVENTS_PER_JOB
    kind, task = send_order_confirmation.kind.name, send_order_confirmation.name
    started = time.monotonic()
    insert_rows(
        Job,
        jobs,
        {
            "key": f"'{kind}:bulk-' || i",
            "kind": f"'{kind}'",
            "subject": "'order:' || i",
            "task_name": f"'{task}'",
            "task_id": "'bulk-' || i",
            "state": f"'{Job.State.SUCCEEDED.value}'",
            "attempts": "1",
            "created_at": ("%s", old),
            "finished_at": ("%s", old),
        },
    )
    first_job = Job.objects.order_by("pk").values_list("pk", flat=True).first()
    insert_rows(
        JobEvent,
        MILLION,
        {
            "job": f"{first_job} + (i - 1) / {EVENTS_PER_JOB}",
            "kind": f"'{JobEvent.Kind.SUCCEEDED.value}'",
            "at": ("%s", old),
        },
    )
    assert JobEvent.objects.count() == MILLION
    Tally.objects.create(
        name=Tally.FOLDED_UP_TO, value=JobEvent.objects.order_by("-pk").values("pk")[:1][0]["pk"]
    )
    # What must stay: an old job still waited for, a recent one, one not yet counted.
    kept = [
        a_job("old-and-queued", Job.State.QUEUED, events=2),
        a_job("recent", days_ago=2, events=2),
        a_job("old-not-counted-yet", events=2),
    ]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # as autovacuum would have, long before a nightly prune
    inserted = time.monotonic() - started
    settings.RETENTION_CHUNK_SIZE = CHUNK

    tracemalloc.start()
    started = time.monotonic()
    with delete_sizes() as sizes:
        pruned = retention.prune_old_records()
    seconds = time.monotonic() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert (pruned.jobs, pruned.job_events) == (jobs, MILLION)
    assert set(Job.objects.values_list("pk", flat=True)) == {job.pk for job in kept}
    assert JobEvent.objects.count() == 2 * len(kept)
    assert sizes and max(sizes) <= CHUNK
    assert len(sizes) == pruned.statements >= (jobs + MILLION) // CHUNK
    # Loading the rows would take hundreds of megabytes; a chunk's keys are a few hundred KB.
    assert peak < 10 * 2**20
    print(
        f"\n{connection.vendor}: inserted {jobs + MILLION:,} rows in {inserted:.1f} s; pruned "
        f"{jobs:,} jobs and {MILLION:,} events in {seconds:.1f} s "
        f"({(jobs + MILLION) / seconds:,.0f} rows/s), {len(sizes)} DELETEs of at most "
        f"{max(sizes):,} rows (the longest {sizes.longest_seconds * 1000:.0f} ms), "
        f"peak Python memory {peak / 2**20:.1f} MiB"
    )

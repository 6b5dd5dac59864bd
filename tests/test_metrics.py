"""/metrics, as Prometheus reads it: what real workers did, counted once, cheaply, for operators."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from jobs import metrics
from jobs.models import Job, JobEvent
from notifications.tasks import send_order_confirmation
from testkit.processes import wait_for
from tests.flows import checkout

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]
TOKEN = "s3cret-token"


@pytest.fixture(autouse=True)
def metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN  # tests run with DEBUG off, as production does


@pytest.fixture(autouse=True)
def fold_at_once(monkeypatch):
    """Events are folded as soon as they are written, not SETTLE_SECONDS later (tested below)."""
    monkeypatch.setattr(metrics, "SETTLE_SECONDS", 0)


def scrape(client):
    """{(sample name, frozenset of labels): value} from one GET /metrics, as Prometheus asks."""
    response = client.get(reverse("jobs:metrics"), headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.content[:300]
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def confirmations_done():
    kind = send_order_confirmation.kind.name
    return Job.objects.filter(kind=kind, state__in=Job.FINAL_STATES).count()


def test_metrics_count_what_a_real_worker_did_once(
    client, broker, smtp_sink, start_worker, product
):
    start_worker()
    checkout(client, product, email="before@example.com")
    wait_for(lambda: confirmations_done() == 1, message="the first confirmation")
    scrape(client)  # the first scrape starts counting: what came before is history

    smtp_sink.set(reject_next=1)  # the next confirmation is refused for good: dead letters
    for i in range(3):
        checkout(client, product, email=f"customer{i}@example.com")
    wait_for(lambda: confirmations_done() == 4, message="three more confirmations")
    wait_for(lambda: broker.peek("emails.dead"), message="the dead letter")

    samples = scrape(client)
    finished = "shopjobs_jobs_finished_total"
    kind = send_order_confirmation.kind.name
    assert value(samples, finished, kind=kind, queue="emails", outcome="succeeded") == 2
    assert value(samples, finished, kind=kind, queue="emails", outcome="failed") == 1
    assert value(samples, finished, kind=kind, queue="emails", outcome="dead_lettered") == 1
    assert value(samples, "shopjobs_job_wait_seconds_count", queue="emails") == 3
    assert value(samples, "shopjobs_job_run_seconds_count", queue="emails") == 3
    assert value(samples, "shopjobs_job_run_seconds_bucket", queue="emails", le="+Inf") == 3
    assert value(samples, "shopjobs_dead_letters", queue="emails") == 1
    assert value(samples, "shopjobs_queue_consumers", queue="emails") == 1
    # Nothing consumes the warehouse's order.placed jobs here: they wait, and it shows.
    assert value(samples, "shopjobs_queue_consumers", queue="integrations") == 0
    assert value(samples, "shopjobs_queue_ready", queue="integrations") == 4
    assert value(samples, "shopjobs_jobs", kind="order_placed", state="queued") == 4
    assert value(samples, "shopjobs_oldest_waiting_job_seconds", queue="integrations") > 0
    assert value(samples, "shopjobs_oldest_waiting_job_seconds", queue="emails") == 0
    assert value(samples, "shopjobs_wait_alert_threshold_seconds", queue="emails") == 60
    assert value(samples, "shopjobs_metrics_scrape_ok") == 1

    again = scrape(client)
    assert value(again, finished, kind=kind, queue="emails", outcome="succeeded") == 2, (
        "a second scrape adds nothing new"
    )


def test_a_scrape_reads_what_is_new_however_many_jobs_there_are(client, broker):
    def finished_jobs(n, tag):
        jobs = Job.objects.bulk_create(
            Job(key=f"{tag}:{i}", kind="order_confirmation", task_name=send_order_confirmation.name,
                task_id=f"{tag}-{i}", state=Job.State.SUCCEEDED, queued_at=timezone.now())
            for i in range(n)
        )  # fmt: skip
        JobEvent.objects.bulk_create(
            JobEvent(job=job, kind=JobEvent.Kind.SUCCEEDED, at=timezone.now()) for job in jobs
        )

    def scrape_queries():
        with CaptureQueriesContext(connection) as queries:
            scrape(client)
        return len(queries)

    finished_jobs(10, "few")
    scrape(client)
    finished_jobs(2, "new")
    few = scrape_queries()
    finished_jobs(3000, "many")
    scrape(client)
    finished_jobs(2, "newer")
    with CaptureQueriesContext(connection) as queries:
        samples = scrape(client)
    assert len(queries) == few, "a scrape's queries do not grow with the table"
    done = "shopjobs_jobs_finished_total"
    labels = dict(kind="order_confirmation", queue="emails", outcome="succeeded")
    assert value(samples, done, **labels) == 2 + 3000 + 2


def test_without_debug_metrics_answer_only_the_token(client, settings):
    settings.DEBUG = True
    assert client.get(reverse("jobs:metrics")).status_code == 401, "a token set is asked for"
    settings.METRICS_TOKEN = ""
    assert client.get(reverse("jobs:metrics")).status_code == 200, "the demo: DEBUG, no token"
    settings.DEBUG = False
    assert client.get(reverse("jobs:metrics")).status_code == 401, "production without a token"
    settings.METRICS_TOKEN = TOKEN
    assert client.get(reverse("jobs:metrics")).status_code == 401
    wrong = client.get(reverse("jobs:metrics"), headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = client.get(reverse("jobs:metrics"), headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200
    assert b"shopjobs_jobs" in right.content


def test_the_first_scrape_does_not_count_history_and_starts_every_series_at_0(client, broker):
    kind = send_order_confirmation.kind.name
    old = Job.objects.create(key=f"{kind}:old", kind=kind, task_name=send_order_confirmation.name,
                             task_id="old", state=Job.State.SUCCEEDED)  # fmt: skip
    JobEvent.objects.create(job=old, kind=JobEvent.Kind.SUCCEEDED, at=timezone.now() - timedelta(1))
    samples = scrape(client)
    finished = "shopjobs_jobs_finished_total"
    for outcome in ("succeeded", "failed", "dead_lettered"):
        # At 0, not absent: Prometheus's increase() sees a series' first event only if the
        # series was there before it.
        assert value(samples, finished, kind=kind, queue="emails", outcome=outcome) == 0
    assert value(samples, "shopjobs_job_retries_total", kind=kind, queue="emails") == 0


def test_on_a_new_shop_the_first_jobs_are_counted(client, broker):
    scrape(client)  # no job has ever run: the first scrape marks an empty timeline
    kind = send_order_confirmation.kind.name
    job = Job.objects.create(key=f"{kind}:1", kind=kind, task_name=send_order_confirmation.name,
                             task_id="first", state=Job.State.SUCCEEDED)  # fmt: skip
    JobEvent.objects.create(job=job, kind=JobEvent.Kind.SUCCEEDED)
    samples = scrape(client)
    done = "shopjobs_jobs_finished_total"
    assert value(samples, done, kind=kind, queue="emails", outcome="succeeded") == 1


def test_an_event_is_counted_once_it_has_settled(client, broker, monkeypatch):
    # An event id is taken at the insert, its row seen at the commit: the fold waits until no
    # transaction can still commit an event below the mark, so none is skipped.
    monkeypatch.setattr(metrics, "SETTLE_SECONDS", 10)
    scrape(client)
    kind = send_order_confirmation.kind.name
    job = Job.objects.create(key=f"{kind}:1", kind=kind, task_name=send_order_confirmation.name,
                             task_id="fresh", state=Job.State.SUCCEEDED)  # fmt: skip
    event = JobEvent.objects.create(job=job, kind=JobEvent.Kind.SUCCEEDED)
    done = "shopjobs_jobs_finished_total"
    labels = dict(kind=kind, queue="emails", outcome="succeeded")
    assert value(scrape(client), done, **labels) == 0, "too fresh to be folded"
    JobEvent.objects.filter(pk=event.pk).update(at=event.at - timedelta(seconds=11))
    assert value(scrape(client), done, **labels) == 1

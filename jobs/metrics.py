"""What /metrics tells Prometheus about jobs: the shop's side of monitoring.

RabbitMQ (its rabbitmq_prometheus plugin) and Flower export their own metrics, and Prometheus
scrapes them too (docs/alerting.md); this adds what only the shop knows:

- shopjobs_jobs{kind,state}: jobs not finished yet, by kind and state;
- shopjobs_jobs_finished_total{kind,queue,outcome}: succeeded, failed, cancelled, and of the
  failed those parked in dead letters (outcome="dead_lettered", counted again: not a fourth
  end);
- shopjobs_job_retries_total{kind,queue};
- shopjobs_job_wait_seconds{queue}: queued until the first attempt started (a histogram);
- shopjobs_job_run_seconds{queue}: each attempt, started until it ended (a histogram);
- shopjobs_oldest_waiting_job_seconds{queue}, and shopjobs_wait_alert_threshold_seconds{queue}
  from JOBS_WAIT_ALERT_SECONDS, which the alert compares it with;
- shopjobs_queue_ready{queue}, shopjobs_queue_consumers{queue} and shopjobs_dead_letters{queue}
  for the work queues, in the vhost the shop uses: RabbitMQ's own figures are per node, or
  per queue of every vhost on its detailed endpoint, so the shop reports its own;
- shopjobs_queue_stalled{queue}: 1 while a job has waited JOBS_STALL_SECONDS on a queue that
  took nothing meanwhile (jobs/dashboard.py: stalled_queues), a worker stopped or stuck with
  its consumer still attached;
- shopjobs_queue_paused{queue}: 1 while staff keep the queue paused (jobs/pause.py): its
  consumers are gone on purpose, and the alerts on consumers and waits leave it alone;
- shopjobs_metrics_scrape_ok: 0 when the broker did not answer this scrape.

A scrape stays cheap however many jobs the database holds: unfinished jobs are counted through
the index on state, and the totals are kept in the Tally table, to which each scrape adds only
the timeline events written since the last one (`fold_new_events`), at most FOLD_LIMIT of them.
"""

import hmac
import itertools
import json
from collections import defaultdict
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from jobs import conf, topology
from jobs.dashboard import oldest_waiting_by_queue, queue_counts, queue_of, stalled_queues
from jobs.models import Job, JobEvent, Tally
from jobs.pause import paused
from jobs.runner import JobTask

# Seconds; from a confirmation email's tens of milliseconds to a report's many minutes.
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
FINISHED_OUTCOMES = (
    JobEvent.Kind.SUCCEEDED,
    JobEvent.Kind.FAILED,
    JobEvent.Kind.CANCELLED,
    JobEvent.Kind.DEAD_LETTERED,
)
UNFINISHED = (Job.State.PENDING, Job.State.QUEUED, Job.State.STARTED, Job.State.RETRYING)
# Events folded per scrape at most: a backlog after a quiet week is caught up over a few.
FOLD_LIMIT = 20_000
# Only events this old are folded. Ids are handed out when a row is inserted, not when its
# transaction commits: an event committed late, with a lower id than one already folded, would
# be behind the mark and never counted. The transactions that write events last milliseconds;
# waiting this long for them costs the counters a scrape of delay, no event.
SETTLE_SECONDS = 10
HISTOGRAMS = {
    "shopjobs_job_wait_seconds": "Seconds from queued to the first attempt's start.",
    "shopjobs_job_run_seconds": "Seconds from an attempt's start to its end.",
}
COUNTERS = {
    "shopjobs_jobs_finished_total": "Jobs finished, by outcome.",
    "shopjobs_job_retries_total": "Attempts that ended in a retry.",
}


def may_read(request):
    """DEBUG (the demo) lets anyone read; otherwise the request must carry METRICS_TOKEN."""
    token = conf.METRICS_TOKEN
    if not token:
        return settings.DEBUG
    sent = request.headers.get("Authorization", "")
    return hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())


def render():
    """The text Prometheus scrapes."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobsCollector())
    return generate_latest(registry)


class JobsCollector:
    """A prometheus_client collector: everything is read at scrape time, nothing kept here."""

    def collect(self):
        yield from totals(fold_new_events())
        yield unfinished_jobs()
        yield from waiting()
        yield paused_queues()
        yield stalled()
        yield from broker_queues()


def fold_new_events():
    """Add the timeline events written since the last scrape to the tallies; return them all.

    One transaction, holding the row lock of the `FOLDED_UP_TO` mark (PostgreSQL), or the
    database's write lock (SQLite, whose transactions here begin IMMEDIATE): two scrapes at once
    take turns, so no event is counted twice.
    """
    with transaction.atomic():
        mark, first = Tally.objects.select_for_update().get_or_create(name=Tally.FOLDED_UP_TO)
        if first:  # the first scrape ever counts from now: older events are history
            newest = JobEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
            mark.value = newest or 0
            mark.save(update_fields=["value"])
        events = list(
            JobEvent.objects.filter(pk__gt=mark.value)
            .order_by("pk")
            .values(
                "pk", "kind", "at", "attempt", "job__kind", "job__task_name", "job__queued_at",
                "job__started_at",
            )[:FOLD_LIMIT]
        )  # fmt: skip
        settled = timezone.now() - timedelta(seconds=SETTLE_SECONDS)
        # The events up to the first one too new: the mark never passes an unsettled one.
        events = list(itertools.takewhile(lambda event: event["at"] <= settled, events))
        tallies = {(t.name, t.labels): t for t in Tally.objects.exclude(pk=mark.pk)}
        if events:
            add_up(tallies, changes_from(events))
            mark.value = events[-1]["pk"]
            mark.save(update_fields=["value"])
    return tallies.values()


def changes_from(events):
    """{(tally name, labels): amount to add} for these timeline events."""
    changes = defaultdict(float)

    def count(name, **labels):
        changes[(name, _labels(labels))] += 1

    def observe(name, queue, seconds):
        if seconds is None or seconds < 0:
            return  # no start known, or a start newer than this end: the next attempt's
        changes[(f"{name}_count", _labels({"queue": queue}))] += 1
        changes[(f"{name}_sum", _labels({"queue": queue}))] += seconds
        for le in BUCKETS:
            if seconds <= le:
                changes[(f"{name}_bucket", _labels({"queue": queue, "le": str(le)}))] += 1

    for event in events:
        kind, what = event["job__kind"], event["kind"]
        queue = queue_of(event["job__task_name"]) or "unrouted"
        started, at = event["job__started_at"], event["at"]
        if what == JobEvent.Kind.STARTED and (event["attempt"] or 1) == 1:
            observe("shopjobs_job_wait_seconds", queue, _seconds(event["job__queued_at"], at))
        if what in (JobEvent.Kind.SUCCEEDED, JobEvent.Kind.FAILED, JobEvent.Kind.RETRYING):
            observe("shopjobs_job_run_seconds", queue, _seconds(started, at))
        if what in FINISHED_OUTCOMES:
            count("shopjobs_jobs_finished_total", kind=kind, queue=queue, outcome=what)
        if what == JobEvent.Kind.RETRYING:
            count("shopjobs_job_retries_total", kind=kind, queue=queue)
    return changes


def add_up(tallies, changes):
    """Add `changes` to `tallies` ({(name, labels): Tally}) and save them."""
    new, changed = [], []
    for (name, labels), amount in changes.items():
        tally = tallies.get((name, labels))
        if tally is None:
            tally = tallies[(name, labels)] = Tally(name=name, labels=labels, value=0)
            new.append(tally)
        else:
            changed.append(tally)
        tally.value += amount
    Tally.objects.bulk_create(new)
    Tally.objects.bulk_update(changed, ["value"])


def totals(tallies):
    """The counter and histogram families, from the tallies.

    Every declared job's series are there from the first scrape, at 0 until something happens:
    a series that appears at 1 hides its first event from `increase()`, and from the alerts.
    """
    by_name = defaultdict(list)
    for tally in tallies:
        by_name[tally.name].append((json.loads(tally.labels or "{}"), tally.value))
    for name, labels in declared_series():
        if not any(seen == labels for seen, _ in by_name[name]):
            by_name[name].append((labels, 0))
    for name, help_text in COUNTERS.items():
        label_names = ["kind", "queue", "outcome"] if "finished" in name else ["kind", "queue"]
        family = CounterMetricFamily(name.removesuffix("_total"), help_text, labels=label_names)
        for labels, value in by_name[name]:
            family.add_metric([labels[n] for n in label_names], value)
        yield family
    for name, help_text in HISTOGRAMS.items():
        family = HistogramMetricFamily(name, help_text, labels=["queue"])
        sums = {labels["queue"]: value for labels, value in by_name[f"{name}_sum"]}
        buckets = defaultdict(dict)
        for labels, value in by_name[f"{name}_bucket"]:
            buckets[labels["queue"]][labels["le"]] = value
        for labels, count in by_name[f"{name}_count"]:
            queue = labels["queue"]
            le_counts = [(str(le), buckets[queue].get(str(le), 0)) for le in BUCKETS]
            family.add_metric([queue], [*le_counts, ("+Inf", count)], sums.get(queue, 0))
        yield family


def declared_series():
    """[(tally name, labels)] of every job declared in this app (jobs/declare.py)."""
    series = []
    for task in current_app.tasks.values():
        if not isinstance(task, JobTask):
            continue
        kind, queue = task.kind.name, queue_of(task.name) or "unrouted"
        for outcome in FINISHED_OUTCOMES:
            series.append(
                ("shopjobs_jobs_finished_total", {"kind": kind, "outcome": outcome, "queue": queue})
            )
        series.append(("shopjobs_job_retries_total", {"kind": kind, "queue": queue}))
    return series


def unfinished_jobs():
    family = GaugeMetricFamily(
        "shopjobs_jobs", "Jobs not finished yet, by kind and state.", labels=["kind", "state"]
    )
    counted = (
        Job.objects.filter(state__in=UNFINISHED).values("kind", "state").annotate(n=Count("pk"))
    )
    for row in counted.order_by():
        family.add_metric([row["kind"], row["state"]], row["n"])
    return family


def waiting():
    oldest = oldest_waiting_by_queue()
    thresholds = conf.JOBS_WAIT_ALERT_SECONDS
    age = GaugeMetricFamily(
        "shopjobs_oldest_waiting_job_seconds",
        "Seconds the oldest job not yet started has waited (0: none waits).",
        labels=["queue"],
    )
    limit = GaugeMetricFamily(
        "shopjobs_wait_alert_threshold_seconds",
        "The wait above which an alert fires (JOBS_WAIT_ALERT_SECONDS).",
        labels=["queue"],
    )
    for queue in topology.work_queue_names(current_app):
        age.add_metric([queue], oldest.get(queue, 0))
        limit.add_metric([queue], thresholds.get(queue, thresholds.get("default", 300)))
    yield age
    yield limit


def stalled():
    family = GaugeMetricFamily(
        "shopjobs_queue_stalled",
        "1 while a job waits on a queue that takes nothing (JOBS_STALL_SECONDS).",
        labels=["queue"],
    )
    held = set(stalled_queues(conf.JOBS_STALL_SECONDS))
    for queue in topology.work_queue_names(current_app):
        family.add_metric([queue], int(queue in held))
    return family


def paused_queues():
    family = GaugeMetricFamily(
        "shopjobs_queue_paused", "1 while staff keep the queue paused.", labels=["queue"]
    )
    held = paused()
    for queue in topology.work_queue_names(current_app):
        family.add_metric([queue], int(queue in held))
    return family


def broker_queues():
    """Depth, consumers and dead letters of each work queue, by passive declares."""
    names = topology.work_queue_names(current_app)
    ready = GaugeMetricFamily("shopjobs_queue_ready", "Messages ready.", labels=["queue"])
    consumers = GaugeMetricFamily("shopjobs_queue_consumers", "Consumers.", labels=["queue"])
    dead = GaugeMetricFamily(
        "shopjobs_dead_letters", "Messages parked in the queue's dead letters.", labels=["queue"]
    )
    ok = GaugeMetricFamily("shopjobs_metrics_scrape_ok", "1 when the broker answered.")
    try:
        counts = queue_counts([n for q in names for n in (q, topology.dead_letter_queue_name(q))])
    except Exception:  # the broker's own alerts say why; the queue figures are just absent
        ok.add_metric([], 0)
    else:
        ok.add_metric([], 1)
        for queue in names:
            ready.add_metric([queue], counts[queue][0])
            consumers.add_metric([queue], counts[queue][1])
            dead.add_metric([queue], counts[topology.dead_letter_queue_name(queue)][0])
    yield from (ready, consumers, dead, ok)


def _labels(labels):
    return json.dumps(labels, sort_keys=True)


def _seconds(start, end):
    return None if start is None else (end - start).total_seconds()

"""What the operations dashboard shows, gathered from RabbitMQ, the workers and the database."""

from dataclasses import dataclass
from datetime import timedelta

from celery import current_app
from django.db.models import Min
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_celery_results.models import TaskResult

from jobs import conf, topology
from jobs.models import Job

BUCKET_MINUTES = 5


@dataclass
class QueueRow:
    name: str
    ready: int | None
    consumers: int | None
    dead: int | None
    oldest_wait_seconds: float | None
    kind: str = "jobs"  # or "events": read by an event consumer, not by a Celery worker


def watched_queues():
    """[(queue, kind)]: the work queues, and the event queues of JOBS_EVENT_QUEUES.

    An event queue whose consumer is down (another service, say) shows here as 0 consumers and
    a growing depth.
    """
    return [(name, "jobs") for name in topology.work_queue_names(current_app)] + [
        (name, "events") for name in conf.JOBS_EVENT_QUEUES
    ]


def queue_counts(names):
    """{queue: (ready messages, consumers)}, as RabbitMQ counts them (passive declares).

    Raises if the broker does not answer or a queue does not exist.
    """
    with current_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        channel = conn.default_channel
        counts = {}
        for name in names:
            declared = channel.queue_declare(name, passive=True)
            counts[name] = (declared.message_count, declared.consumer_count)
        return counts


def queue_rows():
    """Depth and consumers of every watched queue and its dead letters."""
    oldest = oldest_waiting_by_queue()
    watched = watched_queues()
    try:
        counts = queue_counts(
            [n for name, _ in watched for n in (name, topology.dead_letter_queue_name(name))]
        )
    except Exception:
        return [QueueRow(name, None, None, None, oldest.get(name), kind) for name, kind in watched]
    rows = []
    for name, kind in watched:
        ready, consumers = counts[name]
        dead, _ = counts[topology.dead_letter_queue_name(name)]
        rows.append(QueueRow(name, ready, consumers, dead, oldest.get(name), kind))
    return rows


def oldest_waiting_by_queue():
    """{queue: seconds the oldest job not yet started has waited}, from the job rows."""
    waiting = (
        Job.objects.filter(state__in=[Job.State.PENDING, Job.State.QUEUED])
        .values("task_name")
        .annotate(since=Min(Coalesce("queued_at", "created_at")))
    )
    now = timezone.now()
    oldest = {}
    for row in waiting:
        queue = queue_of(row["task_name"])
        if queue:
            age = (now - row["since"]).total_seconds()
            oldest[queue] = max(age, oldest.get(queue, 0))
    return oldest


def queue_of(task_name):
    """The name of the queue `task_name` is routed to, or None for a task no route names."""
    route = current_app.amqp.router.lookup_route(task_name)
    return route and route.get("queue")


def workers():
    """[(worker name, queues it serves, tasks it is running)], from a broadcast."""
    try:
        with current_app.connection_for_write() as conn:  # not the pool's: see jobs/health.py
            conn.ensure_connection(max_retries=1, timeout=2)
            inspect = current_app.control.inspect(timeout=1, connection=conn)
            served = inspect.active_queues() or {}
            active = inspect.active() or {}
    except Exception:
        return []
    return [
        (name, sorted(q["name"] for q in served[name]), active.get(name, []))
        for name in sorted(served)
    ]


def throughput(hours=1):
    """Finished and failed tasks per BUCKET_MINUTES over the last `hours`, oldest first."""
    now = timezone.now()
    start = now - timedelta(hours=hours)
    buckets = [
        {"start": start + timedelta(minutes=BUCKET_MINUTES * i), "succeeded": 0, "failed": 0}
        for i in range(hours * 60 // BUCKET_MINUTES)
    ]
    done = TaskResult.objects.filter(date_done__gte=start).values_list("date_done", "status")
    for finished_at, status in done.iterator():
        index = min(
            int((finished_at - start).total_seconds() // (BUCKET_MINUTES * 60)), len(buckets) - 1
        )
        buckets[index]["failed" if status == "FAILURE" else "succeeded"] += 1
    return buckets


def bars_svg(buckets, width=600, height=140):
    """Stacked bars, succeeded under failed, one per bucket: readable at a glance."""
    peak = max((b["succeeded"] + b["failed"] for b in buckets), default=0) or 1
    slot = width / len(buckets)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height + 20}" role="img" '
        f'aria-label="tasks finished per {BUCKET_MINUTES} minutes">'
    ]
    for i, bucket in enumerate(buckets):
        x = i * slot + 2
        ok_h = height * bucket["succeeded"] / peak
        bad_h = height * bucket["failed"] / peak
        bar = f'x="{x:.1f}" width="{slot - 4:.1f}"'
        ok_y, bad_y = height - ok_h, height - ok_h - bad_h
        parts.append(
            f'<rect class="bar ok" fill="#16a34a" {bar} y="{ok_y:.1f}" height="{ok_h:.1f}">'
            f"<title>{bucket['succeeded']} succeeded</title></rect>"
            f'<rect class="bar failed" fill="#dc2626" {bar} y="{bad_y:.1f}" height="{bad_h:.1f}">'
            f"<title>{bucket['failed']} failed</title></rect>"
        )
        if i % 3 == 0:
            label = timezone.localtime(bucket["start"]).strftime("%H:%M")
            parts.append(
                f'<text class="axis" font-size="11" fill="#64748b" x="{x:.1f}" y="{height + 15}">'
                f"{label}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)

"""What the operations dashboard shows, gathered from RabbitMQ, the workers and the database."""

import itertools
from dataclasses import dataclass
from datetime import timedelta

from celery import current_app
from django.db.models import Min
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_celery_results.models import TaskResult

from jobs import conf, topology
from jobs.models import Job
from jobs.pause import paused

BUCKET_MINUTES = 5


@dataclass
class QueueRow:
    name: str
    ready: int | None
    consumers: int | None
    dead: int | None
    oldest_wait_seconds: float | None
    kind: str = "jobs"  # or "events": read by an event consumer, not by a Celery worker
    paused: object = None  # the jobs.QueuePause row while staff keep the queue paused

    @property
    def waits_untracked(self):
        """Messages wait in this work queue but no job does: tasks published without a job
        row (the demo's flood, a beat tick), whose age nobody wrote down. RabbitMQ cannot tell
        either: Celery's messages carry no time they were sent."""
        return self.kind == "jobs" and bool(self.ready) and self.oldest_wait_seconds is None


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
    """Depth and consumers of every watched queue and its dead letters, and its pause."""
    oldest = oldest_waiting_by_queue()
    held = paused()
    watched = watched_queues()
    try:
        counts = queue_counts(
            [n for name, _ in watched for n in (name, topology.dead_letter_queue_name(name))]
        )
    except Exception:
        counts = {}
    rows = []
    for name, kind in watched:
        ready, consumers = counts.get(name, (None, None))
        dead, _ = counts.get(topology.dead_letter_queue_name(name), (None, None))
        rows.append(QueueRow(name, ready, consumers, dead, oldest.get(name), kind, held.get(name)))
    return rows


def oldest_waiting_by_queue():
    """{queue: seconds the oldest job not yet started has waited}, from the job rows.

    A job waits while it is PENDING (in the outbox: since it was asked for), QUEUED (since
    RabbitMQ took it) or RETRYING once its retry is due (since then: its message is back in
    the queue, or held by a worker with no free process). A newsletter's recipients are not
    jobs, its chunks are: a newsletter going out shows the age of its oldest chunk not started.

    Cheap enough for every scrape of /metrics: only the jobs in those states are read, found
    through the index on (state, created_at).
    """
    now = timezone.now()
    waiting = (
        Job.objects.filter(state__in=[Job.State.PENDING, Job.State.QUEUED, Job.State.RETRYING])
        .exclude(next_retry_at__gt=now)  # a retry waits from when it is due, not before
        .values("task_name")
        # Only a retry has next_retry_at, only a published job queued_at.
        .annotate(since=Min(Coalesce("next_retry_at", "queued_at", "created_at")))
    )
    oldest = {}
    for row in waiting:
        queue = queue_of(row["task_name"])
        if queue:
            age = (now - row["since"]).total_seconds()
            oldest[queue] = max(age, oldest.get(queue, 0))
    return oldest


def stalled_queues(stall_seconds, now=None):
    """The work queues that take nothing while a job waits on them (celery#8030): a job was
    queued over `stall_seconds` ago and has not started, no job of the queue started since, and
    none is running on a live lease. Paused queues (jobs/pause.py) are not stalled.

    What the consumer count cannot see: a worker whose process is stopped (SIGSTOP, a VM
    frozen) or whose consumer takes nothing after a reconnection keeps its consumer until
    RabbitMQ's heartbeat gives up on it, or forever. A worker busy with long jobs is not
    stalled: its jobs hold live leases. Three indexed reads of the jobs table.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=stall_seconds)
    waited = Job.objects.filter(state=Job.State.QUEUED, queued_at__lt=cutoff)
    started = Job.objects.filter(started_at__gte=cutoff)
    running = Job.objects.filter(state=Job.State.STARTED, claim_expires_at__gt=now)
    moving = {
        queue_of(name)
        for jobs in (started, running)
        for name in jobs.values_list("task_name", flat=True).distinct()
    }
    waiting = {queue_of(name) for name in waited.values_list("task_name", flat=True).distinct()}
    return sorted(waiting - moving - set(paused()) - {None})


def queue_of(task_name):
    """The name of the queue `task_name` is routed to, or None for a task no route names."""
    route = current_app.amqp.router.lookup_route(task_name)
    return route and route.get("queue")


def workers(expected):
    """[(worker name, queues it serves, tasks it is running)], from two broadcasts.

    Only a broadcast says what each worker runs; the health check needs none
    (jobs/health.py). A broadcast waits up to `timeout` for each next reply, however many
    workers there are, unless told how many replies to expect (`limit`). `expected` is the
    number of consumers RabbitMQ counts on the work queues (consumers_on_work_queues): a
    worker holds one on each queue it serves, so no more workers than that can answer. With
    one queue per worker, as the Procfile runs them but for reports and maintenance, the
    first broadcast ends at the last reply; a worker serving two queues leaves it one reply
    short, waiting out one timeout. The second asks only the workers that answered.
    """
    if not expected:
        return []  # no worker consumes a work queue, or the broker did not answer
    try:
        # A connection of its own: one from the pool may be stale after a broker restart.
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            ask_all = current_app.control.inspect(timeout=1, connection=conn, limit=expected)
            served = ask_all.active_queues() or {}
            names = sorted(served)
            active = {}
            if names:  # (no destination at all would ask everyone)
                ask_them = current_app.control.inspect(
                    names, timeout=1, connection=conn, limit=len(names)
                )
                active = ask_them.active() or {}
    except Exception:
        return []
    return [(name, sorted(q["name"] for q in served[name]), active.get(name, [])) for name in names]


def consumers_on_work_queues(rows):
    """How many consumers RabbitMQ counts on the work queues of `rows` (0 if it did not say)."""
    return sum(row.consumers or 0 for row in rows if row.kind == "jobs")


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


# The chart's colours, also those of its legend on the page.
SUCCEEDED_COLOUR = "#16a34a"
FAILED_COLOUR = "#dc2626"
WAIT_P50_COLOUR = "#2563eb"
WAIT_P95_COLOUR = "#ea580c"
# Chart geometry in SVG units (the drawing scales to the page's width): room on the left for
# the counts of the y-axis, below for the times of the x-axis.
CHART_WIDTH, CHART_HEIGHT = 600, 170
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 40, 596, 8, 146


def bars_svg(buckets, label=f"tasks finished per {BUCKET_MINUTES} minutes", label_every=3):
    """Stacked bars, succeeded under failed, one per bucket, on a y-axis of round counts; the
    time of every `label_every`th bucket under it.

    Built from numbers only (counts, and times formatted as HH:MM): the view marks it safe.
    The bars are painted by their fill attribute and carry no class "bar": the site's
    stylesheet paints `.chart .bar` in its accent blue (for the sales chart), and a stylesheet
    rule wins over an SVG fill attribute.
    """
    ticks = count_ticks(max((b["succeeded"] + b["failed"] for b in buckets), default=0))
    top = ticks[-1]
    plot_height = PLOT_BOTTOM - PLOT_TOP
    slot = (PLOT_RIGHT - PLOT_LEFT) / len(buckets)

    def y_of(count):
        return PLOT_BOTTOM - plot_height * count / top

    parts = [_svg_start(label)]
    parts += _y_axis(ticks, y_of)
    for i, bucket in enumerate(buckets):
        x = PLOT_LEFT + i * slot + 2
        ok_y = y_of(bucket["succeeded"])
        bad_y = y_of(bucket["succeeded"] + bucket["failed"])
        bar = f'x="{x:.1f}" width="{slot - 4:.1f}"'
        parts.append(
            f'<rect class="succeeded" fill="{SUCCEEDED_COLOUR}" {bar} '
            f'y="{ok_y:.1f}" height="{PLOT_BOTTOM - ok_y:.1f}">'
            f"<title>{bucket['succeeded']} succeeded</title></rect>"
            f'<rect class="failed" fill="{FAILED_COLOUR}" {bar} '
            f'y="{bad_y:.1f}" height="{ok_y - bad_y:.1f}">'
            f"<title>{bucket['failed']} failed</title></rect>"
        )
        if i % label_every == 0:
            parts.append(_time_label(x, bucket["start"]))
    parts.append("</svg>")
    return "".join(parts)


def history_charts(history):
    """[(queue, finished chart, wait chart)] for the queues that ran anything in the day
    (jobs/history.py: last_day). Prometheus's increases are estimates, rounded here."""
    charts = []
    for queue in history:
        if not any(h["succeeded"] or h["failed"] for h in queue.hours):
            continue
        counts = [
            {
                "start": h["start"],
                "succeeded": round(h["succeeded"] or 0),
                "failed": round(h["failed"] or 0),
            }
            for h in queue.hours
        ]
        finished = bars_svg(counts, label=f"{queue.queue}: jobs finished per hour")
        charts.append((queue.queue, finished, wait_svg(queue.hours)))
    return charts


def wait_svg(hours):
    """A dot per hour for the wait's p50 and one for its p95, in milliseconds, on a y-axis of
    round milliseconds; an hour without jobs has none. Built from numbers only, like bars_svg."""
    series = {"p50": [h["wait_p50"] for h in hours], "p95": [h["wait_p95"] for h in hours]}
    as_ms = {
        name: [None if v is None else v * 1000 for v in values] for name, values in series.items()
    }
    ticks = count_ticks(int(max((v for vs in as_ms.values() for v in vs if v), default=0)) + 1)
    top = ticks[-1]
    slot = (PLOT_RIGHT - PLOT_LEFT) / len(hours)

    def y_of(ms):
        return PLOT_BOTTOM - (PLOT_BOTTOM - PLOT_TOP) * ms / top

    parts = [_svg_start("wait from queued to started, p50 and p95, per hour")]
    parts += _y_axis(ticks, y_of, unit=" ms")
    for name, colour in (("p50", WAIT_P50_COLOUR), ("p95", WAIT_P95_COLOUR)):
        for i, ms in enumerate(as_ms[name]):
            if ms is None:
                continue
            x = PLOT_LEFT + (i + 0.5) * slot
            parts.append(
                f'<circle class="wait-{name}" fill="{colour}" cx="{x:.1f}" cy="{y_of(ms):.1f}" '
                f'r="3"><title>{name} {ms:,.0f} ms</title></circle>'
            )
    for i, hour in enumerate(hours):
        if i % 3 == 0:
            parts.append(_time_label(PLOT_LEFT + i * slot + 2, hour["start"]))
    parts.append("</svg>")
    return "".join(parts)


def _svg_start(label):
    return (
        f'<svg class="chart" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" '
        f'aria-label="{label}">'
    )


def _y_axis(ticks, y_of, unit=""):
    """A gridline and a label for each tick, at the height `y_of(tick)`."""
    parts = []
    for tick in ticks:
        y = f"{y_of(tick):.1f}"
        parts.append(
            f'<line class="grid" stroke="#e4e7ec" x1="{PLOT_LEFT}" x2="{PLOT_RIGHT}" '
            f'y1="{y}" y2="{y}"/>'
            f'<text class="axis y-axis" font-size="11" fill="#64748b" x="{PLOT_LEFT - 6}" '
            f'y="{y}" dy="0.32em" text-anchor="end">{tick:,}{unit}</text>'
        )
    return parts


def _time_label(x, at):
    label = timezone.localtime(at).strftime("%H:%M")
    return (
        f'<text class="axis x-axis" font-size="11" fill="#64748b" x="{x:.1f}" '
        f'y="{PLOT_BOTTOM + 16}">{label}</text>'
    )


def count_ticks(peak, most=5):
    """Round counts for a y-axis from 0 to at least `peak`, at most `most` of them:
    [0, 5, 10, 15] for 13, [0, 1000, 2000, 3000] for 2,579, [0, 1] for nothing at all.

    The step is the first of 1, 2, 5, 10, 20, 50, ... that reaches `peak` in `most` - 1 steps:
    counts are whole, so no step below 1.
    """
    steps = (factor * 10**power for power in itertools.count() for factor in (1, 2, 5))
    step = next(step for step in steps if step * (most - 1) >= peak)
    top = max(step, -(-peak // step) * step)  # peak rounded up to a step; at least one step
    return list(range(0, top + 1, step))

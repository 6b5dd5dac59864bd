"""The dashboard's last 24 hours, per queue, read back from Prometheus.

/metrics (jobs/metrics.py) gives Prometheus the running totals; Prometheus keeps them (the
demo's keeps 15 days) and answers range queries, so the dashboard asks it instead of counting
rows of its own. Each chart is one query_range over 24 hours in hourly steps:

- finished jobs per hour, succeeded and failed apart;
- the wait, queued to started, p50 and p95 over each hour (from the histogram's buckets).

Prometheus down, or not configured (PROMETHEUS_URL empty), is not an error for the page: the
history says it is unavailable, and everything else on the dashboard still shows.
"""

import json
import logging
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from jobs import conf

logger = logging.getLogger(__name__)

HOURS = 24
STEP = timedelta(hours=1)
FINISHED = 'sum by (queue) (increase(shopjobs_jobs_finished_total{{outcome="{}"}}[1h]))'
WAIT = "histogram_quantile({}, sum by (queue, le) (rate(shopjobs_job_wait_seconds_bucket[1h])))"
QUERIES = {
    "succeeded": FINISHED.format("succeeded"),
    "failed": FINISHED.format("failed"),
    "wait_p50": WAIT.format(0.5),
    "wait_p95": WAIT.format(0.95),
}


@dataclass
class QueueHistory:
    queue: str
    # One dict per hour, oldest first: {"start", "succeeded", "failed", "wait_p50", "wait_p95"}.
    hours: list = field(default_factory=list)


def last_day(queues, now=None):
    """[QueueHistory] for `queues`, or None when Prometheus does not answer."""
    if not conf.PROMETHEUS_URL:
        return None
    end = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0) + STEP
    start = end - HOURS * STEP
    series = {}
    try:
        for name, query in QUERIES.items():
            series[name] = query_range(query, start, end)
    except Exception as exc:  # the page still shows what the broker and the database know
        logger.warning("no history from Prometheus at %s: %r", conf.PROMETHEUS_URL, exc)
        return None
    starts = [start + i * STEP for i in range(HOURS)]
    history = []
    for queue in queues:
        hours = []
        for hour in starts:
            # Prometheus stamps a value at the end of the hour it covers.
            at = (hour + STEP).timestamp()
            row = {name: series[name].get(queue, {}).get(at) for name in QUERIES}
            hours.append({"start": hour, **row})
        history.append(QueueHistory(queue, hours))
    return history


def query_range(query, start, end):
    """{queue: {unix time: value}} for a PromQL range query; NaN (no data) left out."""
    params = urllib.parse.urlencode(
        {"query": query, "start": start.timestamp(), "end": end.timestamp(), "step": STEP.seconds}
    )
    url = f"{conf.PROMETHEUS_URL.rstrip('/')}/api/v1/query_range?{params}"
    with urllib.request.urlopen(url, timeout=2) as response:
        answer = json.load(response)
    if answer.get("status") != "success":
        raise RuntimeError(f"Prometheus answered {answer.get('error', answer)}")
    values = {}
    for result in answer["data"]["result"]:
        queue = result["metric"].get("queue", "")
        values[queue] = {
            float(at): float(value)
            for at, value in result["values"]
            if value not in ("NaN", "+Inf")
        }
    return values

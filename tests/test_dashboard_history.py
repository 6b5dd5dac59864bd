"""The dashboard's 24 hours, read back from a real Prometheus.

A day cannot be waited for in a test, so it is written: a day and a half of the shop's metrics
as /metrics would have shown them every 5 minutes, turned into Prometheus blocks by
`promtool tsdb create-blocks-from openmetrics` (Prometheus's own backfill), then a real
Prometheus serves them to the dashboard's range queries.
"""

import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from jobs import history
from monitoring import find_program
from testkit.faults import free_port
from testkit.monitoring import Prometheus, missing_programs
from tests.components import missing

pytestmark = pytest.mark.django_db

STEP = timedelta(minutes=5)
# Per 5 minutes on `emails`: 10 jobs succeed and 1 fails (120 and 12 an hour); of the 11
# waits, 6 are under 50 ms and 5 between 0.5 s and 1 s.
SUCCEEDED, FAILED = 10, 1
WAITS = {"0.05": 6, "0.1": 6, "0.25": 6, "0.5": 6, "1": 11}


def openmetrics(start, end):
    """The shop's counters and wait histogram from `start` to `end`, OpenMetrics with times."""
    times = []
    at = start
    while at <= end:
        times.append(at)
        at += STEP
    lines = ["# TYPE shopjobs_jobs_finished counter"]
    for outcome, per_step in (("succeeded", SUCCEEDED), ("failed", FAILED)):
        labels = f'kind="order_confirmation",outcome="{outcome}",queue="emails"'
        lines += [
            f"shopjobs_jobs_finished_total{{{labels}}} {i * per_step} {t.timestamp():.0f}"
            for i, t in enumerate(times)
        ]
    lines.append("# TYPE shopjobs_job_wait_seconds histogram")
    total = SUCCEEDED + FAILED
    for le in [str(b) for b in history_buckets()] + ["+Inf"]:
        per_step = WAITS.get(le, total)
        lines += [
            f'shopjobs_job_wait_seconds_bucket{{le="{le}",queue="emails"}} {i * per_step} '
            f"{t.timestamp():.0f}"
            for i, t in enumerate(times)
        ]
    for suffix, per_step in (("count", total), ("sum", 3.0)):
        name = f"shopjobs_job_wait_seconds_{suffix}"
        lines += [
            f'{name}{{queue="emails"}} {i * per_step} {t.timestamp():.0f}'
            for i, t in enumerate(times)
        ]
    return "\n".join(lines) + "\n# EOF\n"


def history_buckets():
    from jobs.metrics import BUCKETS

    return [f"{b:g}" for b in BUCKETS]


@pytest.fixture
def prometheus_with_a_day(tmp_path, settings):
    if absent := missing_programs("prometheus", "promtool"):
        missing(", ".join(absent), "scripts/ensure-prometheus.sh installs them")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    source = tmp_path / "day.om"
    source.write_text(openmetrics(now - timedelta(hours=36), now - timedelta(minutes=1)))
    data = tmp_path / "prometheus" / "data"
    subprocess.run(
        [find_program("promtool"), "tsdb", "create-blocks-from", "openmetrics", source, data],
        check=True,
        capture_output=True,
        timeout=120,
    )
    unreachable = f"127.0.0.1:{free_port()}"
    prometheus = Prometheus(
        free_port(), tmp_path / "prometheus", shop=unreachable, rabbitmq=unreachable,
        flower=unreachable, alertmanager=unreachable,
    ).start()  # fmt: skip
    settings.PROMETHEUS_URL = prometheus.url
    yield prometheus
    prometheus.stop()


def test_a_day_of_history_per_queue_from_prometheus(prometheus_with_a_day):
    (emails,) = history.last_day(["emails"])
    assert len(emails.hours) == 24
    full_hours = emails.hours[:-1]  # the last one is this hour, so far
    for hour in full_hours:
        assert hour["succeeded"] == pytest.approx(120, rel=0.1)
        assert hour["failed"] == pytest.approx(12, rel=0.1)
        assert hour["wait_p50"] <= 0.05
        assert 0.5 < hour["wait_p95"] <= 1
    assert [h["start"] for h in emails.hours] == sorted(h["start"] for h in emails.hours)


def test_the_dashboard_draws_the_day_and_says_when_prometheus_is_away(
    prometheus_with_a_day, client, settings
):
    client.force_login(get_user_model().objects.create_superuser("boss", "b@example.com", "pw"))
    page = client.get(reverse("jobs:dashboard")).content.decode()
    assert "Last 24 hours" in page
    assert "120 succeeded" in page and "12 failed" in page  # a bar's tooltip, an hour of emails
    assert page.count('class="wait-p95"') in (23, 24), "a dot per full hour (this one's, if any)"
    assert "<h3>media</h3>" not in page, "a queue that ran nothing has no charts"

    prometheus_with_a_day.stop()
    page = client.get(reverse("jobs:dashboard")).content.decode()
    assert "Prometheus does not answer" in page

"""5. Sales reports: a report over 100,000 orders on the `reports` worker, against the same
report function called directly in a plain process.

The database is filled once with ORDERS orders of 1 to 4 lines over the last 180 days, the way
`seed_demo --orders` does it (demo.order_history.seed_order_history). Each
run builds the report of that whole range, alternating run by run:

- in-process (baseline): one Python process (bench/plain.py), Django set up, calls
  shop.reports.run_sales_report directly: the same chunked queries, progress updates, CSV
  written to the storage and figures, without a worker, a broker or the job runner. The
  fastest the report can be built with this code, and the memory it needs at the least;
- ours: the report asked for as the staff page asks for it (shop.services.request_sales_report:
  the report row, its job recorded and published on commit) and built by the reports worker
  of the Procfile (`--queues reports,maintenance --concurrency 2`); timed from the request to
  the moment the job is marked done.

Rows/s is CSV rows (order lines) per second. Peak memory per worker process: the high-water
mark of resident memory (VmHWM in /proc/<pid>/status, the figure --max-memory-per-child checks
after each task) of each pool process, watched while it works (bench/memory.py); the
baseline's is its own VmHWM. Both include what the process held before the report (Python,
Django, and for the worker Celery and every task module): the JSON has that too.
"""

import random
import time
from datetime import timedelta
from decimal import Decimal

from bench.broker import retry_on_broker_drop
from bench.environment import QUICK
from bench.memory import MB, PoolPeaks
from bench.plain import in_own_process
from bench.processes import running, start_worker, wait_ready
from bench.shop_data import seconds_until_last_finished, wait_for_jobs
from bench.stats import Report, Result, alternate, peak_memory, rates, say

NAME = "reports"
ORDERS = 10_000 if QUICK else 100_000
ROUNDS = 2
GOAL_PEAK_MB = 150
BASELINE = "in-process"


def run(env):
    from django.utils import timezone

    from demo.order_history import HISTORY_DAYS, seed_order_history
    from shop import reports, services
    from shop.tasks import build_sales_report

    with running():
        # The worker boots while the orders are written: on 2 cores, side by side is faster.
        worker = start_worker(
            env, f"{NAME}-worker", queues=("reports", "maintenance"), concurrency=2, wait=False
        )
        catalog()
        say(f"{NAME}: seeding {ORDERS:,} orders")
        started = time.monotonic()
        lines = seed_order_history(ORDERS, random.Random(3))
        seeding = time.monotonic() - started
        today = timezone.localdate()
        date_from, date_to = today - timedelta(days=HISTORY_DAYS), today - timedelta(days=1)
        wait_ready(worker)
        peaks = PoolPeaks(worker)

        def in_process(i):
            report, _ = reports.find_or_create_report(date_from, date_to)
            result = in_own_process(env, "report", report.pk)
            say(f"{result['rows'] / result['seconds']:,.0f} rows/s ({BASELINE})")
            return result

        def ours(i):
            def once():
                with peaks:
                    started = time.time()
                    report, _ = services.request_sales_report(date_from, date_to, None)
                    [job] = wait_for_jobs([build_sales_report.job_key(report.pk)])
                report.refresh_from_db()
                return {
                    "seconds": seconds_until_last_finished([job], started),
                    "rows": job.outcome["rows"],
                    # Of which: from the request until the worker claimed the job, and the
                    # report's own build (run_sales_report, as the baseline times it).
                    "until_claimed": job.started_at.timestamp() - started,
                    "building": (report.finished_at - report.started_at).total_seconds(),
                }

            result = retry_on_broker_drop(once)
            say(f"{result['rows'] / result['seconds']:,.0f} rows/s (ours)")
            return result

        say(f"{NAME}: a report of {lines:,} rows, {ROUNDS} runs per side")
        runs = alternate({BASELINE: in_process, "ours": ours}, ROUNDS)
    return report(runs, peaks, lines, seeding)


def catalog():
    """A dozen products to sell: seed_order_history makes a few best sellers and a long tail."""
    from shop.models import Product

    Product.objects.bulk_create(
        Product(
            name=f"Report product {n}", slug=f"report-product-{n}", price=Decimal(f"{5 + 7 * n}.90")
        )
        for n in range(12)
    )


def report(runs, peaks, lines, seeding):
    per_second = rates(runs, "rows")
    results = [
        Result(
            NAME, f"rows/s, {ORDERS:,} orders", "rows/s", per_second[BASELINE],
            per_second["ours"], BASELINE, "ours",
        ),
        peak_memory(NAME, runs, BASELINE, peaks, "ours (worker)", GOAL_PEAK_MB),
    ]  # fmt: skip
    details = {
        "orders": ORDERS,
        "rows": lines,
        "seeding_seconds": round(seeding, 1),
        "runs_per_side": ROUNDS,
        "rows_per_second": per_second,
        "runs": runs,
        **peaks.as_dict(),
        "baseline_rss_mb_before_report": [
            round(r["before"]["VmRSS"] / MB, 1) for r in runs[BASELINE]
        ],
    }
    notes = [
        f"{side}: a report of {r['rows']:,} rows instead of {lines:,}"
        for side, side_runs in runs.items()
        for r in side_runs
        if r["rows"] != lines
    ]
    return Report(NAME, results, details, notes)

"""Run the benchmarks, print the table, write bench/results/latest.json.

    make bench                      # everything, under 10 minutes on 2 cores
    make bench QUICK=1              # a smaller version, under 2 minutes
    make bench ALT=1                # also the alternatives to our configuration
    .venv/bin/python -m bench priority throughput   # some of them (written to partial.json)

Each benchmark is one module of this package with `NAME` and `run(env) -> Report`; adding
one is adding its module name to BENCHMARKS.
"""

import importlib
import json
import sys
import time
import traceback
from pathlib import Path

from bench import setup
from bench.environment import ALT, QUICK, VHOST
from bench.stats import Report, say, table

BENCHMARKS = [
    "checkout_latency",
    "throughput",
    "priority",
    "newsletter",
    "scaling",
    "thumbnails",
    "reports",
    "queue_types",
]
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def main(argv=None):
    selected = (sys.argv[1:] if argv is None else argv) or BENCHMARKS
    unknown = set(selected) - set(BENCHMARKS)
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(sorted(unknown))}; known: {BENCHMARKS}")
    started = time.monotonic()
    env = setup.set_up()
    say(f"{kind()} run in {env.dir}, vhost {VHOST}")
    machine = setup.machine()
    reports = []
    try:
        for name in selected:
            module = importlib.import_module(f"bench.{name}")
            say(f"--- {module.NAME}")
            t0 = time.monotonic()
            try:
                report = module.run(env)
            except Exception:
                traceback.print_exc()
                report = Report(module.NAME, error=traceback.format_exc(limit=3))
            report.details["seconds"] = round(time.monotonic() - t0, 1)
            reports.append(report)
    finally:
        setup.tear_down(env)
    output = {
        "quick": QUICK,
        "alternatives": ALT,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.monotonic() - started, 1),
        "machine": machine,
        "benchmarks": [report.as_dict() for report in reports],
    }
    print(table(reports))
    print(f"\n{output['seconds']:.0f} s on {machine['cores']} cores; Python {machine['python']}, "
          f"Celery {machine['celery']}, RabbitMQ {machine['rabbitmq']}")  # fmt: skip
    write(output, every=set(selected) == set(BENCHMARKS))
    return 1 if any(report.error for report in reports) else 0


def kind():
    """quick or full, and -alt with the alternatives: also the name of the results file."""
    return ("quick" if QUICK else "full") + ("-alt" if ALT else "")


def write(output, every):
    RESULTS_DIR.mkdir(exist_ok=True)
    names = ["latest.json", f"{kind()}.json"] if every else []
    for name in names or ["partial.json"]:
        (RESULTS_DIR / name).write_text(json.dumps(output, indent=2, ensure_ascii=False) + "\n")
        print(f"written: {RESULTS_DIR / name}")


if __name__ == "__main__":
    sys.exit(main())

"""config.settings with a few settings changed: for workers that measure an alternative.

The changes come as JSON in BENCH_SETTINGS, e.g. '{"CELERY_WORKER_SEND_TASK_EVENTS": false}'.
Only the benchmarks use it (bench/throughput.py, bench/priority.py): config/ is not changed
by a benchmark, an alternative is measured beside it and recommended in the README.
"""

import json
import os

from config.settings import *  # noqa: F403

globals().update(json.loads(os.environ.get("BENCH_SETTINGS", "{}")))

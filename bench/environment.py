"""Where the benchmarks run: the run's flags, the broker, its vhost, and the Environment.

QUICK=1 makes a short run; ALT=1 measures the alternatives to our configuration too. The vhost
is each run's own (`shop_jobs_bench_<random>`, created empty by bench/setup.py and deleted at
the end; BENCH_RABBITMQ_VHOST names one). An Environment is what every benchmark is given: the
run's folder, broker and database, and the environment of the processes it starts.
"""

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path


def _flag(name):
    return os.environ.get(name, "").strip().lower() not in {"", "0", "false", "no"}


QUICK = _flag("QUICK")
# ALT=1 also measures the alternatives to our configuration (WORKER_VARIANTS in
# bench/processes.py, bare Celery with late acks, the checkout publishing at the commit): a few
# minutes more.
ALT = _flag("ALT")
BROKER_URL = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
MANAGEMENT_API = os.environ.get("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672/api")
# A vhost of each run's own, deleted at the end: other people on this machine run workers and
# benchmarks of their own, and a fixed name would let theirs and ours take each other's
# messages (it happened). BENCH_RABBITMQ_VHOST names one explicitly.
VHOST = os.environ.get("BENCH_RABBITMQ_VHOST") or f"shop_jobs_bench_{uuid.uuid4().hex[:8]}"


@dataclass
class Environment:
    dir: Path
    broker_url: str
    database_url: str
    # The broker without the vhost, and its management API: what wait_for_broker() asks.
    broker_root_url: str = BROKER_URL
    management_api: str = MANAGEMENT_API
    # For processes on another broker or topology than this process's (broker_side()): more
    # environment variables for them, and the Celery app that publishes to and controls them.
    extra_env: dict = field(default_factory=dict)
    celery_app: object = None
    queue_type: str | None = None  # None: this process's (config.queues.QUEUE_TYPE)

    def service_env(self, **extra):
        """Environment for a process of the benchmark (web, worker, sink)."""
        return {**os.environ, **self.extra_env, **{k: str(v) for k, v in extra.items()}}

    @property
    def app(self):
        """The Celery app that publishes to this environment's broker and controls its workers:
        the shop's own (config.celery), unless the environment is another broker's."""
        if self.celery_app is not None:
            return self.celery_app
        from config.celery import app

        return app

    def log(self, name):
        return self.dir / f"{name}.log"

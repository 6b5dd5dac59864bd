"""What every benchmark shares: an isolated set-up, the real processes, alternation, statistics.

Isolation: a RabbitMQ vhost of each run's own (`shop_jobs_bench_<random>`, created empty and
deleted at the end; BENCH_RABBITMQ_VHOST names one), an SQLite database in a temporary folder
(migrated by `manage.py migrate` in a subprocess) and SMTP sinks on free ports. The demo's
queues, database and outbox are never touched. The processes are the ones the tests start
(tests/processes.py), run from this checkout with environment variables, as in production:
DEBUG off.
"""

import atexit
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from amqp.exceptions import AMQPError
from kombu import Connection
from kombu.exceptions import OperationalError as KombuOperationalError

from tests import rabbitmq
from tests.faults import free_port
from tests.processes import ROOT, ServiceProcess, SmtpSink, Worker, wait_for


def _flag(name):
    return os.environ.get(name, "").strip().lower() not in {"", "0", "false", "no"}


QUICK = _flag("QUICK")
# ALT=1 also measures the alternatives to our configuration (WORKER_VARIANTS below, bare
# Celery with late acks, the checkout publishing at the commit): a few minutes more.
ALT = _flag("ALT")
BROKER_URL = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
MANAGEMENT_API = os.environ.get("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672/api")
# A vhost of each run's own, deleted at the end: other people on this machine run workers and
# benchmarks of their own, and a fixed name would let theirs and ours take each other's
# messages (it happened). BENCH_RABBITMQ_VHOST names one explicitly.
VHOST = os.environ.get("BENCH_RABBITMQ_VHOST") or f"shop_jobs_bench_{uuid.uuid4().hex[:8]}"


# --- Set-up -------------------------------------------------------------------------------------


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


def set_up():
    """Empty vhost, migrated database, Django set up in this process; returns the Environment.

    This process plays the publisher (the web process of the throughput and priority
    benchmarks), so it gets the same settings as the processes it starts.
    """
    folder = Path(tempfile.mkdtemp(prefix="shop-jobs-bench-"))
    wait_for_broker()
    rabbitmq.ManagementAPI(BROKER_URL, MANAGEMENT_API).recreate_vhost(VHOST)
    env = Environment(
        dir=folder,
        broker_url=rabbitmq.with_vhost(BROKER_URL, VHOST),
        database_url=f"sqlite:///{folder / 'bench.sqlite3'}",
    )
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=env.database_url,
        CELERY_BROKER_URL=env.broker_url,
        VAR_DIR=str(folder),
        MEDIA_ROOT=str(folder / "media"),
        STATIC_ROOT=str(folder / "static"),
        # Production-like: DEBUG off (no query log in web or workers), plain HTTP on loopback.
        DEBUG="false",
        SECRET_KEY="benchmark-only-secret-key-" + "x" * 40,
        SECURE_SSL_REDIRECT="false",
        LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "INFO"),
    )
    # With DEBUG off, as a deployment does; side by side, they touch different things.
    commands = [
        subprocess.Popen([sys.executable, "manage.py", command, "--noinput", "-v", "0"], cwd=ROOT)
        for command in ("migrate", "collectstatic")
    ]
    for command in commands:
        if command.wait() != 0:
            raise subprocess.CalledProcessError(command.returncode, command.args)
    import django

    django.setup()
    from config import queues
    from config.celery import app

    with app.connection_for_write() as connection:
        queues.declare_topology(connection)
    return env


def tear_down(env):
    """Close this process's broker connections; remove the folder unless BENCH_KEEP is set."""
    from config.celery import app

    stop_everything()
    app.pool.force_close_all()
    try:  # nothing left behind can reconnect to the benchmark's queues
        api = rabbitmq.ManagementAPI(BROKER_URL, MANAGEMENT_API)
        api.call("DELETE", f"/vhosts/{urllib.parse.quote(VHOST, safe='')}")
    except OSError as exc:
        say(f"could not delete the vhost {VHOST}: {exc!r}")
    if os.environ.get("BENCH_KEEP"):
        say(f"kept {env.dir} (BENCH_KEEP)")
    else:
        shutil.rmtree(env.dir, ignore_errors=True)


def machine():
    import celery
    import django
    import gunicorn
    import kombu

    api = rabbitmq.ManagementAPI(BROKER_URL, MANAGEMENT_API)
    return {
        "cores": os.cpu_count(),
        "rabbitmq": api.call("GET", "/overview").get("rabbitmq_version"),
        "celery": celery.__version__,
        "kombu": kombu.__version__,
        "django": django.__version__,
        "gunicorn": gunicorn.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# --- Processes ----------------------------------------------------------------------------------

# Every process a benchmark starts, recorded the moment it is spawned: whatever goes wrong
# afterwards, stop_everything() (called by the runner, and at exit) leaves none behind.
STARTED = []


def spawned(process):
    STARTED.append(process)
    return process


def stop_everything():
    stop_all([p for p in STARTED if p.proc is not None])
    STARTED.clear()


atexit.register(stop_everything)


@contextmanager
def running():
    """Every process started inside the block is stopped when the block ends, however it ends."""
    first = len(STARTED)
    try:
        yield
    finally:
        stop_all(STARTED[first:])
        del STARTED[first:]


# Alternatives to our worker configuration, measured beside it with ALT=1 (config/ is not
# changed by a benchmark): settings overridden through bench/settings_variant.py. Task events
# on is what our workers do while Flower watches them (it turns them on).
WORKER_VARIANTS = {
    "alt: task events on": {"CELERY_WORKER_SEND_TASK_EVENTS": True},
    "alt: prefetch 2": {"CELERY_WORKER_PREFETCH_MULTIPLIER": 2},
    "alt: prefetch 4": {"CELERY_WORKER_PREFETCH_MULTIPLIER": 4},
}
if not ALT:
    WORKER_VARIANTS = {}


def variant_env(overrides):
    """Environment for a process running config.settings with `overrides`."""
    return {
        "DJANGO_SETTINGS_MODULE": "bench.settings_variant",
        "BENCH_SETTINGS": json.dumps(overrides),
    }


def worker_sides():
    """Our worker and each alternative of WORKER_VARIANTS: {label: start_worker options}."""
    return {"ours": {}, **{label: variant_env(o) for label, o in WORKER_VARIANTS.items()}}


def start_worker(
    env, name, *, app_module="config", queues=("emails",), concurrency=2, args=(), wait=True,
    **extra,
):  # fmt: skip
    """A real `celery -A <app_module> worker`, like the tests' but for any app module.

    `args` are more command-line options (e.g. the Procfile's); `extra` goes into the worker's
    environment (e.g. a variant's settings). With wait=False it is only spawned: wait_ready()
    it, with others started beside it (on 2 cores, starting them side by side is faster).
    """
    worker = Worker(
        env.app,
        queues,
        env=env.service_env(**extra),
        log_path=env.log(name),
        concurrency=concurrency,
    )
    worker.args[worker.args.index("config")] = app_module
    worker.args += list(args)
    spawned(worker).start(wait=False)
    if wait:
        wait_ready(worker)
    return worker


def wait_ready(*processes):
    """Wait until every one of `processes` (workers, gunicorns) answers."""
    for process in processes:
        retry_on_broker_drop(process.wait_ready)


def start_email_workers(env, name, sides, envs=None):
    """An SMTP sink, and a worker per side ({label: start_worker options}) that sends to it.

    `envs` ({label: Environment}) runs a side's worker on a broker of its own (broker_side());
    the others run in `env`. Returns (sink, {label: worker}); stopped at the end of the
    `running()` block around it.
    """
    envs = envs or {}
    sink = start_sink(env, f"{name}-sink")
    workers = {
        label: start_worker(
            envs.get(label, env), f"{name}-{n}", EMAIL_PORT=sink.port, wait=False, **options
        )
        for n, (label, options) in enumerate(sides.items())
    }
    wait_ready(*workers.values())
    return sink, workers


def start_sink(env, name="smtp-sink", latency=0.0):
    sink = spawned(
        SmtpSink(
            port=free_port(),
            maildir=env.dir / name,
            control=env.dir / f"{name}.json",
            # The sink is the demo's stand-in for a mail provider: its command is in demo/,
            # which DEBUG off leaves out unless asked for, as compose's smtp-sink does.
            env=env.service_env(DEMO="1"),
            log_path=env.log(name),
        )
    ).start()
    if latency:
        # The command line sets latency 0 at start; the sink reads its knobs for every message.
        sink.set(latency=latency)
    return sink


class Gunicorn(ServiceProcess):
    """The shop served by gunicorn (sync workers), with the settings module given."""

    name = "gunicorn"

    def __init__(self, env, name, settings_module="config.settings", workers=1, **extra):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [
            sys.executable, "-m", "gunicorn", "config.wsgi:application",
            "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
            "--log-level", "warning",
        ]  # fmt: skip
        super().__init__(
            args,
            env.service_env(DJANGO_SETTINGS_MODULE=settings_module, **extra),
            env.log(name),
        )

    def start(self, wait=True):
        spawned(self)
        super().start()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self):
        def answers():
            self.assert_running()
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_for(answers, 60, interval=0.2, message=f"gunicorn on port {self.port}")


def stop_all(processes):
    for process in reversed(processes):
        if process.proc is not None and not process._log.closed:
            process.stop()


# --- Queues, workers, publishing ---------------------------------------------------------------

BROKER_ERRORS = (OSError, AMQPError, KombuOperationalError)  # socket errors are OSErrors


def broker_answers(broker_url=BROKER_URL, management_api=MANAGEMENT_API):
    try:
        rabbitmq.ManagementAPI(broker_url, management_api).call("GET", "/overview")
        with Connection(broker_url, connect_timeout=2) as connection:
            connection.connect()
    except Exception:
        return False
    return True


def wait_for_broker(timeout=300, env=None):
    """Wait until the broker answers: the system's, or `env`'s (broker_side())."""
    where = (env.broker_root_url, env.management_api) if env else (BROKER_URL, MANAGEMENT_API)
    wait_for(lambda: broker_answers(*where), timeout, interval=1, message="RabbitMQ to answer")


def retry_on_broker_drop(run, attempts=4, env=None):
    """Run `run()` again if the broker connection drops under it.

    Other people's tests on this machine restart RabbitMQ's app (`rabbitmqctl stop_app`), which
    drops every connection for a few seconds: a measurement it interrupts is thrown away and
    taken again once RabbitMQ answers and the workers have reconnected.
    """
    for attempt in range(1, attempts + 1):
        try:
            return run()
        except BROKER_ERRORS as exc:
            if attempt == attempts:
                raise
            say(f"broker connection dropped ({exc!r}); taking this measurement again")
            wait_for_broker(env=env)
            time.sleep(5)  # workers reconnect with a back-off of their own
    return None


def consume(app, worker, queue, on):
    """Let `worker` consume `queue` (on=True) or stop it taking more messages from it."""
    control = app.control.add_consumer if on else app.control.cancel_consumer
    replies = control(queue, destination=[worker.nodename], reply=True, timeout=10)
    if not replies:
        raise ConnectionError(f"{worker.nodename} did not answer {'add' if on else 'cancel'}")


def tasks_started(app, worker):
    """How many tasks the worker has started since it began (Celery's own counter)."""
    inspect = app.control.inspect([worker.nodename], timeout=2, limit=1)
    stats = (inspect.stats() or {}).get(worker.nodename)
    if stats is None:
        raise ConnectionError(f"{worker.nodename} did not answer stats")
    return sum(stats["total"].values())


def drain(app, worker, queue, count, timeout=900, interval=0.05):
    """Let `worker` take `count` waiting tasks from `queue`; returns the seconds it took.

    Timed from the moment the worker is told to consume until its counter shows the last one
    started (polled every `interval` s: for no-ops, started is as good as done).
    """
    before = tasks_started(app, worker)
    started = time.monotonic()
    consume(app, worker, queue, True)
    deadline = started + timeout
    while (done := tasks_started(app, worker) - before) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{worker.nodename} started {done} of {count} tasks in time")
        time.sleep(interval)
    seconds = time.monotonic() - started
    consume(app, worker, queue, False)
    return seconds


def publish(app, task_name, args_list, **options):
    """Publish `task_name` once per args on one producer; returns the seconds it took.

    `app` decides how: its routes, priorities and confirms apply.
    """
    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for args in args_list:
            app.send_task(task_name, args=args, producer=producer, **options)
    return time.perf_counter() - started


def shop_app(name, broker_url=None, queue_type=None, confirms=True):
    """A Celery app with the shop's settings (config/settings.py), not the current app.

    `broker_url` and `queue_type` point it at another broker and topology than this process's
    (broker_side()): its queues are then that topology's, as config/queues.py declares them
    under that RABBITMQ_QUEUE_TYPE. confirms=False publishes
    without waiting for RabbitMQ's confirm of each message.
    """
    from celery import Celery

    app = Celery(name, set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    if broker_url:
        # Celery prefers the CELERY_BROKER_URL environment variable (this process's broker) to
        # broker_url, and the read and write URLs to both.
        app.conf.update(
            broker_url=broker_url, broker_read_url=broker_url, broker_write_url=broker_url
        )
    if queue_type:
        from config import queues

        app.conf.update(
            task_queues=[queues.work_queue(name, queue_type) for name in queues.WORK_QUEUE_NAMES],
            task_default_exchange_type=queues.work_exchange(queue_type).type,
        )
    if not confirms:
        app.conf.broker_transport_options = {}
    return app


def bulk_publisher(env=None):
    """The shop's Celery app, minus what makes each publish wait: for filling queues fast.

    Same settings, routes and priorities, so the messages on the queue are the ones the shop
    publishes; only the publisher does not wait for RabbitMQ's confirm of each message. Used
    where publishing is set-up, not what is measured. With `env` of broker_side(), on that
    side's broker and topology.
    """
    if env is not None and env.queue_type is not None:
        return shop_app("bench-bulk", env.broker_url, env.queue_type, confirms=False)
    return shop_app("bench-bulk", confirms=False)


@contextmanager
def broker_side(env, node_urls, management_api, queue_type, vhost):
    """An Environment like `env` whose processes run on another broker and/or topology.

    `node_urls` are the broker's nodes (a cluster's every node: Celery and kombu fail over from
    one to the next), `management_api` one node's API. The vhost is created empty and deleted
    when the block ends (stop the side's processes inside it). The side's processes get
    CELERY_BROKER_URL and RABBITMQ_QUEUE_TYPE; `.app` publishes to them and controls them with
    the queue arguments of `queue_type`, whatever this process's own topology is.
    """
    api = rabbitmq.ManagementAPI(node_urls[0], management_api)
    api.recreate_vhost(vhost)
    url = ";".join(rabbitmq.with_vhost(node_url, vhost) for node_url in node_urls)
    app = shop_app(f"bench-{queue_type}", url, queue_type)
    side = Environment(
        dir=env.dir,
        broker_url=url,
        database_url=env.database_url,
        broker_root_url=node_urls[0],
        management_api=management_api,
        extra_env={"CELERY_BROKER_URL": url, "RABBITMQ_QUEUE_TYPE": queue_type},
        celery_app=app,
        queue_type=queue_type,
    )
    try:
        yield side
    finally:
        app.close()
        try:
            api.call("DELETE", f"/vhosts/{urllib.parse.quote(vhost, safe='')}")
        except OSError as exc:
            say(f"could not delete the vhost {vhost}: {exc!r}")


def pause_consumers(app, workers, queue, env):
    """Stop every one of `workers` consuming `queue`, and check nothing else consumes it.

    The count is read again for a few seconds before giving up: once, on a busy machine, it
    showed one consumer right after the cancels and stopped a whole benchmark (not seen again,
    cause not found; a consumer still being cancelled is the likely one).
    """
    for worker in workers:
        if worker.proc.poll() is None:
            consume(app, worker, queue, False)

    def consumers():
        with Connection(env.broker_url) as connection:
            _, _, count = connection.default_channel.queue_declare(queue, passive=True)
        return count

    try:
        wait_for(lambda: consumers() == 0, timeout=5, interval=0.2, message="no consumers")
    except AssertionError:
        raise RuntimeError(
            f"{consumers()} consumer(s) not started by this benchmark on {queue}"
        ) from None


def refill(env, queue, workers, publisher, task_name, args_list):
    """Publish `task_name` once per args on an empty `queue` that none of `workers` consumes.

    Returns the publish's seconds. Checked again before every run: a worker that reconnected
    after a broker restart consumes its queues again.
    """
    pause_consumers(env.app, workers, queue, env)
    purge(env, queue)
    return publish(publisher, task_name, args_list)


def purge(env, *queue_names):
    rabbitmq.purge(env.broker_url, queue_names)


def depth(env, queue):
    return rabbitmq.queue_depth(env.broker_url, queue)


def bench_product():
    from shop.models import Product

    return Product.objects.get_or_create(
        slug="bench-mug", defaults={"name": "Bench Mug", "price": "12.50"}
    )[0]


def make_orders(count):
    """`count` placed orders of one line each, written in bulk; returns their ids."""
    from shop.models import Order, OrderLine

    product = bench_product()
    orders = Order.objects.bulk_create(
        (
            Order(
                customer_name=f"Customer {i}", email=f"c{i}@example.com", shipping_address="1 Road"
            )
            for i in range(count)
        ),
        batch_size=1000,
    )
    OrderLine.objects.bulk_create(
        (
            OrderLine(
                order=o,
                product=product,
                product_name=product.name,
                unit_price=product.price,
                quantity=1,
            )
            for o in orders
        ),
        batch_size=1000,
    )
    return [o.pk for o in orders]


def wait_for_jobs(keys, timeout=600):
    """Wait until every job of `keys` has finished; returns [Job]. A failed one is an error."""
    from jobs.models import Job

    def finished():
        jobs = list(Job.objects.filter(key__in=keys, state__in=Job.FINAL_STATES))
        return jobs if len(jobs) == len(keys) else None

    # Polled gently: the figures come from the jobs' own finished_at, not from noticing it.
    jobs = wait_for(finished, timeout, interval=0.25, message=f"{len(keys)} jobs to finish")
    failed = [job for job in jobs if job.state != Job.State.SUCCEEDED]
    if failed:
        raise RuntimeError(f"{len(failed)} job(s) failed, e.g. {failed[0].last_error!r}")
    return jobs


def seconds_until_last_finished(jobs, since):
    """From `since` (epoch seconds) to the moment the last of `jobs` was marked done."""
    return max(job.finished_at.timestamp() for job in jobs) - since


# --- Alternation and statistics -----------------------------------------------------------------


def alternate(variants, rounds):
    """Run each variant once per round, alternating who goes first; returns {name: [result]}.

    `variants` is {name: callable(round_index)}. Round 0 runs A, B; round 1 B, A; ... so
    neither profits from a warmer machine or suffers the other's leftovers more often.
    """
    names = list(variants)
    results = {name: [] for name in names}
    for i in range(rounds):
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            results[name].append(variants[name](i))
    return results


def interleaved(names, count, seed=0):
    """`count` rounds of every name, each round in a shuffled order: for per-request A/B/C."""
    rng = random.Random(seed)
    for _ in range(count):
        order = list(names)
        rng.shuffle(order)
        yield from order


def rates(runs, what):
    """{side: the median over its runs of `what` per second}, runs as alternate() returns them."""
    return {side: median([r[what] / r["seconds"] for r in rs]) for side, rs in runs.items()}


def peak_memory(benchmark, runs, baseline, peaks, ours_label, goal_mb):
    """The line of peak memory per process: the baseline's own (bench/plain.py reports its
    VmHWM; the highest of its runs) against the highest of the worker's pool processes."""
    from bench.memory import MB

    baseline_peak, peak = max(r["peak"] for r in runs[baseline]) / MB, peaks.peak / MB
    return Result(
        benchmark, "peak memory per process", "MB", baseline_peak, peak, baseline, ours_label,
        goal=f"≤ {goal_mb} MB", met=peak <= goal_mb,
    )  # fmt: skip


def percentile(values, p):
    """The p-th percentile (0..100), linear interpolation between the closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def median(values):
    return statistics.median(values)


@dataclass
class Result:
    """One line of the table: baseline and ours of one metric, their ratio, the goal."""

    benchmark: str
    metric: str
    unit: str
    baseline: float | None
    ours: float | None
    baseline_label: str = "baseline"
    ours_label: str = "ours"
    goal: str = ""
    met: bool | None = None
    ratio: float | None = field(default=None)

    def __post_init__(self):
        if self.ratio is None and self.baseline and self.ours is not None:
            self.ratio = self.ours / self.baseline

    def as_dict(self):
        return asdict(self)


@dataclass
class Report:
    """What one benchmark module returns: its lines, the raw figures, and notes."""

    name: str
    results: list = field(default_factory=list)
    details: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    todo: str = ""
    error: str = ""

    def as_dict(self):
        return {
            "name": self.name,
            "status": "error" if self.error else "todo" if self.todo else "ok",
            "todo": self.todo,
            "error": self.error,
            "results": [r.as_dict() for r in self.results],
            "details": self.details,
            "notes": self.notes,
        }


def todo(name, why):
    """A benchmark that is not written yet: shows up in the table and the JSON as TODO."""
    return Report(name=name, todo=why)


def number(value, unit=""):
    if value is None:
        return "-"
    text = (
        f"{value:,.0f}"
        if abs(value) >= 100
        else f"{value:.1f}"
        if abs(value) >= 10
        else (f"{value:.2f}")
    )
    return f"{text} {unit}".strip()


def table(reports):
    """The results as a Markdown table (readable as it is on a terminal)."""
    header = ("benchmark", "metric", "baseline", "ours", "ratio", "goal", "met")
    rows = []
    for report in reports:
        if report.todo or report.error:
            status = "TODO (skipped)" if report.todo else "ERROR"
            text = report.todo or report.error.strip().splitlines()[-1]
            rows.append((report.name, status, text, "", "", "", ""))
            continue
        for r in report.results:
            rows.append(
                (
                    r.benchmark,
                    r.metric,
                    f"{r.baseline_label}: {number(r.baseline, r.unit)}",
                    f"{r.ours_label}: {number(r.ours, r.unit)}",
                    "-" if r.ratio is None else f"{r.ratio:.3f}",
                    r.goal,
                    {True: "yes", False: "NO", None: ""}[r.met],
                )
            )
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def say(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

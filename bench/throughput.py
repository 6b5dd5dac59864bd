"""2. Throughput and the reliability tax: our worker configuration against bare Celery.

Same broker and vhost, same machine, same prefork concurrency (2), alternating runs:

- bare (baseline): bench/bare_celery.py, Celery's defaults: queue `celery` without
  priorities, prefetch 4 per process, acknowledged before the task runs, no publisher
  confirms, no result backend, no task events;
- ours: `celery -A config worker` as shipped: priority queue `emails`, late acks, prefetch 1,
  persistent messages published with confirms, time limits, results in the database (jobs.noop
  ignores its result), the job runner for emails; task events off, as when Flower is not running;
- alternatives to ours (no-ops only, with ALT=1): settings changed in
  bench/settings_variant.py, among them task events on (what Flower turns on). Their
  publisher is ours, measured on the ours line, so their queues are filled by the faster
  bulk publisher (broker.bulk_publisher), which puts the same messages on the queue;
- and bare Celery with late acks and prefetch 1, the fair baseline: the part of the gap that
  is that choice, in Celery itself.

Each run fills the queue while the worker is told not to consume (timing the publisher: the
publish rate), then lets the worker consume and times it until its own counter shows the last
task started (the worker rate). No-ops measure the machinery; emails (the sink answers at
once) measure a real job: render, SMTP, and for ours the job's claim and outcome.

Then the mail server is made as slow as a real provider (SMTP_LATENCY at DATA) and two workers
send confirmations: bare Celery's defaults (prefork, one process per core) against the email
worker as shipped (the Procfile's `worker-emails`: 8 processes, SMTP connections kept).
That is where the email worker's pool shows.
"""

import json
import time
from dataclasses import dataclass

from bench import bare_celery
from bench.broker import (
    bulk_publisher,
    drain,
    pause_consumers,
    purge,
    refill,
    retry_on_broker_drop,
)
from bench.environment import QUICK
from bench.processes import WORKER_VARIANTS, running, start_email_workers, variant_env
from bench.shop_data import make_orders
from bench.stats import Report, Result, alternate, median, say
from testkit.processes import shipped_worker_options

NAME = "throughput"
# Bare Celery with our acknowledgement and prefetch too: the fair baseline of the no-op rate.
# What is left between it and ours is what the rest of our configuration costs.
FAIR = "bare Celery, late acks, prefetch 1"
BARE_VARIANTS = {FAIR: {"task_acks_late": True, "worker_prefetch_multiplier": 1}}
NOOPS = 2_000 if QUICK else 10_000
EMAILS = 400 if QUICK else 10_000
ROUNDS = 2  # each side's NOOPS are split into this many alternating runs
EMAIL_ROUNDS = 2 if QUICK else 4  # short runs: one interrupted by a broker restart costs less
# What a real mail provider takes to answer a message (100-250 ms), and the emails sent at it.
SMTP_LATENCY = 0.1
SLOW_EMAILS = 200 if QUICK else 1_000
SLOW_EMAIL_ROUNDS = 2
# Jobs published at once by the outbox (a fan-out, a bulk shipping, the sweeper's backlog).
GROUP = 2_000 if QUICK else 10_000


@dataclass
class Setup:
    label: str
    app: object  # the Celery app that publishes
    queue: str
    noop: str
    email: str
    worker_options: dict
    worker: object = None


def setups():
    from config.celery import app

    def bare(label, **worker_env):
        options = {"app_module": "bench.bare_celery", "queues": ("celery",), **worker_env}
        return Setup(
            label, bare_celery.app, "celery", "bare.noop", "bare.send_order_confirmation", options
        )

    email = "notifications.send_order_confirmation"
    found = {
        "bare": bare("bare Celery"),
        "ours": Setup("ours", app, "emails", "jobs.noop", email, {}),
        # The email worker as shipped; its own concurrency, not the comparison's 2.
        "shipped": Setup(
            "ours (email worker as shipped)", app, "emails", "jobs.noop", email,
            {"args": shipped_worker_options("worker-emails")},
        ),
    }  # fmt: skip
    bulk = bulk_publisher()
    for label, overrides in WORKER_VARIANTS.items():
        found[label] = Setup(label, bulk, "emails", "jobs.noop", email, variant_env(overrides))
    for label, conf in BARE_VARIANTS.items():
        found[label] = bare(label, BARE_CELERY_SETTINGS=json.dumps(conf))
    return found


def run(env):
    all_setups = setups()
    with running():
        sink, workers = start_email_workers(
            env, NAME, {name: setup.worker_options for name, setup in all_setups.items()}
        )
        for name, setup in all_setups.items():
            setup.worker = workers[name]

        def measure(setup, task_name, args_list):
            """One run: fill the queue, then drain it; returns the rates."""
            same_queue = [s.worker for s in all_setups.values() if s.queue == setup.queue]
            return fill_and_drain(
                env, setup.worker, same_queue, setup.app, setup.queue, task_name, args_list,
                setup.label,
            )  # fmt: skip

        def sending(names, count, rounds):
            per_run = count // rounds
            say(f"{NAME}: {count} emails per side in {rounds} runs")
            return alternate(
                {
                    name: lambda i, s=all_setups[name]: measure(
                        s, s.email, [(pk,) for pk in make_orders(per_run)]
                    )
                    for name in names
                },
                rounds,
            )

        compared = [name for name in all_setups if name != "shipped"]
        per_run = NOOPS // ROUNDS
        say(f"{NAME}: {NOOPS} no-ops per side in {ROUNDS} runs, {len(compared)} sides")
        noops = alternate(
            {
                name: lambda i, s=all_setups[name]: measure(
                    s, s.noop, [(f"n{i}-{j}",) for j in range(per_run)]
                )
                for name in compared
            },
            ROUNDS,
        )
        say(f"{NAME}: {GROUP} jobs published by the outbox, in groups")
        grouped = [
            retry_on_broker_drop(lambda: group_publish(env, list(workers.values())), env=env)
            for _ in range(ROUNDS)
        ]
        for name in [*WORKER_VARIANTS, *BARE_VARIANTS]:  # only the no-ops compare alternatives
            all_setups[name].worker.stop()
        emails = sending(("bare", "ours"), EMAILS, EMAIL_ROUNDS)
        mail_count = len(sink.messages())

        sink.set(latency=SMTP_LATENCY)
        say(f"{NAME}: the mail server now answers in {SMTP_LATENCY * 1000:.0f} ms")
        slow = sending(("bare", "shipped"), SLOW_EMAILS, SLOW_EMAIL_ROUNDS)
    return report(all_setups, noops, grouped, emails, slow, mail_count)


def fill_and_drain(env, worker, paused, publisher, queue, task_name, args_list, label):
    """One run in `env`: `publisher` fills `queue` with `task_name` once per args while none of
    `paused` (every worker on it) consumes it, then `worker` drains it.

    Returns the rates: {"publish": tasks/s, "worker": tasks/s}.
    """

    def once():
        published = refill(env, queue, paused, publisher, task_name, args_list)
        drained = drain(env.app, worker, queue, len(args_list))
        return {"publish": len(args_list) / published, "worker": len(args_list) / drained}

    rates = retry_on_broker_drop(once, env=env)
    say(f"{task_name}: {rates['worker']:.0f}/s ({label})")
    return rates


def group_publish(env, workers):
    """Jobs/s of the outbox publishing GROUP pending shipping emails (jobs/outbox.py:
    publish_many, in groups whose confirms are awaited together), job rows included, on an
    `emails` queue that none of `workers` consumes; purged after."""
    from jobs import outbox
    from jobs.models import Job
    from notifications.tasks import send_shipping_notification
    from shop.models import Order

    order_ids = make_orders(GROUP)
    name = send_shipping_notification.name
    outbox.record_group(name, Order.objects.get(pk=order_ids[0]), [(pk,) for pk in order_ids])
    pending = Job.objects.filter(task_name=name, state=Job.State.PENDING)
    pks = list(pending.values_list("pk", flat=True))
    pause_consumers(env.app, workers, "emails", env)
    purge(env, "emails")
    started = time.perf_counter()
    published = outbox.publish_many(pks)
    seconds = time.perf_counter() - started
    purge(env, "emails")
    if published < len(pks):
        raise RuntimeError(f"the outbox published {published} of {len(pks)} jobs")
    rate = len(pks) / seconds
    say(f"outbox group publish: {rate:.0f}/s")
    return {"publish": rate}


def report(all_setups, noops, grouped, emails, slow, mail_count):
    def rate(runs, name, what):
        return median([r[what] for r in runs[name]])

    bare = "bare Celery"
    goal = "≥ 80% of bare"
    results = [
        Result(
            NAME, "no-op tasks, worker", "tasks/s", rate(noops, "bare", "worker"),
            rate(noops, "ours", "worker"), bare, "ours", goal=goal,
        ),
    ]  # fmt: skip
    for name in [*WORKER_VARIANTS, *BARE_VARIANTS]:
        results.append(
            Result(
                NAME, "no-op tasks, worker", "tasks/s", rate(noops, "bare", "worker"),
                rate(noops, name, "worker"), bare, name, goal=goal,
            )
        )  # fmt: skip
    for r in results:
        r.met = r.ratio >= 0.8
    fair = Result(
        NAME, "no-op tasks, worker, fair baseline", "tasks/s", rate(noops, FAIR, "worker"),
        rate(noops, "ours", "worker"), FAIR, "ours", goal="≥ 95% of fair",
    )  # fmt: skip
    fair.met = fair.ratio >= 0.95
    results.append(fair)
    together = Result(
        NAME, "jobs published together (outbox groups)", "tasks/s",
        rate(noops, "bare", "publish"), median([r["publish"] for r in grouped]), bare,
        "ours (confirms awaited together, job rows)", goal="≥ 60% of bare",
    )  # fmt: skip
    together.met = together.ratio >= 0.6
    slow_provider = Result(
        NAME, f"confirmation emails, {SMTP_LATENCY * 1000:.0f} ms SMTP", "emails/s",
        rate(slow, "bare", "worker"), rate(slow, "shipped", "worker"),
        "bare Celery (prefork, defaults)", all_setups["shipped"].label, goal="≥ 2 x bare",
    )  # fmt: skip
    slow_provider.met = slow_provider.ratio >= 2
    results += [
        Result(
            NAME, "no-op tasks, publish", "tasks/s", rate(noops, "bare", "publish"),
            rate(noops, "ours", "publish"), bare, "ours (confirms)",
        ),
        together,
        Result(
            NAME, "confirmation emails, worker", "emails/s", rate(emails, "bare", "worker"),
            rate(emails, "ours", "worker"), bare, "ours (job runner, results)",
        ),
        slow_provider,
    ]  # fmt: skip
    details = {
        "noops_per_side": NOOPS,
        "emails_per_side": EMAILS,
        "noop_runs_per_side": ROUNDS,
        "email_runs_per_side": EMAIL_ROUNDS,
        "concurrency": 2,
        "bare_result_backend": "none (Celery's default)",
        "ours_result_backend": "django-db (jobs.noop: ignore_result)",
        "emails_received_by_the_sink": mail_count,
        "noop_runs": {all_setups[n].label: v for n, v in noops.items()},
        "email_runs": {all_setups[n].label: v for n, v in emails.items()},
        "smtp_latency_seconds": SMTP_LATENCY,
        "slow_emails_per_side": SLOW_EMAILS,
        "shipped_email_worker": all_setups["shipped"].worker_options["args"],
        "slow_email_runs": {all_setups[n].label: v for n, v in slow.items()},
        "group_publish_jobs": GROUP,
        "group_publish_runs": grouped,
    }
    return Report(NAME, results, details)

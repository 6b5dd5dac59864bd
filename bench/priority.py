"""3. Priority under backlog: a customer's confirmation behind 10,000 newsletter emails.

The `emails` queue is filled with BACKLOG newsletters (the `jobs.noop` filler, routed to
`emails` at the newsletter's priority, 1) while the worker is told not to consume. Then the
worker (ours, `celery -A config worker`, concurrency 2) starts on the backlog, and CONFIRMATIONS
order confirmations are published one by one, SPACING apart, each while newsletters are still
waiting. A confirmation's wait is from just before its publish (so the publish itself counts)
to the moment the worker claims its job (`Job.started_at`, written by the job runner before
the email is rendered). The publish alone (until RabbitMQ confirms the persistent message) is
recorded too: under a busy broker it is most of the slowest waits.

- baseline, priorities off: the same worker and queue, but the confirmations are published at
  the newsletters' priority, so the queue is first in, first out, as a queue without
  `x-max-priority` would be;
- ours: the confirmations go out at their routed priority (9, as the job is declared in
  notifications/tasks.py), on the same worker;
- ours as shipped: the same, on the email worker of the Procfile (8 processes);
- alternatives to ours' worker settings (bench/settings_variant.py), same priorities.

No-op newsletters cost nothing to run, so a worker that holds a few of them (its prefetch)
delays a confirmation by microseconds. A second, smaller scenario makes each newsletter take
50 ms (`jobs.noop` with seconds=0.05, about an SMTP exchange), to show what a worker that
holds more messages costs the customer.
"""

import time

from bench.broker import bulk_publisher, consume, depth, purge, refill, retry_on_broker_drop
from bench.environment import QUICK
from bench.processes import WORKER_VARIANTS, running, start_email_workers, worker_sides
from bench.shop_data import make_orders
from bench.stats import Report, Result, alternate, percentile, say
from testkit.processes import shipped_worker_options, wait_for

NAME = "priority"
BACKLOG = 2_000 if QUICK else 10_000
SLOW_BACKLOG = 150 if QUICK else 300  # newsletters of 50 ms: enough to outlast the confirmations
PREFETCHING = {name for name in WORKER_VARIANTS if "prefetch" in name}
SCENARIOS = {  # name: (newsletters queued, seconds each, worker alternatives left out)
    # Holding no-ops costs nothing: a larger prefetch would only repeat ours here.
    "no-op newsletters": (BACKLOG, 0, PREFETCHING),
    "50 ms newsletters": (SLOW_BACKLOG, 0.05, set()),
}
CONFIRMATIONS = 10 if QUICK else 20
SPACING = 0.05 if QUICK else 0.1  # seconds between two confirmations
ROUNDS = 1 if QUICK else 2
QUEUE = "emails"
CONFIRMATION = "notifications.send_order_confirmation"
BASELINE = "priorities off"
GOAL_MS = 50  # the goal, for the scenario (no-op newsletters)
GOAL_SCENARIO = "no-op newsletters"
SHIPPED = "ours (email worker as shipped)"


def run(env):
    from jobs.topology import PRIORITY_BULK

    filler = bulk_publisher()
    with running():
        sides = {**worker_sides(), SHIPPED: {"args": shipped_worker_options("worker-emails")}}
        _sink, workers = start_email_workers(env, NAME, sides)

        def one_round(worker, priority_options, backlog, seconds):
            return confirmations_behind(
                env, worker, workers.values(), filler, priority_options, backlog, seconds
            )

        by_scenario = {}
        for scenario, (backlog, seconds, left_out) in SCENARIOS.items():
            say(f"{NAME}: {CONFIRMATIONS} confirmations behind {backlog} {scenario}")
            sides = {
                BASELINE: lambda i, b=backlog, s=seconds: one_round(
                    workers["ours"], {"priority": PRIORITY_BULK}, b, s
                )
            }
            for name, w in workers.items():
                if name not in left_out:
                    sides[name] = lambda i, w=w, b=backlog, s=seconds: one_round(w, {}, b, s)
            by_scenario[scenario] = alternate(sides, ROUNDS)
    return report(by_scenario)


def confirmations_behind(env, worker, paused, filler, priority_options, backlog, seconds):
    """One round: CONFIRMATIONS confirmations published while `worker` works off `backlog`
    newsletters of `seconds` each, in `env` (its broker, its topology).

    The queue is filled by `filler` while none of `paused` (every worker on it) consumes it;
    `priority_options` go with each confirmation's publish ({} for its routed priority).
    Returns the waits, the publishes' share of them, and the backlog left at the last publish.
    """
    app = env.app

    def once():
        order_ids = make_orders(CONFIRMATIONS)
        newsletters = [(f"newsletter-{i}", seconds) for i in range(backlog)]
        refill(env, QUEUE, paused, filler, "jobs.noop", newsletters)
        consume(app, worker, QUEUE, True)
        published, confirmed = {}, {}
        for pk in order_ids:
            time.sleep(SPACING)
            published[pk] = time.time()
            app.send_task(CONFIRMATION, args=(pk,), **priority_options)
            confirmed[pk] = time.time()  # RabbitMQ confirmed it (confirm_publish)
        backlog_left = depth(env, QUEUE)
        started = wait_for_starts(order_ids)
        consume(app, worker, QUEUE, False)
        purge(env, QUEUE)
        return {
            "waits_ms": [(started[pk] - published[pk]) * 1000 for pk in order_ids],
            "publish_ms": [(confirmed[pk] - published[pk]) * 1000 for pk in order_ids],
            "backlog_left_at_last_publish": backlog_left,
        }

    result = retry_on_broker_drop(once, env=env)
    say(f"p99 wait {percentile(result['waits_ms'], 99):.1f} ms")
    return result


def wait_for_starts(order_ids):
    """{order id: epoch seconds its confirmation job was claimed}, once all of them were."""
    from jobs.models import Job
    from notifications.tasks import send_order_confirmation

    keys = {send_order_confirmation.job_key(pk): pk for pk in order_ids}

    def all_started():
        rows = Job.objects.filter(key__in=keys, started_at__isnull=False)
        found = {keys[key]: at.timestamp() for key, at in rows.values_list("key", "started_at")}
        return found if len(found) == len(keys) else None

    return wait_for(all_started, timeout=120, interval=0.2, message="the confirmations to start")


def report(by_scenario):
    results, details, notes = [], {}, []
    for scenario, rounds in by_scenario.items():
        waits = {name: [w for r in runs for w in r["waits_ms"]] for name, runs in rounds.items()}
        for name in [n for n in ["ours", SHIPPED, *WORKER_VARIANTS] if n in waits]:
            for p in (50, 99):
                result = Result(
                    NAME, f"wait p{p}, {scenario}", "ms", percentile(waits[BASELINE], p),
                    percentile(waits[name], p), BASELINE, name,
                )  # fmt: skip
                if p == 99 and scenario == GOAL_SCENARIO:
                    result.goal = f"≤ {GOAL_MS} ms"
                    result.met = result.ours <= GOAL_MS
                results.append(result)
        left = {
            name: [r["backlog_left_at_last_publish"] for r in runs] for name, runs in rounds.items()
        }
        details[scenario] = {
            "newsletters": SCENARIOS[scenario][0],
            "seconds_per_newsletter": SCENARIOS[scenario][1],
            "backlog_left_at_last_publish": left,
            "waits_ms": {name: [round(w, 2) for w in v] for name, v in waits.items()},
            "publish_p99_ms": {
                name: percentile([w for r in runs for w in r["publish_ms"]], 99)
                for name, runs in rounds.items()
            },
            "of_which_publish_ms": {
                name: [round(w, 2) for r in runs for w in r["publish_ms"]]
                for name, runs in rounds.items()
            },
        }
        if any(n == 0 for runs in left.values() for n in runs):
            notes.append(f"{scenario}: the backlog ran out before the last confirmation")
    details.update(confirmations_per_round=CONFIRMATIONS, spacing_seconds=SPACING, rounds=ROUNDS)
    return Report(NAME, results, details, notes)

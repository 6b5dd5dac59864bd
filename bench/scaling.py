"""8. How cost grows: the worker at 1, 2 and 4 processes, and queues 1,000 to 100,000 deep.

- processes: our worker (`celery -A config worker`, prefork) at concurrency 1, 2 and 4 drains
  the same NOOPS no-ops; the baseline is concurrency 1, on the same 2 cores;
- depth: the same worker at concurrency 2 drains SAMPLE no-ops from the front of an `emails`
  queue filled to each DEPTHS (the rest purged after): does a deep queue slow RabbitMQ (a
  classic priority queue, as the shop declares it on one node)? The baseline is the shallowest.

The queues are filled by the bulk publisher (the shop's messages, no confirms): filling is
set-up, not what is measured here.
"""

from bench.broker import bulk_publisher, drain, purge, refill, retry_on_broker_drop
from bench.environment import QUICK
from bench.processes import running, start_email_workers
from bench.stats import Report, Result, median, say

NAME = "scaling"
PROCESSES = (1, 2, 4)
NOOPS = 4_000 if QUICK else 10_000
DEPTHS = (1_000, 10_000, 50_000) if QUICK else (1_000, 10_000, 100_000)
SAMPLE = 1_000
ROUNDS = 2
QUEUE = "emails"


def run(env):
    publisher = bulk_publisher(env)
    with running():
        _sink, workers = start_email_workers(env, NAME, {n: {"concurrency": n} for n in PROCESSES})
        everyone = list(workers.values())

        def drained(worker, depth, count):
            def once():
                refill(env, QUEUE, everyone, publisher, "jobs.noop", noops(depth))
                seconds = drain(env.app, worker, QUEUE, count)
                purge(env, QUEUE)
                return count / seconds

            return retry_on_broker_drop(once, env=env)

        by_processes = {}
        for n in PROCESSES:
            by_processes[n] = [drained(workers[n], NOOPS, NOOPS) for _ in range(ROUNDS)]
            say(f"{NAME}: concurrency {n}: {median(by_processes[n]):.0f} no-ops/s")
        by_depth = {}
        for depth in DEPTHS:
            by_depth[depth] = [drained(workers[2], depth, SAMPLE) for _ in range(ROUNDS)]
            say(f"{NAME}: {depth} deep: {median(by_depth[depth]):.0f} no-ops/s")
    return report(by_processes, by_depth)


def noops(count):
    return [(f"s{i}",) for i in range(count)]


def report(by_processes, by_depth):
    one = median(by_processes[PROCESSES[0]])
    results = [
        Result(
            NAME,
            f"no-ops/s at concurrency {n}",
            "tasks/s",
            one,
            median(by_processes[n]),
            "concurrency 1",
            f"concurrency {n}",
        )
        for n in PROCESSES[1:]
    ]
    shallow = median(by_depth[DEPTHS[0]])
    results += [
        Result(
            NAME,
            f"no-ops/s from a queue {depth:,} deep",
            "tasks/s",
            shallow,
            median(by_depth[depth]),
            f"{DEPTHS[0]:,} deep",
            f"{depth:,} deep",
        )
        for depth in DEPTHS[1:]
    ]
    details = {
        "noops_per_run": NOOPS,
        "sample_per_depth_run": SAMPLE,
        "rounds": ROUNDS,
        "by_processes": {str(n): runs for n, runs in by_processes.items()},
        "by_depth": {str(d): runs for d, runs in by_depth.items()},
    }
    return Report(NAME, results, details)

"""6. Classic against quorum queues on RabbitMQ 4: throughput and the priority wait.

The two topologies of config/queues.py (RABBITMQ_QUEUE_TYPE, docs/scaling-out.md) on the same
RabbitMQ 4 (the suite's node from testkit/rabbitmq_nodes.py, started if it is not running), each
in a vhost of its own, with a worker of its own (ours, `celery -A config worker`, concurrency
2) started with that RABBITMQ_QUEUE_TYPE and CELERY_BROKER_URL:

- classic (baseline): priority queues with ten levels, what ran on one node so far;
- quorum (ours, production): replicated queues with two priority levels (0-4, 5 and up), a
  delivery limit, at-least-once dead lettering, a topic `jobs` exchange.

What is measured on each, alternating runs, as bench/throughput.py and bench/priority.py
measure ours against their baselines (the same functions):

- no-op tasks: the queue filled by the shop's publisher (persistent messages, confirms:
  the publish rate), then drained by the worker (the worker rate);
- the priority wait: a customer's confirmation, published while the worker works off a
  backlog of BACKLOG no-op newsletters at bulk priority (1), from just before its publish to
  the moment the worker claims its job. On classic queues a confirmation (9) goes next; on a
  quorum queue it is "high" against the newsletters' "normal", delivered two high for one
  normal when both wait.

Then the same on a 3-node RabbitMQ 4 cluster (ports of its own, deleted at the end), since
production is quorum on a cluster: every node's URL given to every process, quorum queues
replicated on the three, classic ones on the node that declared them. Full runs only
(about a minute: its start and two more workers); BENCH_CLUSTER=1 or 0 decides otherwise.

This process keeps its own topology (config.queues, imported with the RABBITMQ_QUEUE_TYPE it
was started with, on the system's broker for the other benchmarks): what it publishes to a
side, it publishes with that side's queues (broker.broker_side, broker.shop_app).
"""

import atexit
import os
import time
import urllib.parse
from contextlib import ExitStack
from pathlib import Path

from bench import priority
from bench.broker import broker_answers, broker_side, bulk_publisher
from bench.environment import QUICK, VHOST
from bench.processes import running, start_email_workers
from bench.stats import Report, Result, alternate, median, percentile, say
from bench.throughput import fill_and_drain
from testkit import rabbitmq, rabbitmq_nodes
from testkit.processes import wait_for

NAME = "queue types"
BASELINE, OURS = "classic", "quorum"
QUEUE_TYPES = (BASELINE, OURS)
QUEUE = priority.QUEUE
NOOP = "jobs.noop"
NOOPS = 2_000 if QUICK else 4_000  # per side and broker, in ROUNDS alternating runs
ROUNDS = 2
BACKLOG = priority.BACKLOG  # newsletters in front of the confirmations: 2,000, or 10,000
PRIORITY_ROUNDS = 1 if QUICK else 2
_CLUSTER_FLAG = os.environ.get("BENCH_CLUSTER", "").strip().lower()
CLUSTER = _CLUSTER_FLAG not in {"0", "false", "no"} if _CLUSTER_FLAG else not QUICK
# Never the suite's cluster (prefix shopjobsc, ports 5681-5683): the tests may be running.
# Management on 15701-15703: 15692 is the system broker's rabbitmq_prometheus.
CLUSTER_PREFIX, CLUSTER_FIRST_PORT = "shopjobsb", 5701
SINGLE, CLUSTERED = "RabbitMQ 4, 1 node", "RabbitMQ 4, 3 nodes"


def run(env):
    if not rabbitmq_nodes.tree_ready():
        return Report(
            NAME,
            error=f"RabbitMQ 4 is not set up in {rabbitmq_nodes.ROOT}: "
            "run scripts/ensure-rabbitmq4.sh (as root) for this benchmark",
        )
    measured, details, error = {}, {"rabbitmq": rabbitmq_nodes.version()}, ""
    node = rabbitmq_nodes.suite_node()
    start_or_wait_for(node)
    measured[SINGLE] = on_broker(env, [node.url], node.management_url, "node")
    if CLUSTER:
        cluster = rabbitmq_nodes.Cluster(3, prefix=CLUSTER_PREFIX, first_port=CLUSTER_FIRST_PORT)
        atexit.register(cluster.stop)  # even if this process is interrupted
        try:
            t0 = time.monotonic()
            cluster.start()
            details["cluster_start_seconds"] = round(time.monotonic() - t0, 1)
            say(f"{NAME}: cluster of 3 started in {details['cluster_start_seconds']} s")
            first = cluster.nodes[0]
            urls = [n.url for n in cluster.nodes]
            measured[CLUSTERED] = on_broker(env, urls, first.management_url, "cluster")
        except Exception as exc:  # the single node's figures are kept
            error = f"{CLUSTERED}: {exc!r}"
            say(f"{NAME}: {error}")
        finally:
            cluster.stop()
            atexit.unregister(cluster.stop)
    report = make_report(measured, details)
    report.error = error
    return report


def start_or_wait_for(node):
    """The suite's node: started if it is not running (and left running, as `python -m
    testkit.rabbitmq_nodes start` leaves it), waited for if it runs with its app stopped (the
    tests' broker restart, which may be under way)."""

    def answers():
        return broker_answers(node.url, node.management_url)

    if answers():
        return
    pid = node.os_pid()
    if pid and Path(f"/proc/{pid}").exists():
        say(f"{NAME}: waiting for the suite's RabbitMQ 4 node ({node.nodename}) to answer")
        wait_for(answers, 300, interval=1, message=f"{node.nodename} to answer")
    else:
        say(f"{NAME}: starting the suite's RabbitMQ 4 node ({node.nodename})")
        node.start().wait_ready()


def on_broker(env, node_urls, management_api, where):
    """Both topologies on one broker (its nodes' URLs), each in a vhost of its own."""
    api = rabbitmq.ManagementAPI(node_urls[0], management_api)
    version = api.call("GET", "/overview").get("rabbitmq_version")
    vhosts = {queue_type: f"{VHOST}_{queue_type}" for queue_type in QUEUE_TYPES}
    with ExitStack() as stack:
        envs = {
            queue_type: stack.enter_context(
                broker_side(env, node_urls, management_api, queue_type, vhost)
            )
            for queue_type, vhost in vhosts.items()
        }
        fillers = {}
        for queue_type, side in envs.items():
            fillers[queue_type] = bulk_publisher(side)
            stack.callback(fillers[queue_type].close)
        stack.enter_context(running())
        say(f"{NAME}: RabbitMQ {version}, {where}: a worker per queue type")
        _sink, workers = start_email_workers(
            env, f"queue-types-{where}", {queue_type: {} for queue_type in QUEUE_TYPES}, envs
        )

        def noops_run(queue_type, i):
            """bench/throughput.py's no-op run, with the shop's publisher (confirms)."""
            side, worker = envs[queue_type], workers[queue_type]
            tasks = [(f"n{i}-{j}",) for j in range(NOOPS // ROUNDS)]
            label = f"{queue_type}, {where}"
            return fill_and_drain(side, worker, [worker], side.app, QUEUE, NOOP, tasks, label)

        def priority_round(queue_type, i):
            """bench/priority.py's round, at the confirmations' routed priority."""
            side, worker = envs[queue_type], workers[queue_type]
            filler = fillers[queue_type]
            return priority.confirmations_behind(side, worker, [worker], filler, {}, BACKLOG, 0)

        say(f"{NAME}: {NOOPS} no-ops per queue type in {ROUNDS} runs ({where})")
        noops = alternate({q: lambda i, q=q: noops_run(q, i) for q in QUEUE_TYPES}, ROUNDS)
        say(f"{NAME}: {priority.CONFIRMATIONS} confirmations behind {BACKLOG} newsletters")
        waits = alternate(
            {q: lambda i, q=q: priority_round(q, i) for q in QUEUE_TYPES}, PRIORITY_ROUNDS
        )
        queues = {q: queue_facts(api, vhost) for q, vhost in vhosts.items()}
    return {
        "rabbitmq": version,
        "nodes": len(node_urls),
        "queues": queues,
        "noops": noops,
        "waits": waits,
    }


def queue_facts(api, vhost):
    """What RabbitMQ says of the `emails` queue: its type, and where it lives (quorum: the
    leader and the members it is replicated on)."""
    path = f"/queues/{urllib.parse.quote(vhost, safe='')}/{QUEUE}"
    try:
        info = api.call("GET", path)
    except OSError as exc:
        return {"error": repr(exc)}
    return {
        "type": info.get("type"),
        "node": info.get("leader") or info.get("node"),
        "members": info.get("members", []),
        "arguments": info.get("arguments", {}),
    }


def make_report(measured, details):
    results, notes = [], []
    for where, m in measured.items():
        noops, waits = m["noops"], m["waits"]

        def rate(what, noops=noops):
            return {q: median([r[what] for r in noops[q]]) for q in QUEUE_TYPES}

        worker, publish = rate("worker"), rate("publish")
        all_waits = {q: [w for r in waits[q] for w in r["waits_ms"]] for q in QUEUE_TYPES}
        results += [
            Result(
                NAME, f"no-op tasks, worker, {where}", "tasks/s", worker[BASELINE],
                worker[OURS], BASELINE, OURS,
            ),
            Result(
                NAME, f"no-op tasks, publish (confirms), {where}", "tasks/s", publish[BASELINE],
                publish[OURS], BASELINE, OURS,
            ),
        ]  # fmt: skip
        for p in (50, 99):
            result = Result(
                NAME, f"confirmation wait p{p}, {BACKLOG:,} newsletters, {where}", "ms",
                percentile(all_waits[BASELINE], p), percentile(all_waits[OURS], p),
                BASELINE, OURS,
            )  # fmt: skip
            if p == 99:  # bench/priority.py's goal, for the same scenario
                result.goal = f"≤ {priority.GOAL_MS} ms"
                result.met = result.ours <= priority.GOAL_MS
            results.append(result)
        left = {q: [r["backlog_left_at_last_publish"] for r in waits[q]] for q in QUEUE_TYPES}
        if any(n == 0 for runs in left.values() for n in runs):
            notes.append(f"{where}: the backlog ran out before the last confirmation")
        details[where] = {
            "rabbitmq": m["rabbitmq"],
            "nodes": m["nodes"],
            "emails_queue": m["queues"],
            "noops_per_side": NOOPS,
            "noop_runs": noops,
            "newsletters": BACKLOG,
            "backlog_left_at_last_publish": left,
            "waits_ms": {q: [round(w, 2) for w in v] for q, v in all_waits.items()},
            "publish_p99_ms": {
                q: percentile([w for r in waits[q] for w in r["publish_ms"]], 99)
                for q in QUEUE_TYPES
            },
        }
    if not CLUSTER:
        notes.append(f"{CLUSTERED}: not measured (QUICK=1 or BENCH_CLUSTER=0)")
    details.update(
        concurrency=2,
        noop_runs_per_side=ROUNDS,
        priority_rounds=PRIORITY_ROUNDS,
        confirmations_per_round=priority.CONFIRMATIONS,
        spacing_seconds=priority.SPACING,
    )
    return Report(NAME, results, details, notes)

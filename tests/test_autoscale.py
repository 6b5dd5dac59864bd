"""Worker capacity follows queue depth (jobs/autoscale.py, docs/scaling-by-queue-depth.md).

The rule is tested alone, on made-up depths and a made-up clock; the supervisor with stand-in
worker processes; and the whole, `manage.py scale_workers`, against a real RabbitMQ with real
worker processes, on whichever topology the run uses (classic priority queues or quorum).
"""

import itertools
import os
import random
import signal
import sys
import time

import pytest
from kombu import Connection

from config import queues
from jobs.autoscale import Policy, Supervisor, desired_workers
from jobs.tasks import noop
from testkit.processes import ServiceProcess, wait_for

POLICY = Policy(minimum=1, maximum=3, backlog_per_worker=10, scale_down_after=60, cooldown=10)


def run_rule(depths, policy=POLICY, start=1, every=5.0, paused=False):
    """The worker counts the rule asks for, looking at `depths` every `every` seconds, when
    every worker it starts consumes at once."""
    current, idle_since, last_change, counts = start, None, None, []
    for i, depth in enumerate(depths):
        now = i * every
        decision = desired_workers(
            depth, current, current, policy, paused=paused,
            idle_since=idle_since, last_change=last_change, now=now,
        )  # fmt: skip
        idle_since = decision.idle_since
        if decision.workers != current:
            current, last_change = decision.workers, now
        counts.append(current)
    return counts


def changes(counts):
    return sum(1 for a, b in itertools.pairwise(counts) if a != b)


# --- The rule -----------------------------------------------------------------------------------


def test_a_backlog_asks_for_a_worker_per_backlog_per_worker_at_once_up_to_the_maximum():
    grow = desired_workers(25, 1, 1, POLICY, now=0)
    assert grow.workers == 3 and "25 ready > 10 per worker x 1: 3 workers" in grow.reason
    assert desired_workers(15, 1, 1, POLICY, now=0).workers == 2
    assert desired_workers(10_000, 1, 1, POLICY, now=0).workers == 3  # the maximum
    at_max = desired_workers(10_000, 3, 3, POLICY, now=0)
    assert at_max.workers == 3 and "at the maximum of 3" in at_max.reason
    assert desired_workers(10, 1, 1, POLICY, now=0).workers == 1  # 10 is one worker's share


def test_the_count_never_leaves_the_minimum_and_the_maximum():
    policy = Policy(minimum=2, maximum=4, backlog_per_worker=10, scale_down_after=0, cooldown=0)
    for depth in (None, 0, 1, 10, 11, 39, 40, 41, 10_000):
        for current in range(7):
            for consumers in (None, 0, current, current + 5):
                for paused in (False, True):
                    for idle_since in (None, -1000.0):
                        decision = desired_workers(
                            depth, consumers, current, policy, paused=paused,
                            idle_since=idle_since, last_change=-1000.0, now=0.0,
                        )  # fmt: skip
                        assert 2 <= decision.workers <= 4, (depth, current, consumers, paused)
    # Out of bounds is put right at once, cool-down or not: a worker that died is replaced.
    assert desired_workers(0, 0, 1, Policy(minimum=2), last_change=0, now=1).workers == 2
    assert desired_workers(50, 9, 9, Policy(maximum=4), last_change=0, now=1).workers == 4
    with pytest.raises(ValueError):
        Policy(minimum=3, maximum=2)


def test_an_empty_queue_shrinks_the_count_one_worker_at_a_time_down_to_the_minimum():
    # Two minutes of backlog, then nothing ready: 3 workers, then one fewer once the queue
    # has stayed empty for scale_down_after (60 s), and another after the cool-down (10 s).
    counts = run_rule([100] * 24 + [0] * 40)
    assert counts[0] == 3 and counts[23] == 3
    empty_at = 24
    assert counts[empty_at : empty_at + 12] == [3] * 12  # 0 to 55 s empty: held
    assert counts[empty_at + 12] == 2  # 60 s
    assert counts[empty_at + 13] == 2  # 65 s: cooling down
    assert counts[empty_at + 14] == 1  # 70 s
    assert counts[-1] == 1  # and never below the minimum
    assert changes(counts) == 2  # 3 -> 2 -> 1 (the first look already asked for 3)


def test_a_depth_hovering_at_the_threshold_does_not_flap():
    # Ten minutes of a depth around one worker's share (10), looked at every 5 s.
    hovering = [9, 10, 11, 10, 9, 11, 12, 8, 10, 11] * 12
    counts = run_rule(hovering)
    assert changes(counts) == 1 and counts[-1] == 2  # up once at the first 11, and stays
    # Around two workers' share: up to 3 once, never back while messages keep waiting.
    assert changes(run_rule([19, 20, 21, 20, 22, 18] * 20, start=2)) == 1
    # A queue that empties now and then, but never for scale_down_after, keeps its workers.
    assert run_rule([25, 0, 0, 0, 0, 5] * 20) == [3] * 120
    # Whatever the depths: two changes at least a cool-down apart, and a worker stopped only
    # after the queue had nothing ready for scale_down_after.
    rng = random.Random(7)
    for depths in (
        ([25] + [0] * 15) * 4,  # bursts 80 s apart
        [rng.choice([0, 0, 0, 5, 10, 11, 30, 100]) for _ in range(2000)],
        [rng.choice([0, 25]) if i % 40 < 20 else 0 for i in range(2000)],
    ):
        counts = run_rule(depths)
        changed_at = [i for i in range(1, len(counts)) if counts[i] != counts[i - 1]]
        assert all(b - a >= 10 / 5 for a, b in itertools.pairwise(changed_at))
        for i in changed_at:
            if counts[i] < counts[i - 1]:
                assert depths[i - 12 : i + 1] == [0] * 13, i  # 60 s of looks, every 5 s


def test_a_change_waits_for_the_cooldown_and_for_started_workers_to_consume():
    cooling = desired_workers(25, 2, 2, POLICY, last_change=0, now=5)
    assert cooling.workers == 2 and "cooling down" in cooling.reason
    assert desired_workers(25, 2, 2, POLICY, last_change=0, now=10).workers == 3
    # Two of the three started workers hold no consumer yet (a worker takes seconds to start):
    # the backlog they will take is not counted twice.
    starting = desired_workers(1000, 1, 3, Policy(maximum=6, backlog_per_worker=10), now=0)
    assert starting.workers == 3 and "2 started not consuming yet" in starting.reason
    # Workers the supervisor does not run count as consumers too: never fewer than ours.
    assert desired_workers(1000, 5, 3, Policy(maximum=6, backlog_per_worker=10), now=0).workers == 6


def test_a_paused_queue_is_not_scaled_up_and_drifts_down_to_the_minimum():
    held = desired_workers(10_000, 0, 1, POLICY, paused=True, now=0)
    assert held.workers == 1 and held.reason.startswith("paused: 10000 ready wait")
    # Paused with more than the minimum running: its workers idle (they take nothing), so
    # they are stopped like an empty queue's, slowly.
    counts = run_rule([10_000] * 20, start=3, paused=True)
    assert counts[:12] == [3] * 12 and counts[-1] == 1 and max(counts) == 3


def test_an_unknown_depth_changes_nothing_but_the_minimum():
    unknown = desired_workers(None, None, 2, POLICY, now=0)
    assert unknown.workers == 2 and "did not answer" in unknown.reason
    assert desired_workers(None, None, 0, POLICY, now=0).workers == 1


# --- The supervisor, with stand-in workers ------------------------------------------------------

# A stand-in for `celery worker`: on SIGTERM it "finishes its task" (0.2 s) and exits 0, as a
# warm shutdown does; STUBBORN ignores SIGTERM, as a task that never ends would.
STAND_IN = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(0.2), sys.exit(0)))\n"
    "while True: time.sleep(0.05)\n"
)
STUBBORN = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)\n"


class FakeQueue:
    def __init__(self):
        self.depth, self.paused, self.now = 0, False, 0.0

    def read(self):
        return self.depth, None


@pytest.fixture
def supervised():
    made = []

    def make(script=STAND_IN, stop_timeout=5.0, **policy):
        queue = FakeQueue()
        supervisor = Supervisor(
            "emails",
            Policy(**{"minimum": 1, "maximum": 3, "backlog_per_worker": 10, **policy}),
            lambda slot: [sys.executable, "-c", script],
            read=queue.read,
            paused=lambda: queue.paused,
            stop_timeout=stop_timeout,
            clock=lambda: queue.now,
        )
        made.append(supervisor)
        return supervisor, queue

    yield make
    for supervisor in made:
        for pid in supervisor.pids():
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def exited(supervisor):
    for _, process, _ in supervisor.stopping:
        process.wait(10)
    return [process.returncode for _, process, _ in supervisor.stopping]


def test_the_supervisor_starts_and_stops_whole_processes_with_a_warm_shutdown(supervised):
    supervisor, queue = supervised(scale_down_after=30, cooldown=10)
    supervisor.tick()
    assert sorted(supervisor.running) == [1]
    queue.depth, queue.now = 25, 10  # the first worker's start was a change: cool-down
    supervisor.tick()
    assert sorted(supervisor.running) == [1, 2, 3]
    assert all(p.poll() is None for p in supervisor.running.values())
    time.sleep(1.5)  # the stand-ins have set their SIGTERM handler
    queue.depth, queue.now = 0, 20
    supervisor.tick()  # empty since now
    queue.now = 50
    supervisor.tick()
    assert sorted(supervisor.running) == [1, 2]  # the newest stops first
    assert exited(supervisor) == [0]  # SIGTERM: it finished and left by itself
    supervisor.tick()
    assert supervisor.stopping == []
    supervisor.stop_all(timeout=10)
    assert supervisor.running == {} and supervisor.pids() == []


def test_a_worker_that_dies_is_replaced_and_one_that_will_not_stop_is_killed(supervised):
    supervisor, _ = supervised()
    supervisor.tick()
    first = supervisor.running[1]
    first.kill()
    first.wait(10)
    supervisor.tick()
    assert supervisor.running[1] is not first and supervisor.running[1].poll() is None

    stubborn, _ = supervised(script=STUBBORN, stop_timeout=0.5)
    stubborn.tick()
    time.sleep(1.5)  # Python has set its SIG_IGN
    stubborn.stop_all()
    assert supervisor.running[1].poll() is None  # the other supervisor's, untouched
    assert stubborn.pids() == []


# --- The whole, on RabbitMQ -----------------------------------------------------------------------

BACKLOG = 60  # jobs.noop of 0.3 s each: 18 s for one worker process, 6 s for three


def queue_counts(broker_url, queue):
    with Connection(broker_url) as connection:
        _, ready, consumers = connection.default_channel.queue_declare(queue, passive=True)
        return ready, consumers


def children(pid):
    """The process ids whose parent is `pid` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    # pid (comm) state ppid ...: comm may hold spaces, so read after its ')'.
                    ppid = int(stat.read().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry))
    return found


class Scaler(ServiceProcess):
    """`manage.py scale_workers`, as an operator runs it; killed with its workers at the end."""

    name = "scaler"

    def workers(self):
        return children(self.proc.pid)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            for pid in self.workers():
                try:
                    os.killpg(pid, signal.SIGKILL)  # each worker leads its own group
                except ProcessLookupError:
                    pass
        super().kill()


@pytest.fixture
def start_scaler(process_env, tmp_path):
    started = []

    def start(*args):
        command = [sys.executable, "manage.py", "scale_workers", *args]
        scaler = Scaler(command, process_env, tmp_path / "scaler.log")
        started.append(scaler)
        return scaler.start(wait=False)

    yield start
    for scaler in started:
        scaler.kill()


def test_workers_follow_a_backlog_up_and_come_back_to_the_minimum(broker, start_scaler):
    scaler = start_scaler(
        queues.EMAILS, "--min", "1", "--max", "3", "--backlog-per-worker", "10",
        "--interval", "0.5", "--cooldown", "1", "--scale-down-after", "3",
        "--stop-timeout", "20",
        "--worker-args=--concurrency 1 --without-mingle --without-gossip",
    )  # fmt: skip

    def counts():
        scaler.assert_running()
        return queue_counts(broker.url, queues.EMAILS)

    # The minimum: one worker, consuming.
    wait_for(lambda: counts()[1] == 1, 60, interval=0.3, message="the first worker to consume")
    assert len(scaler.workers()) == 1

    for number in range(BACKLOG):
        noop.apply_async((f"backlog-{number}", 0.3))
    started = time.monotonic()

    # The backlog asks for 6 workers of 10 messages each: 3, the maximum, and they consume
    # while messages still wait.
    def grown():
        ready, consumers = counts()
        assert ready > 0 or consumers == 3, f"the backlog drained before the workers came: {ready}"
        return consumers == 3 and len(scaler.workers()) == 3

    wait_for(grown, 40, interval=0.3, message="three workers on the backlog")
    assert 0 < counts()[0] < BACKLOG
    grown_after = time.monotonic() - started

    # Drained, nothing lost: every job of the backlog succeeded in one of the workers, which
    # log to the scaler's output; nothing was dead-lettered.
    wait_for(lambda: counts()[0] == 0, 60, interval=0.3, message="the backlog to drain")

    def all_done():
        log = scaler.log()
        return all(f"'backlog-{n}'" in log for n in range(BACKLOG))

    wait_for(all_done, 30, interval=0.3, message="every job of the backlog to succeed")
    assert broker.depth(f"{queues.EMAILS}.dead") == 0

    # Empty for 3 s: one worker fewer at a time (1 s apart), down to the minimum, each with a
    # warm shutdown; the last stays.
    wait_for(lambda: len(scaler.workers()) == 1, 60, interval=0.3, message="back to one worker")
    assert counts() == (0, 1)
    log = scaler.log()
    assert "ready > 10 per worker x 1: " in log and " -> 3 workers: " in log
    assert "emails: 3 -> 2 workers: nothing ready for 3 s" in log
    assert "emails: 2 -> 1 worker: nothing ready for" in log
    assert log.count("warm shutdown") == 2 and log.count("stopped") >= 2
    assert "still running" not in log and "exited by itself" not in log
    assert grown_after < 40

    # SIGTERM to the scaler: its last worker stops with it.
    (last,) = scaler.workers()
    scaler.proc.send_signal(signal.SIGTERM)
    assert scaler.proc.wait(30) == 0
    with pytest.raises(ProcessLookupError):
        os.kill(last, 0)
    assert queue_counts(broker.url, queues.EMAILS) == (0, 0)


def test_the_command_refuses_a_queue_that_is_not_a_work_queue(db):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="not a work queue"):
        call_command("scale_workers", "nowhere")
    with pytest.raises(CommandError, match="minimum"):
        call_command("scale_workers", queues.EMAILS, "--min", "3", "--max", "2")


def test_workers_are_celery_workers_of_the_queue_with_a_name_per_slot():
    from jobs.autoscale import worker_command

    argv = worker_command("config", "emails", 2, ["--concurrency", "8"])
    assert argv[1:6] == ["-m", "celery", "-A", "config", "worker"]
    assert argv[argv.index("--queues") + 1] == "emails"
    assert argv[argv.index("--hostname") + 1] == "emails-2@%h"
    assert argv[-2:] == ["--concurrency", "8"]  # the operator's options win, given last

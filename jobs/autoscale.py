"""Worker capacity that follows a queue's depth: whole `celery worker` processes, started and
stopped by a small supervisor between a minimum and a maximum (docs/scaling-by-queue-depth.md).

Why whole workers and not Celery's `--autoscale`: the autoscaler grows a worker's pool only up
to the prefetch the worker took when it started (its maximum), and on quorum queues that
prefetch can never change again (per-consumer QoS), so raising the maximum at run time does
nothing there; it also lets a worker running one process hold `max` messages, which blunts
priorities. A worker process of its own per step keeps prefetch 1 per process on both
topologies, and is what KEDA does on Kubernetes with whole pods.

Two parts:

- the rule, `desired_workers`: a pure function from what RabbitMQ says (ready messages,
  consumers) and what the supervisor runs to how many workers it should run, and why. Up fast
  (straight to what the backlog asks for), down slowly (one worker at a time, only once the
  queue has had nothing ready for a while), with a cool-down between two changes: a depth
  hovering at a threshold does not start and stop workers every few seconds.
- the supervisor, `Supervisor`: every few seconds it reads the queue (a passive declare, as the
  dashboard does) and whether staff paused it, asks the rule, and starts or stops workers.
  A worker is stopped with SIGTERM: Celery's warm shutdown finishes the task in hand, and with
  late acks whatever it had not started stays in RabbitMQ for the others.
"""

import ctypes
import logging
import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

logger = logging.getLogger(__name__)


# --- The rule -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """How one queue's workers follow its depth."""

    minimum: int = 1
    maximum: int = 4
    # Ready messages one worker is expected to work off in the wait you promise: one more
    # worker for every this many waiting. (Jobs a second of one worker x seconds allowed.)
    backlog_per_worker: int = 100
    # The queue must have had nothing ready this long before a worker is stopped.
    scale_down_after: float = 60.0
    # Seconds between two changes, either way: new workers get time to start consuming.
    cooldown: float = 10.0

    def __post_init__(self):
        if not 0 <= self.minimum <= self.maximum or self.maximum < 1:
            raise ValueError(f"need 0 <= minimum <= maximum, maximum >= 1: {self}")
        if self.backlog_per_worker < 1:
            raise ValueError("backlog_per_worker must be at least 1")


@dataclass(frozen=True)
class Decision:
    workers: int  # how many workers to run
    reason: str  # why, in words, for the log
    # Since when the queue has had nothing ready (or been paused): the rule's memory between
    # two looks, kept by the caller and handed back at the next one.
    idle_since: float | None = None


def desired_workers(
    depth, consumers, current, policy, *, paused=False, idle_since=None, last_change=None, now
):
    """How many workers `current` running workers should become, as a Decision.

    `depth`: messages ready in the queue (None when RabbitMQ did not answer); `consumers`:
    RabbitMQ's consumers on it (every worker's, also those this supervisor does not run);
    `paused`: staff paused the queue (jobs/pause.py), so its backlog waits on purpose;
    `idle_since`, `last_change`: times on the clock of `now` (the last Decision's idle_since,
    the last start or stop).
    """
    idle = paused or depth == 0
    idle_since = (idle_since if idle_since is not None else now) if idle else None

    def hold(reason):
        return Decision(current, reason, idle_since)

    # The bounds first, without waiting: a worker that died is replaced at once.
    if current < policy.minimum:
        return Decision(policy.minimum, f"below the minimum of {policy.minimum}", idle_since)
    if current > policy.maximum:
        return Decision(policy.maximum, f"above the maximum of {policy.maximum}", idle_since)
    if depth is None:
        return hold("queue depth unknown (RabbitMQ did not answer)")
    cooling = last_change is not None and now - last_change < policy.cooldown

    if paused:
        if current == policy.minimum:
            return hold(f"paused: {depth} ready wait for staff to resume it")
        wanted_down = True
    else:
        asked = min(math.ceil(depth / policy.backlog_per_worker), policy.maximum)
        if asked > current:
            backlog = f"{depth} ready > {policy.backlog_per_worker} per worker x {current}"
            if consumers is not None and consumers < current:
                return hold(f"{backlog}, but {current - consumers} started not consuming yet")
            if cooling:
                return hold(f"{backlog}, cooling down")
            return Decision(asked, f"{backlog}: {_workers(asked)}", idle_since)
        wanted_down = idle and current > policy.minimum

    if not wanted_down:
        if current == policy.maximum and depth > policy.backlog_per_worker * current:
            return hold(f"{depth} ready, at the maximum of {policy.maximum}")
        return hold(f"{depth} ready: {_workers(current)} enough")
    waited = now - idle_since
    what = "paused" if paused else "nothing ready"
    if waited < policy.scale_down_after:
        return hold(f"{what} for {waited:.0f} of {policy.scale_down_after:.0f} s")
    if cooling:
        return hold(f"{what} for {waited:.0f} s, cooling down")
    return Decision(current - 1, f"{what} for {waited:.0f} s: one worker fewer", idle_since)


# --- The supervisor -----------------------------------------------------------------------------


def read_queue(queue):
    """(ready messages, consumers) of `queue`, or (None, None) when RabbitMQ does not answer."""
    from jobs.dashboard import queue_counts

    try:
        return queue_counts([queue])[queue]
    except Exception as exc:
        logger.warning("could not read queue %s: %s", queue, exc)
        return None, None


def is_paused(queue):
    """True while staff keep `queue` paused; False if the database does not answer (a pause
    only holds the count, so erring this way costs at most workers that idle)."""
    from django.db import close_old_connections

    from jobs.pause import paused

    close_old_connections()  # a long-running process: drop a connection the server closed
    try:
        return queue in paused()
    except Exception as exc:
        logger.warning("could not read the paused queues: %s", exc)
        return False


def worker_command(app, queue, slot, options=()):
    """The command line of worker `slot` (1, 2, ...) of `queue`: a node name of its own,
    `<queue>-<slot>@<host>`, reused by the worker that replaces it."""
    return [
        sys.executable, "-m", "celery", "-A", app, "worker",
        "--queues", queue, "--hostname", f"{queue}-{slot}@%h", "--loglevel", "INFO",
        *options,
    ]  # fmt: skip


# prctl(PR_SET_PDEATHSIG) exists on Linux only: there, a worker gets SIGTERM (warm shutdown)
# when the supervisor dies without stopping it (SIGKILL, OOM), instead of consuming on
# unsupervised while a restarted supervisor starts as many again.
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
PR_SET_PDEATHSIG = 1


def _stop_with_parent(parent_pid):
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:  # the parent died before the line above took effect
            os._exit(1)


class Supervisor:
    """Runs between policy.minimum and policy.maximum workers for `queue`.

    `command(slot)` is a worker's command line; `read` and `paused` are read_queue and
    is_paused for `queue` (a test can hand in others). Call `tick()` every few seconds, and
    `stop_all()` at the end.
    """

    def __init__(self, queue, policy, command, *, read=None, paused=None, stop_timeout=60.0,
                 clock=time.monotonic, env=None):  # fmt: skip
        self.queue = queue
        self.policy = policy
        self.command = command
        self.read = read or (lambda: read_queue(queue))
        self.paused = paused or (lambda: is_paused(queue))
        # How long a stopping worker may take to finish its task before it is killed: longer
        # than the queue's longest job (its hard time limit), or the job is killed midway
        # (and comes back, late acks: done twice, which its idempotency key absorbs).
        self.stop_timeout = stop_timeout
        self.clock = clock
        self.env = env
        self.running = {}  # {slot: Popen}
        self.stopping = []  # [(slot, Popen, kill at)]
        self.idle_since = None
        self.last_change = None
        self._last_reason = None

    def tick(self):
        """Look at the queue once and start or stop workers; return the Decision."""
        self._reap()
        depth, consumers = self.read()
        paused = self.paused()
        now = self.clock()
        decision = desired_workers(
            depth, consumers, len(self.running), self.policy, paused=paused,
            idle_since=self.idle_since, last_change=self.last_change, now=now,
        )  # fmt: skip
        self.idle_since = decision.idle_since
        change = decision.workers - len(self.running)
        if change:
            logger.info(
                "%s: %d -> %s: %s (%s ready, %s consumers)",
                self.queue, len(self.running), _workers(decision.workers), decision.reason, depth,
                consumers,
            )  # fmt: skip
            for _ in range(change):
                self._start()
            for _ in range(-change):
                self._stop(max(self.running))  # the newest first
            self.last_change = now
        elif _gist(decision.reason) != self._last_reason:
            # A hold is logged when it says something new, not at every look with new numbers.
            logger.info("%s: %s: %s", self.queue, _workers(len(self.running)), decision.reason)
        self._last_reason = None if change else _gist(decision.reason)
        return decision

    def pids(self):
        """The process ids of every worker started and not yet gone, stopping ones included."""
        return [p.pid for p in self.running.values()] + [p.pid for _, p, _ in self.stopping]

    def _start(self):
        slot = next(n for n in range(1, self.policy.maximum + 2) if n not in self.running)
        parent = os.getpid()
        process = subprocess.Popen(
            self.command(slot),
            env=self.env,
            start_new_session=True,  # its own process group: a kill reaches its pool too
            preexec_fn=lambda: _stop_with_parent(parent),
        )
        self.running[slot] = process
        logger.info("%s: started worker %s-%d (pid %d)", self.queue, self.queue, slot, process.pid)

    def _stop(self, slot):
        process = self.running.pop(slot)
        process.send_signal(signal.SIGTERM)  # warm shutdown: the task in hand finishes
        self.stopping.append((slot, process, self.clock() + self.stop_timeout))
        logger.info(
            "%s: stopping worker %s-%d (pid %d): warm shutdown", self.queue, self.queue, slot,
            process.pid,
        )  # fmt: skip

    def _reap(self):
        for slot, process in list(self.running.items()):
            if process.poll() is not None:
                del self.running[slot]
                logger.warning(
                    "%s: worker %s-%d exited by itself (code %s)",
                    self.queue, self.queue, slot, process.returncode,
                )  # fmt: skip
        for entry in list(self.stopping):
            slot, process, kill_at = entry
            if process.poll() is not None:
                self.stopping.remove(entry)
                logger.info("%s: worker %s-%d stopped", self.queue, self.queue, slot)
            elif self.clock() > kill_at:
                logger.warning(
                    "%s: worker %s-%d still running %.0f s after SIGTERM: killed",
                    self.queue, self.queue, slot, self.stop_timeout,
                )  # fmt: skip
                _kill_group(process)

    def stop_all(self, timeout=None):
        """Warm shutdown of every worker, at once; kill what is left after `timeout`."""
        for slot in sorted(self.running, reverse=True):
            self._stop(slot)
        deadline = self.clock() + (self.stop_timeout if timeout is None else timeout)
        for slot, process, _ in self.stopping:
            try:
                process.wait(max(0.0, deadline - self.clock()))
            except subprocess.TimeoutExpired:
                logger.warning("%s: worker %s-%d killed", self.queue, self.queue, slot)
                _kill_group(process)
        self.stopping.clear()


def _workers(count):
    return f"{count} worker" if count == 1 else f"{count} workers"


def _gist(reason):
    return re.sub(r"\d+", "N", reason)


def _kill_group(process):
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()

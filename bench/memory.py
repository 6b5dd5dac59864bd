"""Peak memory of a process, read from /proc: the benchmarks' and the worker's pool processes.

Standard library only: bench/plain.py reads its own peak with it, and importing more (Django,
kombu) would add to the very figure it reports.
"""

import threading
from pathlib import Path

MB = 1024 * 1024


def pool_children(pid):
    """The ids of the processes a prefork worker (its main process `pid`) runs tasks in.

    Read for every thread of the worker: a process is listed under the thread that forked it,
    and a replacement for a retired pool process may be forked by another thread than the first.
    """
    children = []
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children += [int(child) for child in listing.read_text().split()]
        except OSError:
            continue  # the thread ended meanwhile
    return children


def memory_of(pid="self"):
    """{"VmRSS": resident bytes now, "VmHWM": resident bytes at the peak so far}, or {} if gone.

    VmHWM is the kernel's high-water mark of the process's resident memory since it started:
    the same figure as getrusage's ru_maxrss, which is what billiard compares with a worker's
    --max-memory-per-child after every task (without psutil installed).
    """
    values = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0]) * 1024  # reported in kB
    except OSError:
        return {}
    return values


class PoolPeaks:
    """The peak resident memory of each pool process of `worker`, watched while a block runs.

        peaks = PoolPeaks(worker)
        with peaks: ...    # peaks.bytes: {pid: VmHWM}; enter it again to watch more

    A thread reads VmHWM of the worker's pool processes every `interval` seconds. A high-water
    mark only grows, so a sample taken late misses nothing, except what a process replaced
    meanwhile (--max-tasks-per-child, --max-memory-per-child) reached after its last sample:
    such a process is counted in `replaced`.
    """

    def __init__(self, worker, interval=0.2):
        self.worker = worker
        self.interval = interval
        self.bytes = {}
        self._stop = threading.Event()
        self._thread = None
        self._alive = []
        # What a pool process holds before its first task: Python, Django, Celery, the shop.
        self.idle = max(
            (memory_of(pid).get("VmRSS", 0) for pid in pool_children(worker.proc.pid)), default=0
        )

    def sample(self):
        self._alive = pool_children(self.worker.proc.pid)
        for pid in self._alive:
            peak = memory_of(pid).get("VmHWM")
            if peak:
                self.bytes[pid] = max(peak, self.bytes.get(pid, 0))

    def _watch(self):
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self):
        """Watch (again: the peaks of earlier blocks are kept)."""
        self.sample()
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()
        self.sample()

    @property
    def peak(self):
        return max(self.bytes.values(), default=0)

    @property
    def replaced(self):
        """How many pool processes seen were gone at the last sample."""
        return len(set(self.bytes) - set(self._alive))

    def as_dict(self):
        return {
            "peak_mb_per_pool_process": sorted(round(b / MB, 1) for b in self.bytes.values()),
            "idle_rss_mb_of_pool_process": round(self.idle / MB, 1),
            "pool_processes_replaced": self.replaced,
        }

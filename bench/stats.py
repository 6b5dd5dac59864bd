"""Alternation and statistics, and the results they make.

Running the sides of a comparison in turn (alternate, interleaved); rates, medians and
percentiles; a benchmark's Result lines and Report, the table of them, and say() for progress.
"""

import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field


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

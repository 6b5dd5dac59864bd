"""Baselines run in a plain Python process of their own: the same work, without Celery.

    python -m bench.plain thumbnails OUT_DIR WIDTHS LIMITS FILE...   # renditions of each file
    python -m bench.plain report REPORT_ID                    # shop.reports.run_sales_report

Each prints one line of JSON: the seconds the work took (timed in here, so neither starting
Python nor importing counts, as for a worker that is already running), how much it did, and
the process's own memory (VmHWM, its peak resident memory, and VmRSS before the work), read
the same way as a worker's pool process (bench/memory.py, memory_of). A process of its own,
not the benchmark's, so that its peak is the baseline's alone.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

from bench.memory import memory_of

ROOT = Path(__file__).resolve().parent.parent


def thumbnails(out_dir, widths, limits, *files):
    """The renditions of every file, one after the other, written to `out_dir` as files.

    `widths` as "160,480,1200", `limits` as the JSON of media_jobs.images.Limits. The same
    Pillow code as the media jobs (media_jobs.images: header check, draft, reduce, Lanczos,
    the same encoders and options); no Django, no database, no broker, no job.
    """
    from media_jobs import images

    widths = [int(w) for w in widths.split(",")]
    limits = images.Limits(**json.loads(limits))
    before = memory_of()
    renditions = 0
    started = time.perf_counter()
    for n, path in enumerate(files):
        with open(path, "rb") as original:
            rendered = images.make_renditions(original, widths, limits)
        folder = Path(out_dir) / str(n)
        folder.mkdir(parents=True, exist_ok=True)
        for r in rendered:
            (folder / f"{r.width}w.{r.format}").write_bytes(r.data)
        renditions += len(rendered)
    return {"seconds": time.perf_counter() - started, "renditions": renditions, "before": before}


def report(report_id):
    """Build sales report `report_id` by calling the job's work directly, in this process.

    shop.reports.run_sales_report: the same chunked queries, progress updates, CSV written to
    the storage and figures, with Django set up but no worker, no broker and no job runner.
    """
    import django

    django.setup()
    from shop import reports

    before = memory_of()
    started = time.perf_counter()
    outcome = reports.run_sales_report(int(report_id))
    return {"seconds": time.perf_counter() - started, "rows": outcome["rows"], "before": before}


COMMANDS = {"thumbnails": thumbnails, "report": report}


def in_own_process(env, command, *args, timeout=900):
    """Run `python -m bench.plain COMMAND ARGS` with the benchmark's environment; its JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.plain", command, *map(str, args)],
        cwd=ROOT,
        env=env.service_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.plain {command} exited {done.returncode}:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    result = COMMANDS[sys.argv[1]](*sys.argv[2:])
    result["peak"] = memory_of()["VmHWM"]
    print(json.dumps(result))

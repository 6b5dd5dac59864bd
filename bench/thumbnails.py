"""4. Thumbnails: 12-megapixel JPEGs through the media pipeline, against a plain Pillow loop.

The same pictures, photo-like 4000 x 3000 JPEGs of about 5 MB (detail at every scale and
sensor-like grain, so the encoders work as hard as on a real photo), each made into the
shop's renditions (RENDITION_WIDTHS, 160, 480 and 1200 px, each as WebP and JPEG: 6 per
picture), alternating run by run:

- plain loop (baseline): one Python process (bench/plain.py) reads each file from disk, calls
  the same Pillow code (media_jobs.images.make_renditions) and writes the renditions to disk;
  no Django, no database, no broker;
- ours: the media worker of the Procfile (`--max-tasks-per-child 100 --max-memory-per-child
  262144`) at concurrency 1, so that it has the same CPU as the plain loop: the ratio is what
  the pipeline costs. (The Procfile's worker runs one such process per core; on this shared
  2-core machine a second process measures mostly the others' load.) Each picture is attached
  as the staff page does (media_jobs.services: stored, its job recorded and published on
  commit) while the worker does not consume; the run is timed from the moment it is told to
  consume until the last job is marked done: the original read from the storage, the
  renditions made, stored, their rows written, the job's claim and outcome, the Celery result.

Peak memory per worker process: the high-water mark of resident memory (VmHWM in
/proc/<pid>/status, the figure --max-memory-per-child checks after each task) of every pool
process, watched while it works (bench/memory.py); the plain loop's is its own VmHWM.
"""

import io
import json
import random
import time
from dataclasses import asdict

from bench.broker import consume, pause_consumers, purge, retry_on_broker_drop
from bench.environment import QUICK
from bench.memory import MB, PoolPeaks
from bench.plain import in_own_process
from bench.processes import running, start_worker, wait_ready
from bench.shop_data import bench_product, seconds_until_last_finished, wait_for_jobs
from bench.stats import Report, Result, alternate, median, peak_memory, rates, say

NAME = "thumbnails"
PICTURES_PER_RUN = 4 if QUICK else 8
ROUNDS = 2 if QUICK else 4
DISTINCT_PICTURES = 1 if QUICK else 4  # made once; each run goes through them in turn
SIZE = (4000, 3000)  # 12 megapixels
QUEUE = "media"
# The media worker's options in the Procfile.
MEDIA_WORKER_ARGS = ("--max-tasks-per-child", "100", "--max-memory-per-child", "262144")
GOAL_RATIO = 0.8
GOAL_PEAK_MB = 300
PLAIN = "plain Pillow loop"


def photo(seed, size=SIZE):
    """A photo-like JPEG: blotches at several scales and grain, like detail in a real photo.

    (A smooth gradient compresses to almost nothing and makes the encoders look fast.)
    """
    from PIL import Image

    rng = random.Random(seed)
    width, height = size
    picture = Image.new("RGB", size, tuple(rng.randrange(60, 200) for _ in range(3)))
    for scale, weight in ((64, 0.5), (16, 0.35), (4, 0.25)):
        small = (width // scale, height // scale)
        layer = Image.merge("RGB", [Image.effect_noise(small, 80) for _ in range(3)])
        picture = Image.blend(picture, layer.resize(size, Image.Resampling.BICUBIC), weight)
    grain = Image.effect_noise(size, 80).convert("RGB")
    out = io.BytesIO()
    Image.blend(picture, grain, 0.15).save(out, format="JPEG", quality=90)
    return out.getvalue()


def run(env):
    from django.conf import settings
    from django.core.files.uploadedfile import SimpleUploadedFile

    from config.celery import app
    from media_jobs import services
    from media_jobs.renditions import limits_from_settings
    from media_jobs.tasks import make_renditions

    with running():
        # The worker boots while the pictures are made: on 2 cores, side by side is faster.
        worker = start_worker(
            env, f"{NAME}-worker", queues=(QUEUE,), concurrency=1, args=MEDIA_WORKER_ARGS,
            wait=False,
        )  # fmt: skip
        say(f"{NAME}: making {DISTINCT_PICTURES} pictures of {SIZE[0]} x {SIZE[1]}")
        folder = env.dir / "pictures"
        folder.mkdir()
        pictures = []
        for seed in range(DISTINCT_PICTURES):
            pictures.append(folder / f"photo-{seed}.jpg")
            pictures[-1].write_bytes(photo(seed))
        product = bench_product()
        widths = ",".join(map(str, settings.RENDITION_WIDTHS))
        limits = json.dumps(asdict(limits_from_settings()))
        wait_ready(worker)
        peaks = PoolPeaks(worker)

        def plain(i):
            files = [pictures[n % len(pictures)] for n in range(PICTURES_PER_RUN)]
            out = env.dir / f"plain-{i}"
            result = in_own_process(env, "thumbnails", out, widths, limits, *files)
            say(f"{result['renditions'] / result['seconds']:.1f} renditions/s ({PLAIN})")
            return result

        def ours(i):
            def once():
                pause_consumers(app, [worker], QUEUE, env)
                purge(env, QUEUE)
                keys = []
                for n in range(PICTURES_PER_RUN):
                    data = pictures[n % len(pictures)].read_bytes()
                    image = services.attach_image(product, SimpleUploadedFile("photo.jpg", data))
                    keys.append(make_renditions.job_key(image.pk))
                with peaks:
                    started = time.time()
                    consume(app, worker, QUEUE, True)
                    jobs = wait_for_jobs(keys)
                consume(app, worker, QUEUE, False)
                return {
                    "seconds": seconds_until_last_finished(jobs, started),
                    "renditions": sum(len(job.outcome["renditions"]) for job in jobs),
                    # media_jobs.renditions.make_renditions alone: read, render, store, rows.
                    "work_seconds": sum(job.outcome["seconds"] for job in jobs),
                }

            result = retry_on_broker_drop(once)
            say(f"{result['renditions'] / result['seconds']:.1f} renditions/s (ours)")
            return result

        say(f"{NAME}: {PICTURES_PER_RUN} pictures per run, {ROUNDS} runs per side")
        runs = alternate({PLAIN: plain, "ours": ours}, ROUNDS)
    return report(runs, peaks)


def report(runs, peaks):
    per_second = rates(runs, "renditions")
    results = [
        Result(
            NAME, "renditions/s, 12 MP JPEGs", "/s", per_second[PLAIN], per_second["ours"],
            PLAIN, "ours (1 process)", goal=f"≥ {GOAL_RATIO:.0%} of plain",
        ),
        peak_memory(NAME, runs, PLAIN, peaks, "ours (worker)", GOAL_PEAK_MB),
    ]  # fmt: skip
    results[0].met = results[0].ratio >= GOAL_RATIO

    def per_picture(side, what="seconds"):
        return median([r[what] / PICTURES_PER_RUN for r in runs[side]])

    details = {
        "pictures_per_run": PICTURES_PER_RUN,
        "runs_per_side": ROUNDS,
        "picture": f"{SIZE[0]} x {SIZE[1]} JPEG, quality 90, photo-like",
        "renditions_per_picture": runs[PLAIN][0]["renditions"] // PICTURES_PER_RUN,
        "worker_args": f"--concurrency 1 {' '.join(MEDIA_WORKER_ARGS)}",
        "renditions_per_second": per_second,
        "seconds_per_picture": {
            PLAIN: per_picture(PLAIN),
            "ours": per_picture("ours"),
            "ours, in media_jobs.renditions.make_renditions": per_picture("ours", "work_seconds"),
        },
        "runs": runs,
        **peaks.as_dict(),
        "plain_rss_mb_before_work": [round(r["before"]["VmRSS"] / MB, 1) for r in runs[PLAIN]],
    }
    notes = []
    if peaks.replaced:
        notes.append(
            f"{peaks.replaced} pool process(es) replaced during the run (--max-memory-per-child "
            "or --max-tasks-per-child): what they reached after their last sample is not seen"
        )
    return Report(NAME, results, details, notes)

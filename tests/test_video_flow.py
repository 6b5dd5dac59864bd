"""Product videos end to end: the staff page, real RabbitMQ, a real media worker, real ffmpeg.

- an uploaded video gets its poster frame and its preview, the product page shows them, and
  the same message delivered again does nothing;
- broken and over-long videos end in failed jobs with their reasons (and dead letters), and the
  same worker process goes on to serve the next upload;
- a runaway encode is stopped, by ffmpeg's own deadline, by the task's soft time limit or by
  its hard time limit, and leaves no ffmpeg running.

Sample videos are made on the fly with ffmpeg's `testsrc`; without ffmpeg these tests are
skipped (by importing test_video.py), saying how to install it.
"""

import re
import subprocess
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import reverse
from PIL import Image

from config import queues
from config.celery import app as celery_app
from jobs.models import Job
from jobs.outbox import enqueue_on_commit
from media_jobs.models import ProductVideo
from media_jobs.tasks import make_poster_and_preview
from shop.models import Product
from testkit.processes import wait_for
from tests.test_video import (
    MP4_HEAD,
    ffmpeg_processes,
    kill_leftovers,
    make_runaway_video,
    make_video,
    probe_file,
    truncated,
)

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

MEDIA_QUEUES = (queues.MEDIA,)


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_user("clerk", password="x", is_staff=True)
    client.force_login(user)
    return client


def upload_through_the_staff_page(client, product, path):
    response = client.post(
        reverse("media_jobs:upload_video", args=[product.pk]),
        {"video": SimpleUploadedFile(path.name, path.read_bytes())},
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    return ProductVideo.objects.filter(product=product).latest()


def store_without_the_form(product, name, data, duration=3.0):
    """A video the form would refuse, stored the way another import path, an older upload or
    a limit tightened since would have: the worker must cope on its own."""
    storage = ProductVideo._meta.get_field("original").storage
    with transaction.atomic():
        row = ProductVideo.objects.create(
            product=product,
            original=storage.save(f"videos/originals/{name}", ContentFile(data)),
            container="mp4", codec="h264", width=640, height=360, duration=duration,
            size=len(data),
        )  # fmt: skip
        enqueue_on_commit(make_poster_and_preview, row.pk, subject=row)
    return row


def video_job(row):
    return Job.objects.get(key=make_poster_and_preview.job_key(row.pk))


def wait_until_final(row, timeout=30):
    def final():
        job = video_job(row)
        return job if job.is_final else None

    return wait_for(final, timeout, message=f"the job of video {row.pk} to finish")


def test_an_uploaded_video_gets_its_poster_and_preview_once(
    staff_client, broker, start_worker, product, media_root, tmp_path
):
    worker = start_worker(queues=MEDIA_QUEUES, concurrency=1, VIDEO_PREVIEW_SECONDS="2")

    row = upload_through_the_staff_page(
        staff_client, product, make_video(tmp_path / "mug.mp4", seconds=3, audio=True)
    )
    job = wait_until_final(row)

    assert job.state == Job.State.SUCCEEDED, job.last_error
    assert job.attempts == 1
    row.refresh_from_db()
    preview = probe_file(media_root / row.preview.name)
    [stream] = preview["streams"]  # the video alone: no sound
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 320, 180)
    assert float(stream["duration"]) == pytest.approx(2, abs=0.1)
    assert (row.preview_width, row.preview_height) == (320, 180)
    with Image.open(media_root / row.poster.name) as poster:
        assert (poster.format, poster.size) == ("JPEG", (640, 360))
        poster.load()  # decodes whole

    html = staff_client.get(product.get_absolute_url()).content.decode()
    assert f'poster="{row.poster.url}"' in html and f'src="{row.preview.url}"' in html
    page = staff_client.get(reverse("media_jobs:videos")).content.decode()
    assert "Poster and preview: ready at" in page

    # The same message again (a redelivery, the outbox publishing twice, a replay): the job is
    # done, the copy does nothing; the files are the same files.
    files = (row.poster.name, row.preview.name)
    made = {name: (media_root / name).stat().st_mtime_ns for name in files}
    make_poster_and_preview.apply_async(args=[row.pk], task_id=job.task_id)
    wait_for(
        lambda: f"job {job.key} was already done; this copy does nothing" in worker.log(),
        message="the copy to be seen and skipped",
    )
    job.refresh_from_db()
    assert job.attempts == 1
    assert {name: (media_root / name).stat().st_mtime_ns for name in made} == made
    assert broker.depth("media.dead") == 0


def test_broken_and_over_long_videos_fail_clearly_and_the_worker_serves_the_next(
    staff_client, broker, start_worker, media_root, tmp_path
):
    worker = start_worker(queues=MEDIA_QUEUES, concurrency=1, VIDEO_MAX_SECONDS="5")
    cut_source = make_video(tmp_path / "cut-source.mp4", seconds=3, faststart=False)
    cut_later = make_video(tmp_path / "cut-later.mp4", seconds=3)
    long = make_video(tmp_path / "long.mp4", seconds=6, size="64x48")
    broken = [
        # (name, content, what the job says)
        ("random.mp4", MP4_HEAD + bytes(range(256)) * 100, "cannot be read as a video"),
        ("cut.mp4", truncated(cut_source), "moov atom not found"),
        ("cut-later.mp4", truncated(cut_later, keep=0.3), "the video is truncated or damaged"),
        ("long.mp4", long.read_bytes(), "the video is 6 s long; the limit is 5 s"),
        ("song.mp4", song(tmp_path), "the file has sound but no picture"),
    ]
    rows = {}
    for number, (name, data, _) in enumerate(broken):
        product = Product.objects.create(name=name, slug=f"b{number}", price=Decimal("1"))
        rows[name] = store_without_the_form(product, name, data)
    # Queued behind all of them, for the same single worker process.
    next_product = Product.objects.create(name="Next", slug="next", price=Decimal("1"))
    after = upload_through_the_staff_page(
        staff_client, next_product, make_video(tmp_path / "ok.mp4", seconds=1)
    )

    assert wait_until_final(after).state == Job.State.SUCCEEDED, video_job(after).last_error
    page = staff_client.get(reverse("media_jobs:videos")).content.decode()
    for name, _, reason in broken:
        job = wait_until_final(rows[name])
        assert job.state == Job.State.FAILED, name
        assert reason in job.last_error, (name, job.last_error)
        assert job.attempts == 1, f"{name}: a broken video is not retried"
        assert f"Poster and preview: failed: {job.last_error}" in page
        assert not ProductVideo.objects.get(pk=rows[name].pk).ready

    dead = wait_for(
        lambda: len(letters := broker.peek("media.dead")) == len(broken) and letters,
        message="a dead letter per broken video",
    )
    assert {letter["headers"]["id"] for letter in dead} == {
        video_job(row).task_id for row in rows.values()
    }
    worker.assert_running()
    assert ffmpeg_processes(media_root) == []


def song(tmp_path):
    """An MP4 with sound and no picture (what an .m4a is)."""
    path = tmp_path / "song.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         "sine=duration=1", "-c:a", "aac", str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    return path.read_bytes()


@pytest.fixture(scope="module")
def runaway(tmp_path_factory):
    return make_runaway_video(tmp_path_factory.mktemp("runaway") / "runaway.mp4")


@pytest.fixture
def published_time_limits(monkeypatch):
    """set(soft, hard): the time limits this process (playing the web) publishes video jobs with.

    Celery writes a task's time limits into every message it publishes (the `timelimit`
    header) and a worker applies the message's over its own task's: the limits that count are
    those of the process that asked for the job. The tests set them on the worker too, as a
    deployment does (the lease of a job's claim is counted from the worker's).
    """
    task = celery_app.tasks[make_poster_and_preview.name]

    def set_limits(soft, hard):
        monkeypatch.setattr(task, "soft_time_limit", soft)
        monkeypatch.setattr(task, "time_limit", hard)
        monkeypatch.setattr(task, "_exec_options", None)  # Celery's cache of the two above

    return set_limits


def limit_env(soft, hard):
    return {
        name: str(value)
        for name, value in (("VIDEO_SOFT_TIME_LIMIT", soft), ("VIDEO_TIME_LIMIT", hard))
        if value is not None
    }


# Each stop: the time limits (soft, hard) of the job, the worker's settings that make this stop
# the first to come, and what the job says. The preview is asked for the whole two minutes of
# 1080p: some 20 s of ffmpeg's time.
RUNAWAY_STOPS = [
    pytest.param(
        (None, None),  # the defaults: 90 s and 105 s
        {"VIDEO_FFMPEG_TIMEOUT": "1"},
        r"processing the video took longer than the 1 s allowed \(making the preview was stopped",
        id="ffmpeg-deadline",
    ),
    pytest.param(
        (2, 30),
        {"JOB_MAX_RETRIES": "0"},  # no retry: an interrupted attempt is retried otherwise
        r"gave up after 1 attempts: took longer than its soft time limit",
        id="soft-time-limit",
    ),
    pytest.param(
        # No soft limit anywhere (0 is none; with one, Celery's prefork pool fires the hard
        # limit no earlier than the soft one): nothing asks the task to stop, the hard limit
        # kills the worker process running it.
        (None, 2),
        {"VIDEO_SOFT_TIME_LIMIT": "0", "CELERY_TASK_SOFT_TIME_LIMIT": "0"},
        "killed at its hard time limit",
        id="hard-time-limit",
    ),
]


@pytest.mark.parametrize(("time_limits", "env", "reason"), RUNAWAY_STOPS)
def test_a_runaway_encode_is_stopped_and_leaves_no_ffmpeg_behind(
    broker, start_worker, product, media_root, runaway, published_time_limits,
    time_limits, env, reason,
):  # fmt: skip
    if time_limits != (None, None):
        published_time_limits(*time_limits)
    worker = start_worker(
        queues=MEDIA_QUEUES,
        concurrency=1,
        VIDEO_PREVIEW_SECONDS="600",
        VIDEO_MAX_SECONDS="600",
        **limit_env(*time_limits),
        **env,
    )
    row = store_without_the_form(product, "runaway.mp4", runaway.read_bytes(), duration=120)
    try:
        wait_for(lambda: ffmpeg_processes(media_root), message="ffmpeg to start")
        job = wait_until_final(row, timeout=60)

        assert job.state == Job.State.FAILED
        assert re.search(reason, job.last_error), job.last_error
        # Stopped at once, by our code or by the kernel; left alone it would run for ~20 s.
        wait_for(lambda: not ffmpeg_processes(media_root), timeout=10, message="no ffmpeg left")
        [dead] = wait_for(lambda: broker.peek("media.dead"), message="the dead letter")
        assert dead["headers"]["id"] == job.task_id
        assert broker.depth("media") == 0, "not requeued"
        worker.assert_running()
        assert not ProductVideo.objects.get(pk=row.pk).ready
    finally:
        kill_leftovers(media_root)

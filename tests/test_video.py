"""Product videos with the real ffprobe and ffmpeg, without a broker: inspecting, previews and
posters, ffmpeg's limits, the upload form, the stored video and the shop's page.

Videos are made here with ffmpeg's `testsrc` source. The decisions alone (no ffmpeg needed) are
in test_video_decisions.py; the same work on a real worker and broker in test_video_flow.py.
"""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from PIL import Image

from jobs.models import Job
from media_jobs import ffmpeg, video, video_previews
from media_jobs.models import ProductVideo
from media_jobs.tasks import make_poster_and_preview
from shop.models import Product
from testkit.processes import ROOT, wait_for
from tests.components import missing
from tests.test_video_decisions import LIMITS, MP4, MP4_HEAD

if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
    # One line in the summary, for this module and test_video_flow.py (which imports it).
    missing(
        "ffmpeg (the video tests)",
        "run scripts/ensure-ffmpeg.sh as root, or sudo apt-get install -y "
        "--no-install-recommends ffmpeg",
        allow_module_level=True,
    )

ENCODING = video.Encoding(preview_width=320, preview_seconds=2, poster_width=640)


# --- sample videos, made with ffmpeg's test source ------------------------------------------------


SHOT_AT = "+48.8584+002.2945/"


def make_video(path, *, seconds=3, size="640x360", audio=False, codec="libx264", faststart=True):
    """A test-pattern video at `path` (its extension picks the container); returns the path."""
    args = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc=size={size}:rate=25:duration={seconds}"]  # fmt: skip
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=duration={seconds}", "-c:a", "aac"]
    if codec == "libx264":
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    else:  # VP8 for WebM: Debian's libvpx, in its fastest mode
        args += ["-c:v", codec, "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k"]
    if faststart:
        args += ["-movflags", "+faststart"]
    # Where it was shot, as phones write it: what must never reach the shop's preview.
    args += ["-metadata", f"location={SHOT_AT}"]
    subprocess.run([*args, str(path)], check=True, timeout=60)
    return Path(path)


def make_runaway_video(path):
    """Two minutes of 1080p (14 MB) made in about a second: one second, encoded once and
    repeated by stream copy. Previewing all of it takes ffmpeg some 20 s of CPU."""
    segment = path.with_name("segment.mp4")
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30:duration=1",
         "-c:v", "libx264", "-preset", "veryfast", "-crf", "38", "-pix_fmt", "yuv420p",
         str(segment)],
        check=True, timeout=60,
    )  # fmt: skip
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
         "-stream_loop", "119", "-i", str(segment), "-c", "copy", str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    segment.unlink()
    return path


def truncated(path, keep=0.5):
    """The first `keep` of the file at `path`: what an interrupted upload or copy leaves."""
    data = Path(path).read_bytes()
    return data[: int(len(data) * keep)]


def probe_file(path):
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    return json.loads(result.stdout)


def ffmpeg_processes(marker):
    """Pids of the ffmpeg and ffprobe processes still running on a file under `marker`.

    Read from /proc (no psutil here). A zombie (dead, not yet reaped) runs nothing: not counted.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue  # gone in the meantime
        program = Path(argv[0].decode(errors="replace")).name
        mine = any(str(marker).encode() in arg for arg in argv)
        if program in ("ffmpeg", "ffprobe") and state != "Z" and mine:
            found.append(int(entry.name))
    return found


def kill_leftovers(marker):
    """For a broken build only: what a failing test leaves running, it stops (by pid)."""
    for pid in ffmpeg_processes(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def ff():
    return ffmpeg.find_ffmpeg(memory_bytes=1024 * 1024 * 1024)


@pytest.fixture
def sample(tmp_path):
    return make_video(tmp_path / "sample.mp4", audio=True)


# --- the real ffprobe and ffmpeg ------------------------------------------------------------------


def test_inspect_reads_a_real_mp4_and_webm(ff, tmp_path):
    mp4 = make_video(tmp_path / "a.mp4", audio=True)
    webm = make_video(tmp_path / "a.webm", seconds=1, size="320x240", codec="libvpx",
                      faststart=False)  # fmt: skip

    info = video.inspect(ff, mp4, LIMITS, ffmpeg.Deadline(30))
    assert (info.container, info.codec, info.width, info.height) == (MP4, "h264", 640, 360)
    assert info.duration == pytest.approx(3, abs=0.05)
    assert info.has_audio
    info = video.inspect(ff, webm, LIMITS, ffmpeg.Deadline(30))
    assert (info.container.name, info.codec, info.width) == ("webm", "vp8", 320)
    assert info.duration == pytest.approx(1, abs=0.1)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: MP4_HEAD + os.urandom(30_000), "cannot be read as a video, it is truncated"),
        (lambda p: truncated(make_video(p, faststart=False)), "moov atom not found"),
        (lambda p: os.urandom(30_000), "not a video we can read"),
    ],
    ids=["random-bytes-behind-an-mp4-header", "truncated-before-its-index", "random-bytes"],
)
def test_inspect_refuses_broken_files(ff, tmp_path, make, reason):
    path = tmp_path / "broken.mp4"
    path.write_bytes(make(tmp_path / "source.mp4"))

    with pytest.raises(video.VideoRejected, match=reason):
        video.inspect(ff, path, LIMITS, ffmpeg.Deadline(30))


def test_the_probe_never_follows_a_playlist_to_other_files(ff, sample, tmp_path):
    """An HLS playlist names files to read: left to guess the format, ffprobe would open
    `sample` (or /etc/passwd, or a URL) for us. Read as the MP4 it claims to be, it is garbage."""
    playlist = tmp_path / "clip.mp4"
    playlist.write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXTINF:3,\nfile:{sample}\n#EXT-X-ENDLIST\n"
    )

    with pytest.raises(video.VideoRejected, match="cannot be read as a video"):
        video.probe(ff, playlist, MP4, ffmpeg.Deadline(30))


def test_a_preview_and_a_poster_are_made_small_silent_and_decodable(ff, sample, tmp_path):
    info = video.inspect(ff, sample, LIMITS, ffmpeg.Deadline(30))
    deadline = ffmpeg.Deadline(60)

    preview = video.make_preview(ff, sample, info, tmp_path / "preview.mp4", ENCODING, deadline)
    poster = video.make_poster(ff, sample, info, ENCODING, deadline, tmp_path)

    assert (preview.width, preview.height) == (320, 180)
    assert preview.duration == pytest.approx(2, abs=0.1)
    found = probe_file(tmp_path / "preview.mp4")
    assert [s["codec_type"] for s in found["streams"]] == ["video"], "no sound"
    assert found["streams"][0]["codec_name"] == "h264"
    assert SHOT_AT in json.dumps(probe_file(sample)), "the sample says where it was shot"
    assert SHOT_AT not in json.dumps(found), "the preview does not"
    with Image.open(io.BytesIO(poster.data)) as picture:
        assert (picture.format, picture.size) == ("JPEG", (640, 360))


def test_a_video_truncated_after_its_index_is_refused_when_decoded(ff, tmp_path):
    path = tmp_path / "cut.mp4"
    path.write_bytes(truncated(make_video(tmp_path / "whole.mp4"), keep=0.4))
    info = video.inspect(ff, path, LIMITS, ffmpeg.Deadline(30))  # the header is whole

    with pytest.raises(video.VideoRejected, match="the video is truncated or damaged: only"):
        video.make_preview(ff, path, info, tmp_path / "preview.mp4", ENCODING, ffmpeg.Deadline(60))


def test_a_poster_past_the_end_of_a_truncated_video_fails_clearly(ff, tmp_path):
    path = tmp_path / "cut.mp4"
    path.write_bytes(truncated(make_video(tmp_path / "whole.mp4"), keep=0.2))
    info = video.inspect(ff, path, LIMITS, ffmpeg.Deadline(30))  # the header says 3 s

    with pytest.raises(video.VideoRejected, match=r"no picture could be decoded at 1\.0 s"):
        video.make_poster(ff, path, info, ENCODING, ffmpeg.Deadline(60), tmp_path)


@pytest.fixture(scope="module")
def runaway(tmp_path_factory):
    return make_runaway_video(tmp_path_factory.mktemp("runaway") / "runaway.mp4")


LONG_PREVIEW = video.Encoding(preview_width=320, preview_seconds=600, poster_width=640)
BIG_LIMITS = video.Limits(max_bytes=10**9, max_seconds=600, max_pixels=10**8, max_aspect_ratio=10)


def test_ffmpeg_is_stopped_at_its_deadline_and_leaves_nothing_running(ff, runaway, tmp_path):
    info = video.inspect(ff, runaway, BIG_LIMITS, ffmpeg.Deadline(30))

    with pytest.raises(ffmpeg.TooSlow, match=r"longer than the 1 s allowed \(making the preview"):
        video.make_preview(ff, runaway, info, tmp_path / "p.mp4", LONG_PREVIEW, ffmpeg.Deadline(1))
    assert ffmpeg_processes(runaway) == []


def test_ffmpeg_is_killed_when_the_task_is_interrupted_while_waiting(ff, runaway, tmp_path):
    """The soft time limit raises SoftTimeLimitExceeded in the middle of the wait (a signal
    handler in the worker process): played here with a timer signal."""
    info = video.inspect(ff, runaway, BIG_LIMITS, ffmpeg.Deadline(30))

    def soft_time_limit(signum, frame):
        raise SoftTimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, soft_time_limit)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        with pytest.raises(SoftTimeLimitExceeded):
            video.make_preview(
                ff, runaway, info, tmp_path / "p.mp4", LONG_PREVIEW, ffmpeg.Deadline(60)
            )
        assert ffmpeg_processes(runaway) == []
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        kill_leftovers(runaway)


def test_ffmpeg_dies_with_the_process_that_started_it(runaway, tmp_path):
    """A hard time limit kills the worker process with SIGKILL: no Python code of ours runs
    then, the kernel has to take ffmpeg down with it (PR_SET_PDEATHSIG)."""
    script = textwrap.dedent(f"""
        from media_jobs import ffmpeg, video
        ff = ffmpeg.find_ffmpeg()
        info = video.inspect(ff, {str(runaway)!r}, video.{BIG_LIMITS!r}, ffmpeg.Deadline(30))
        video.make_preview(ff, {str(runaway)!r}, info, {str(tmp_path / "p.mp4")!r},
                           video.{LONG_PREVIEW!r}, ffmpeg.Deadline(120))
    """)
    starter = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    try:
        wait_for(lambda: ffmpeg_processes(tmp_path / "p.mp4"), message="ffmpeg to start")
        starter.kill()
        starter.wait()
        wait_for(lambda: not ffmpeg_processes(runaway), timeout=10, message="ffmpeg to be gone")
    finally:
        starter.kill()
        starter.wait()
        kill_leftovers(runaway)


# --- the upload form, the stored video, the shop --------------------------------------------------


@pytest.fixture(autouse=True)
def media_settings(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.VIDEO_MAX_SECONDS = 10
    settings.VIDEO_MAX_UPLOAD_BYTES = 2 * 1024 * 1024
    settings.VIDEO_PREVIEW_SECONDS = 2
    return settings


@pytest.fixture
def staff_client(db):
    user = get_user_model().objects.create_user("clerk", password="x", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def mug(db):
    return Product.objects.create(name="Stoneware Mug", slug="mug", price=Decimal("14.50"))


def post_video(client, product, name, data):
    return client.post(
        reverse("media_jobs:upload_video", args=[product.pk]),
        {"video": SimpleUploadedFile(name, data)},
    )


def refused_uploads(tmp_path):
    """(name, file content, the reason staff read) of what the form must refuse."""
    return [
        ("random.mp4", os.urandom(20_000), "This file is not a video we can read"),
        ("photo.mp4", _jpeg(), "This is a picture, not a video"),
        ("fake.mp4", MP4_HEAD + os.urandom(20_000), "cannot be read as a video"),
        ("cut.mp4", truncated(make_video(tmp_path / "cut.mp4", faststart=False)), "moov atom"),
        ("long.mp4", make_video(tmp_path / "long.mp4", seconds=11, size="64x48").read_bytes(),
         "The video is 11 s long; the limit is 10 s"),
        ("big.mp4", MP4_HEAD + bytes(3 * 1024 * 1024), "over the limit of 2.0 MB"),
    ]  # fmt: skip


def _jpeg():
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="JPEG")
    return out.getvalue()


def test_the_upload_form_refuses_garbage_before_any_job(staff_client, mug, tmp_path):
    for name, data, reason in refused_uploads(tmp_path):
        response = post_video(staff_client, mug, name, data)

        assert response.status_code == 200, name
        assert reason in response.content.decode(), name
    assert not ProductVideo.objects.exists()
    assert not Job.objects.exists()
    assert not (tmp_path / "media").exists(), "nothing stored"


def test_a_good_upload_is_stored_by_content_and_asks_for_one_job(staff_client, mug, sample):
    response = post_video(staff_client, mug, "../../clip.html", sample.read_bytes())

    assert response.status_code == 302, response.content.decode()[-2000:]
    row = ProductVideo.objects.get()
    assert (row.container, row.codec, row.width, row.height) == ("mp4", "h264", 640, 360)
    assert row.duration == pytest.approx(3, abs=0.05)
    assert row.original.name.startswith("videos/originals/") and row.original.name.endswith(".mp4")
    assert not row.ready
    job = Job.objects.get()
    assert job.key == make_poster_and_preview.job_key(row.pk)
    assert job.task_name == "media_jobs.make_poster_and_preview"
    page = staff_client.get(reverse("media_jobs:videos")).content.decode()
    assert "Poster and preview: queued" in page


def test_a_job_run_again_makes_only_what_is_missing(mug, sample, media_settings, monkeypatch):
    row = ProductVideo.objects.create(
        product=mug, original=media_file(media_settings, "videos/originals/a.mp4", sample),
        container="mp4", codec="h264", width=640, height=360, duration=3, size=1,
    )  # fmt: skip

    first = video_previews.make_poster_and_preview(row.pk)
    assert first["made"] == ["preview", "poster"]
    row.refresh_from_db()
    poster_file = Path(media_settings.MEDIA_ROOT) / row.poster.name
    poster_bytes = poster_file.read_bytes()

    # Interrupted after the poster, before the preview was saved: only the preview is made.
    ProductVideo.objects.filter(pk=row.pk).update(preview="")
    second = video_previews.make_poster_and_preview(row.pk)
    assert second["made"] == ["preview"]
    assert poster_file.read_bytes() == poster_bytes
    assert sorted(p.name for p in poster_file.parent.iterdir()) == ["poster.jpg", "preview.mp4"]

    # Finished: ffmpeg is not even started.
    monkeypatch.setattr(video, "run", lambda *a, **k: pytest.fail("ffmpeg ran again"))
    assert video_previews.make_poster_and_preview(row.pk)["made"] == []


def media_file(settings, name, source):
    path = Path(settings.MEDIA_ROOT) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, path)
    return name


def test_the_product_page_shows_the_poster_and_plays_the_preview(
    client, mug, sample, media_settings
):
    assert "<video" not in client.get(mug.get_absolute_url()).content.decode()
    row = ProductVideo.objects.create(
        product=mug, original=media_file(media_settings, "videos/originals/a.mp4", sample),
        container="mp4", codec="h264", width=640, height=360, duration=3, size=1,
    )  # fmt: skip
    assert "<video" not in client.get(mug.get_absolute_url()).content.decode(), "not ready yet"

    video_previews.make_poster_and_preview(row.pk)
    row.refresh_from_db()
    html = client.get(mug.get_absolute_url()).content.decode()

    assert f'src="{row.preview.url}"' in html
    assert f'poster="{row.poster.url}"' in html
    assert 'width="320" height="180"' in html
    assert row.original.name not in html, "the original is never served to customers"


def test_the_admin_lists_videos_and_sends_uploads_to_the_staff_page(admin_client, mug, sample,
                                                                    media_settings):  # fmt: skip
    ProductVideo.objects.create(
        product=mug, original=media_file(media_settings, "videos/originals/a.mp4", sample),
        container="mp4", codec="h264", width=640, height=360, duration=3, size=1,
    )  # fmt: skip

    listing = admin_client.get(reverse("admin:media_jobs_productvideo_changelist"))

    assert listing.status_code == 200
    assert "Stoneware Mug" in listing.content.decode()
    assert admin_client.get(reverse("admin:media_jobs_productvideo_add")).status_code == 403

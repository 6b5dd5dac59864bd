"""Product videos, the decisions without ffmpeg: what a file's first bytes say, what ffprobe's
JSON means, what staff read when a video is refused or ffmpeg is missing.

`video.sniff`, `video.check` and `video.check_preview` are tested on bytes and on ffprobe's JSON
written by hand, so these tests run everywhere, ffmpeg installed or not. The real ffmpeg is in
test_video.py (unit) and test_video_flow.py (a real worker and broker).
"""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from media_jobs import ffmpeg, video
from media_jobs.forms import VideoUploadForm

LIMITS = video.Limits(max_bytes=10 * 1024 * 1024, max_seconds=10, max_pixels=4096 * 2160,
                      max_aspect_ratio=10)  # fmt: skip


# --- sniff: what the first bytes say -------------------------------------------------------------

WEBM, MKV = video.Container("webm", "matroska"), video.Container("mkv", "matroska")
MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


@pytest.mark.parametrize(
    ("head", "container"),
    [
        (MP4_HEAD, video.Container("mp4", "mov")),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  ", video.Container("mov", "mov")),
        (b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat", video.Container("mp4", "mov")),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", WEBM),
        (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", MKV),
    ],
    ids=["mp4", "quicktime", "old-quicktime", "webm", "matroska"],
)  # fmt: skip
def test_sniff_picks_the_one_demuxer_for_a_file(head, container):
    assert video.sniff(head) == container


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "this is a picture, not a video"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "this is a picture, not a video"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "this is a picture, not a video"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", r"this is a picture \(HEIC\), not a video"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", r"this is a picture \(AVIF\), not a video"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "AVI videos are not accepted"),
        (b"#EXTM3U\n#EXT-X-VERSION:3\nfile:///etc/passwd", "not a video we can read"),
        (b"%PDF-1.4\n", "not a video we can read"),
        (b"", "not a video we can read"),
    ],
    ids=["jpeg", "png", "webp", "heic", "avif", "avi", "hls-playlist", "pdf", "empty"],
)
def test_sniff_says_what_a_file_is_instead(head, reason):
    with pytest.raises(video.VideoRejected, match=reason):
        video.sniff(head)


# --- check: the decision on ffprobe's JSON ------------------------------------------------------

MP4 = video.Container("mp4", "mov")


def probed(*streams, duration="3.000000"):
    return {"streams": list(streams), "format": {"format_name": "mov,mp4", "duration": duration}}


def video_stream(width=640, height=360, codec="h264", duration="3.000000", **extra):
    stream = {"codec_type": "video", "codec_name": codec, "width": width, "height": height}
    if duration is not None:
        stream["duration"] = duration
    return {**stream, **extra}


AUDIO = {"codec_type": "audio", "codec_name": "aac", "duration": "3.000000"}


def test_check_describes_a_good_video():
    info = video.check(probed(video_stream(), AUDIO), MP4, 1234, LIMITS)

    assert info == video.VideoInfo(MP4, "h264", 640, 360, 3.0, True, 1234)


@pytest.mark.parametrize(
    ("rotation", "size"),
    [
        ({"side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}]}, (360, 640)),
        ({"side_data_list": [{"side_data_type": "Display Matrix", "rotation": 180}]}, (640, 360)),
        ({"tags": {"rotate": "270"}}, (360, 640)),
        ({"tags": {"rotate": "sideways"}}, (640, 360)),
    ],
    ids=["phone-portrait", "upside-down", "old-rotate-tag", "nonsense-tag"],
)
def test_check_gives_the_size_as_shown_with_the_rotation_applied(rotation, size):
    info = video.check(probed(video_stream(**rotation)), MP4, 1, LIMITS)

    assert (info.width, info.height) == size


def test_check_takes_the_containers_duration_when_the_stream_has_none():
    info = video.check(probed(video_stream(duration=None), duration="4.5"), MP4, 1, LIMITS)

    assert info.duration == 4.5


COVER_ART = video_stream(disposition={"attached_pic": 1})


@pytest.mark.parametrize(
    ("found", "reason"),
    [
        (probed(), "the file has no video in it"),
        (probed(AUDIO), "the file has sound but no picture"),
        (probed(COVER_ART, AUDIO), "the file has sound but no picture"),
        (probed(video_stream(codec=None, codec_tag_string="XVID")), r"in a format \(XVID\) we"),
        (probed(video_stream(width=0)), "the video has no picture size"),
        (probed(video_stream(width=8000, height=6000)), "the limit is 8.8 megapixels"),
        (probed(video_stream(width=4000, height=200)), "sides in a ratio over 10 to 1"),
        (probed(video_stream(duration=None), duration="N/A"), "length cannot be read"),
        (probed(video_stream(duration="0.000000")), "the video is empty"),
        (probed(video_stream(duration="125.0")), "2 min 5 s long; the limit is 10 s"),
        ({"streams": "nonsense"}, "the file has no video in it"),
    ],
    ids=["nothing", "audio-only", "song-with-cover", "unknown-codec", "no-size",
         "too-many-pixels", "strip", "no-duration", "empty", "too-long", "not-a-list"],
)  # fmt: skip
def test_check_refuses_with_a_reason_for_staff(found, reason):
    with pytest.raises(video.VideoRejected, match=reason):
        video.check(found, MP4, 1, LIMITS)


def test_check_preview_refuses_a_preview_much_shorter_than_the_video():
    short = {"streams": [{"codec_type": "video", "width": 320, "height": 180, "duration": "1.28"}]}

    with pytest.raises(video.VideoRejected, match=r"only 1.3 s of the first 2.0 s"):
        video.check_preview(short, expected_seconds=2)
    assert video.check_preview(short, expected_seconds=1.5) == video.PreviewInfo(320, 180, 1.28)
    with pytest.raises(video.VideoRejected, match="no picture of the video could be decoded"):
        video.check_preview({"streams": []}, expected_seconds=2)


def test_the_poster_is_taken_past_a_fade_from_black_or_mid_way():
    assert video.poster_time(30) == 1.0
    assert video.poster_time(0.5) == 0.25


# --- running ffmpeg, and without it ---------------------------------------------------------------


def test_every_run_has_a_memory_ceiling():
    """A file whose header lies about its frame size makes ffmpeg fail to allocate, not take
    the machine's memory. Shown with a shell asked for its own limit (`ulimit -v`, in KiB)."""
    ff = ffmpeg.Ffmpeg("ffmpeg", "ffprobe", memory_bytes=512 * 1024 * 1024)

    said = ffmpeg.run(["sh", "-c", "ulimit -v"], ff, deadline=ffmpeg.Deadline(10), doing="asking")

    assert said.decode().strip() == str(512 * 1024)


def test_a_missing_ffmpeg_says_how_to_install_it():
    with pytest.raises(ffmpeg.FfmpegMissing, match=r"scripts/ensure-ffmpeg\.sh"):
        ffmpeg.find_ffmpeg("no-such-ffmpeg", "no-such-ffprobe")


def test_without_ffmpeg_the_upload_form_says_how_to_install_it(settings):
    settings.VIDEO_FFPROBE = "no-such-ffprobe"

    form = VideoUploadForm(files={"video": SimpleUploadedFile("clip.mp4", MP4_HEAD + bytes(1000))})

    assert not form.is_valid()
    [error] = form.errors["video"]
    assert error.startswith("Videos cannot be processed on this server: ffmpeg is not installed")
    assert "run scripts/ensure-ffmpeg.sh as root, or sudo apt-get install -y" in error

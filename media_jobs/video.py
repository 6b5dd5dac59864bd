"""Product videos as plain functions around ffprobe and ffmpeg: check an upload, make its poster
frame and its preview.

Nothing here knows about Django models or Celery: media_jobs/video_previews.py stores what these
functions make, media_jobs/tasks.py runs that as a job. ffmpeg and ffprobe run as subprocesses
from argument lists, never through a shell, and every file we are handed may be hostile:

- Only two of ffmpeg's demuxers ever read an upload, chosen from its first bytes (`sniff`):
  QuickTime/MP4 ("mov") or Matroska/WebM. Left to guess, ffmpeg tries hundreds of formats,
  playlists among them (HLS, concat), which open further files or URLs named inside the upload.
  Only the `file` protocol is allowed, and a path is passed as `file:<path>`, so a name is never
  read as an option or a URL.
- `inspect()` reads the container's header with ffprobe and decides (`check()`): a video stream,
  a length, a size and a frame within the limits. The upload form and the worker both call it.
- Every run has a deadline and a memory ceiling, and no ffmpeg outlives its job: how a run is
  made safe is media_jobs/ffmpeg.py's.
- Every refusal is a VideoRejected (a PermanentError) whose text is a sentence for staff.
"""

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from media_jobs import images
from media_jobs.ffmpeg import ToolFailed, VideoRejected, file_url, run

ACCEPTED_LABEL = "MP4, MOV or WebM"
# The first box of a QuickTime/MP4 file ("ftyp" in every recent one; older QuickTime files
# start straight with their data or padding).
MOV_FIRST_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")
# ISO files that hold pictures, not a video: the mov demuxer would show them as a one-frame video.
PICTURE_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis")
MATROSKA_MAGIC = b"\x1a\x45\xdf\xa3"
PICTURE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8")  # JPEG, PNG, GIF

# A poster is decoded from a frame ffmpeg hands over as PNG, scaled to at most this many times
# the poster's width: Pillow makes the final size, so a 4K frame never travels whole.
POSTER_OVERSAMPLING = 2
# What ffprobe may print about one file; a file that makes it say more is refused.
PROBE_OUTPUT_LIMIT = 1024 * 1024
# A decoded preview shorter than this share of what the file claims is a truncated file:
# ffmpeg stops at the cut with exit code 0.
MIN_DECODED_SHARE = 0.75


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_seconds: float
    max_pixels: int
    max_aspect_ratio: float


@dataclass(frozen=True)
class Encoding:
    """What the worker makes of a video."""

    preview_width: int
    preview_seconds: float
    poster_width: int


@dataclass(frozen=True)
class Container:
    name: str  # "mp4", "mov", "webm" or "mkv": the extension the original is stored under
    demuxer: str  # the one ffmpeg demuxer allowed to read it: "mov" or "matroska"


@dataclass(frozen=True)
class VideoInfo:
    container: Container
    codec: str  # as ffprobe names it: h264, hevc, vp9, av1, ...
    width: int  # as shown: with the rotation phones record applied
    height: int
    duration: float  # seconds, of the video stream where the file says
    has_audio: bool
    size_bytes: int


@dataclass(frozen=True)
class PreviewInfo:
    width: int
    height: int
    duration: float


# --- checking an upload -----------------------------------------------------------------------


def inspect(ff, path, limits, deadline):
    """Check the file at `path`; return its VideoInfo or raise VideoRejected.

    Cheap checks first (size, first bytes), then ffprobe, which reads the header only.
    """
    size_bytes = os.path.getsize(path)
    if size_bytes > limits.max_bytes:
        raise VideoRejected(
            f"the file is {megabytes(size_bytes)}, over the limit of {megabytes(limits.max_bytes)}"
        )
    with open(path, "rb") as file:
        container = sniff(file.read(64))
    return check(probe(ff, path, container, deadline), container, size_bytes, limits)


def sniff(head):
    """The Container the first bytes of a file show, or VideoRejected saying what it is instead."""
    if head[4:8] in MOV_FIRST_BOXES:
        brand = head[8:12] if head[4:8] == b"ftyp" else b""
        if brand in PICTURE_BRANDS:
            raise VideoRejected(f"this is a picture ({brand.decode().upper()}), not a video")
        return Container("mov" if brand == b"qt  " else "mp4", "mov")
    if head.startswith(MATROSKA_MAGIC):
        # The EBML header names its DocType ("webm" or "matroska") within its first bytes.
        return Container("webm" if b"webm" in head else "mkv", "matroska")
    if head.startswith(PICTURE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        raise VideoRejected("this is a picture, not a video: upload it on the pictures page")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        raise VideoRejected(f"AVI videos are not accepted: upload {ACCEPTED_LABEL}")
    raise VideoRejected(f"this file is not a video we can read: upload {ACCEPTED_LABEL}")


def probe(ff, path, container, deadline):
    """What ffprobe reads from the header of `path`: its JSON, as a dict."""
    try:
        output = run(
            [
                ff.ffprobe, "-v", "error", "-hide_banner",
                "-f", container.demuxer, "-protocol_whitelist", "file",
                "-show_format", "-show_streams", "-of", "json",
                file_url(path),
            ],
            ff,
            deadline=deadline,
            doing="reading the video",
            output_limit=PROBE_OUTPUT_LIMIT,
        )  # fmt: skip
    except ToolFailed as exc:
        raise VideoRejected(
            f"the file cannot be read as a video, it is truncated or damaged ({exc.detail})"
        ) from exc
    try:
        probed = json.loads(output)
    except ValueError:
        raise VideoRejected("the video's header cannot be read") from None
    if not isinstance(probed, dict):
        raise VideoRejected("the video's header cannot be read")
    return probed


def check(probed, container, size_bytes, limits):
    """Decide from ffprobe's JSON whether this is a video we take; return its VideoInfo.

    Pure: unit-tested on hand-written dicts. Raises VideoRejected with the reason.
    """
    streams = [s for s in probed.get("streams") or [] if isinstance(s, dict)]
    videos = [
        s
        for s in streams
        if s.get("codec_type") == "video"
        # The cover picture of a song is a "video" stream of one frame.
        and not (s.get("disposition") or {}).get("attached_pic")
    ]
    has_audio = any(s.get("codec_type") == "audio" for s in streams)
    if not videos:
        if has_audio:
            raise VideoRejected("the file has sound but no picture: it is not a video")
        raise VideoRejected("the file has no video in it")
    stream = videos[0]
    codec = stream.get("codec_name")
    if not codec:
        tag = stream.get("codec_tag_string") or "unknown"
        raise VideoRejected(f"the video is in a format ({tag}) we cannot decode")

    width, height = display_size(stream)
    if width < 1 or height < 1:
        raise VideoRejected("the video has no picture size")
    if width * height > limits.max_pixels:
        raise VideoRejected(
            f"the video is {width} x {height} pixels ({width * height / 1e6:.1f} megapixels);"
            f" the limit is {limits.max_pixels / 1e6:.1f} megapixels"
        )
    if max(width, height) / min(width, height) > limits.max_aspect_ratio:
        raise VideoRejected(
            f"the video is {width} x {height} pixels: sides in a ratio over "
            f"{limits.max_aspect_ratio:g} to 1 make no product video"
        )

    duration = stream_seconds(probed, stream)
    if duration is None:
        raise VideoRejected("the video's length cannot be read: it may be damaged")
    if duration <= 0:
        raise VideoRejected("the video is empty (it lasts 0 seconds)")
    if duration > limits.max_seconds:
        raise VideoRejected(
            f"the video is {describe_seconds(duration)} long; the limit is "
            f"{describe_seconds(limits.max_seconds)}"
        )
    return VideoInfo(container, codec, width, height, duration, has_audio, size_bytes)


def display_size(stream):
    """(width, height) as the video is shown: phones store it sideways with a rotation."""
    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    rotation = (stream.get("tags") or {}).get("rotate", 0)
    for side_data in stream.get("side_data_list") or []:
        if isinstance(side_data, dict) and "rotation" in side_data:
            rotation = side_data["rotation"]
    try:
        quarter_turns = round(float(rotation) / 90)
    except (TypeError, ValueError):
        quarter_turns = 0
    return (height, width) if quarter_turns % 2 else (width, height)


def stream_seconds(probed, stream):
    """The length of `stream`, or of the whole file where the stream does not say (Matroska)."""
    seconds = seconds_of(stream.get("duration"))
    if seconds is None:
        seconds = seconds_of((probed.get("format") or {}).get("duration"))
    return seconds


def seconds_of(value):
    """A duration from ffprobe ("3.000000", "N/A", missing) as seconds, or None."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) else None


# --- making the preview and the poster --------------------------------------------------------


def make_preview(ff, path, info, out_path, encoding, deadline):
    """Encode the first seconds of the video as a small silent H.264 MP4 at `out_path`.

    H.264 in MP4 is what every browser plays and what Debian's ffmpeg encodes (libx264). The
    preview is at most preview_width wide (never upscaled), at most 30 frames a second, without
    sound, subtitles or metadata (phones write where a video was shot into it), and starts
    playing before it has fully downloaded (faststart). Returns its PreviewInfo; raises
    VideoRejected if less of the video decodes than it claims (a truncated file).
    """
    width = f"min({encoding.preview_width},trunc(iw/2)*2)"  # H.264 in 4:2:0 wants even sides
    run(
        [
            ff.ffmpeg, *input_args(ff, path, info),
            "-map", "0:v:0", "-t", f"{encoding.preview_seconds:g}",
            "-an", "-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1",
            "-vf", f"scale=w='{width}':h=-2", "-fpsmax", "30",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "28", "-pix_fmt", "yuv420p",
            "-threads", str(ff.threads), "-movflags", "+faststart",
            "-f", "mp4", "-y", file_url(out_path),
        ],
        ff,
        deadline=deadline,
        doing="making the preview",
    )  # fmt: skip
    container = Container("mp4", "mov")
    return check_preview(
        probe(ff, out_path, container, deadline), min(info.duration, encoding.preview_seconds)
    )


def check_preview(probed, expected_seconds):
    """The PreviewInfo of a preview ffmpeg made, from ffprobe's JSON. Pure.

    ffmpeg decodes a truncated or damaged file up to the damage and exits 0: a preview much
    shorter than expected is how that shows.
    """
    videos = [s for s in probed.get("streams") or [] if s.get("codec_type") == "video"]
    if not videos:
        raise VideoRejected("no picture of the video could be decoded: it is damaged")
    stream = videos[0]
    decoded = stream_seconds(probed, stream)
    if not decoded or decoded < expected_seconds * MIN_DECODED_SHARE:
        raise VideoRejected(
            f"the video is truncated or damaged: only {decoded or 0:.1f} s of the first "
            f"{expected_seconds:.1f} s could be decoded"
        )
    return PreviewInfo(int(stream["width"]), int(stream["height"]), decoded)


def make_poster(ff, path, info, encoding, deadline, work_dir):
    """The poster frame of the video: an images.RenderedImage (JPEG), poster_width wide at most.

    ffmpeg decodes one frame (poster_time) to PNG; the picture code (media_jobs/images.py)
    makes the JPEG, as for any product picture: sRGB, no metadata, never upscaled.
    """
    frame_path = Path(work_dir) / "frame.png"
    at = poster_time(info.duration)
    largest = encoding.poster_width * POSTER_OVERSAMPLING
    run(
        [
            # -ss before the input: jump to the nearest keyframe, then decode up to `at`.
            ff.ffmpeg, "-ss", f"{at:.3f}", *input_args(ff, path, info),
            "-map", "0:v:0", "-frames:v", "1", "-an", "-sn", "-dn",
            "-vf", f"scale=w='min(iw,{largest})':h=-1",
            "-f", "image2", "-c:v", "png", "-update", "1", "-y", file_url(frame_path),
        ],
        ff,
        deadline=deadline,
        doing="taking the poster frame",
    )  # fmt: skip
    if not frame_path.exists():  # ffmpeg exits 0 when the file ends before `at`
        raise VideoRejected(
            f"no picture could be decoded at {at:.1f} s: the video is truncated or damaged"
        )
    frame_limits = images.Limits(
        max_bytes=64 * 1024 * 1024, max_pixels=10**8, max_aspect_ratio=math.inf, max_frames=1
    )
    with open(frame_path, "rb") as frame:
        try:
            rendered = images.make_renditions(frame, [encoding.poster_width], frame_limits)
        except images.ImageRejected as exc:
            raise VideoRejected(f"the poster frame could not be made: {exc}") from exc
    # make_renditions makes a WebP too; <video poster> takes one file: the JPEG all browsers show.
    return next(r for r in rendered if r.format == "jpeg")


def poster_time(duration):
    """Where the poster frame is taken: one second in (past a fade from black), or mid-way."""
    return min(1.0, duration / 2)


def input_args(ff, path, info):
    """The input of every ffmpeg run: one known demuxer, local files only, one decoding thread."""
    return [
        "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", str(ff.threads),
        "-f", info.container.demuxer, "-protocol_whitelist", "file", "-i", file_url(path),
    ]  # fmt: skip


# --- words ------------------------------------------------------------------------------------


def megabytes(size):
    return f"{size / 1024 / 1024:.1f} MB"


def describe_seconds(seconds):
    """2.5 -> "2.5 s", 125 -> "2 min 5 s"."""
    if seconds < 60:
        return f"{seconds:.3g} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"

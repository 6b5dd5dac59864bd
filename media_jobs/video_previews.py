"""Making the poster frame and the preview of one stored video: what the video job does.

Nothing here knows about Celery: the task wrapper (tasks.py) runs `make_poster_and_preview` once
per job and decides what a VideoRejected (a PermanentError) means: the job fails with its reason
and the message is dead-lettered.

The file is checked again before any encoding (it may not have come through the upload form,
or the limits may have tightened since). Each of the two products is saved as soon as it is
made, with the one UPDATE that points the video's row at it; a job run again after an
interruption (a soft time limit, a killed worker) makes only what is still missing.
"""

import logging
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile

from jobs.errors import PermanentError
from media_jobs import ffmpeg, video
from media_jobs.models import ProductVideo

logger = logging.getLogger(__name__)


def ffmpeg_from_settings():
    """The installed ffmpeg, run as the VIDEO_FFMPEG_* settings say; raises FfmpegMissing."""
    return ffmpeg.find_ffmpeg(
        settings.VIDEO_FFMPEG,
        settings.VIDEO_FFPROBE,
        threads=settings.VIDEO_FFMPEG_THREADS,
        memory_bytes=settings.VIDEO_FFMPEG_MEMORY_MB * 1024 * 1024,
    )


def limits_from_settings():
    return video.Limits(
        max_bytes=settings.VIDEO_MAX_UPLOAD_BYTES,
        max_seconds=settings.VIDEO_MAX_SECONDS,
        max_pixels=settings.VIDEO_MAX_PIXELS,
        max_aspect_ratio=settings.MEDIA_MAX_ASPECT_RATIO,
    )


def encoding_from_settings():
    return video.Encoding(
        preview_width=settings.VIDEO_PREVIEW_WIDTH,
        preview_seconds=settings.VIDEO_PREVIEW_SECONDS,
        poster_width=settings.VIDEO_POSTER_WIDTH,
    )


def make_poster_and_preview(video_id):
    """Make whatever video `video_id` still lacks of its poster and preview. Returns what it did."""
    started = time.monotonic()
    row = _get_video(video_id)
    if row.ready:
        return outcome_of(row, made=[], started=started)
    ff = ffmpeg_from_settings()
    encoding = encoding_from_settings()
    # One budget for every ffmpeg run of this job, below the task's soft time limit.
    deadline = ffmpeg.Deadline(settings.VIDEO_FFMPEG_TIMEOUT)
    made = []
    with local_copy(row.original) as path, tempfile.TemporaryDirectory() as work_dir:
        info = video.inspect(ff, path, limits_from_settings(), deadline)
        # The preview first: decoding its seconds is what shows a truncated file.
        if not row.preview:
            preview_path = Path(work_dir) / "preview.mp4"
            preview = video.make_preview(ff, path, info, preview_path, encoding, deadline)
            with open(preview_path, "rb") as file:
                save_product(
                    row,
                    "preview",
                    File(file),
                    preview_width=preview.width,
                    preview_height=preview.height,
                    preview_duration=preview.duration,
                    preview_size=preview_path.stat().st_size,
                )
            made.append("preview")
        if not row.poster:
            poster = video.make_poster(ff, path, info, encoding, deadline, work_dir)
            save_product(
                row,
                "poster",
                ContentFile(poster.data),
                poster_width=poster.width,
                poster_height=poster.height,
            )
            made.append("poster")
    row.refresh_from_db()
    outcome = outcome_of(row, made, started)
    logger.info("video %s: made %s in %.2fs", video_id, made or "nothing", outcome["seconds"])
    return outcome


def product_name(row, field):
    return {"poster": f"videos/{row.pk}/poster.jpg", "preview": f"videos/{row.pk}/preview.mp4"}[
        field
    ]


def save_product(row, field, content, **fields):
    """Store `content` as the video's `field` (poster or preview) and point its row at it.

    The name is fixed per video: a file already there that the row does not point at is what an
    attempt killed between the two steps left behind, and is replaced.
    """
    storage = row.original.storage
    name = product_name(row, field)
    if storage.exists(name):
        storage.delete(name)
    name = storage.save(name, content)
    if not ProductVideo.objects.filter(pk=row.pk).update(**{field: name}, **fields):
        storage.delete(name)
        raise PermanentError(f"video {row.pk} was deleted while its {field} was made")
    setattr(row, field, name)


@contextmanager
def local_copy(field_file):
    """A path on this machine to the stored original: ffmpeg reads files, not storages."""
    storage, name = field_file.storage, field_file.name
    try:
        path = storage.path(name)
    except NotImplementedError:  # a remote storage: copy the file here for the length of the job
        path = None
    if path is not None:
        if not storage.exists(name):
            _missing(name)
        yield path
        return
    with tempfile.NamedTemporaryFile(suffix=Path(name).suffix) as copy:
        try:
            with storage.open(name, "rb") as original:
                shutil.copyfileobj(original, copy, 1024 * 1024)
        except FileNotFoundError:
            _missing(name)
        copy.flush()
        yield copy.name


def _missing(name):
    raise PermanentError(f"the uploaded file {name} is missing")


def outcome_of(row, made, started):
    return {
        "video": row.pk,
        "made": made,
        "source": {"width": row.width, "height": row.height, "seconds": row.duration},
        "preview": {
            "width": row.preview_width,
            "height": row.preview_height,
            "seconds": row.preview_duration,
            "bytes": row.preview_size,
        },
        "poster": {"width": row.poster_width, "height": row.poster_height},
        "seconds": round(time.monotonic() - started, 3),
    }


def _get_video(video_id):
    try:
        return ProductVideo.objects.get(pk=video_id)
    except ProductVideo.DoesNotExist:
        raise PermanentError(f"video {video_id} does not exist") from None

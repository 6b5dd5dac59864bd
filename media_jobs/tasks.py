"""Media jobs: thin declarations around the plain rendition and video functions.

Renditions of a fresh upload and of a bulk regeneration run the same work; they differ in
priority: a fresh upload goes to the `media` queue at PRIORITY_HIGH, a bulk regeneration at
PRIORITY_BULK, so uploads overtake a regeneration in progress. A picture that cannot be used
raises ImageRejected (a PermanentError): the job fails with the reason and the message is
dead-lettered into `media.dead`. The time limits bound a picture that is slow to decode in spite
of the checks.

make_poster_and_preview does the same for a product video (media_jobs/video_previews.py), with
ffmpeg: a VideoRejected fails the job the same way.
"""

from django.conf import settings

from config.queues import MEDIA
from jobs.declare import job
from jobs.topology import PRIORITY_BULK, PRIORITY_HIGH
from media_jobs import renditions, video_previews

PICTURE = {"queue": MEDIA, "soft_time_limit": 60, "time_limit": 75}


@job(
    "media_jobs.make_renditions",
    kind="renditions",
    label="Renditions",
    doing="making",
    done="ready",
    priority=PRIORITY_HIGH,  # staff are waiting to see it on the shop
    **PICTURE,
)
def make_renditions(image_id):
    """Make the renditions of a freshly uploaded picture, once."""
    return renditions.make_renditions(image_id)


@job(
    "media_jobs.regenerate_renditions",
    kind="regenerate_renditions",
    label="Regeneration",
    doing="regenerating",
    done="regenerated",
    priority=PRIORITY_BULK,
    **PICTURE,
)
def regenerate_renditions(image_id, batch):
    """Make the renditions of a picture again, once in bulk regeneration `batch`."""
    return renditions.make_renditions(image_id)


@job(
    "media_jobs.make_poster_and_preview",
    kind="poster_and_preview",
    label="Poster and preview",
    doing="making",
    done="ready",
    queue=MEDIA,
    priority=PRIORITY_HIGH,
    # ffmpeg's own deadline (VIDEO_FFMPEG_TIMEOUT) comes first; these stop what is left running,
    # and ffmpeg.run kills ffmpeg with the task. Celery writes them into every message it
    # publishes and a worker applies the message's: the web's settings count, set them alike.
    soft_time_limit=settings.VIDEO_SOFT_TIME_LIMIT,
    time_limit=settings.VIDEO_TIME_LIMIT,
)
def make_poster_and_preview(video_id):
    """Make the poster frame and the preview of a freshly uploaded video, once."""
    return video_previews.make_poster_and_preview(video_id)

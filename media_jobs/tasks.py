"""Media tasks: thin wrappers that give the plain rendition function the job runner's guarantees.

Both run the same work; they differ in their route (config/queues.py): a fresh upload goes to
the `media` queue at PRIORITY_HIGH, a bulk regeneration at PRIORITY_BULK, so uploads overtake
a regeneration in progress. A picture that cannot be used raises ImageRejected (a
PermanentError): the job fails with the reason and the message is dead-lettered into
`media.dead`. The time limits bound a picture that is slow to decode in spite of the checks.

make_poster_and_preview does the same for a product video (media_jobs/video_previews.py), with
ffmpeg: a VideoRejected fails the job the same way.
"""

from celery import shared_task
from django.conf import settings

from jobs.runner import JobTask
from media_jobs import renditions, video_previews
from media_jobs.jobs import MAKE_RENDITIONS, POSTER_AND_PREVIEW, regeneration_key


@shared_task(
    bind=True,
    base=JobTask,
    name="media_jobs.make_renditions",
    soft_time_limit=60,
    time_limit=75,
)
def make_renditions(self, image_id):
    """Make the renditions of a freshly uploaded picture, once."""
    key = MAKE_RENDITIONS.key(image_id)
    return self.run_once(key, lambda: renditions.make_renditions(image_id))


@shared_task(
    bind=True,
    base=JobTask,
    name="media_jobs.regenerate_renditions",
    soft_time_limit=60,
    time_limit=75,
)
def regenerate_renditions(self, image_id, batch):
    """Make the renditions of a picture again, as part of the bulk regeneration `batch`."""
    key = regeneration_key(image_id, batch)
    return self.run_once(key, lambda: renditions.make_renditions(image_id))


@shared_task(
    bind=True,
    base=JobTask,
    name="media_jobs.make_poster_and_preview",
    # ffmpeg's own deadline (VIDEO_FFMPEG_TIMEOUT) comes first; these stop what is left running,
    # and video.run kills ffmpeg with the task. Celery writes them into every message it
    # publishes and a worker applies the message's: the web's settings count, set them alike.
    soft_time_limit=settings.VIDEO_SOFT_TIME_LIMIT,
    time_limit=settings.VIDEO_TIME_LIMIT,
)
def make_poster_and_preview(self, video_id):
    """Make the poster frame and the preview of a freshly uploaded video, once."""
    key = POSTER_AND_PREVIEW.key(video_id)
    return self.run_once(key, lambda: video_previews.make_poster_and_preview(video_id))

"""Media tasks: thin wrappers that give the plain rendition function the job runner's guarantees.

Both run the same work; they differ in their route (config/queues.py): a fresh upload goes to
the `media` queue at PRIORITY_HIGH, a bulk regeneration at PRIORITY_BULK, so uploads overtake
a regeneration in progress. A picture that cannot be used raises ImageRejected (a
PermanentError): the job fails with the reason and the message is dead-lettered into
`media.dead`. The time limits bound a picture that is slow to decode in spite of the checks.
"""

from celery import shared_task

from jobs.runner import JobTask
from media_jobs import renditions
from media_jobs.jobs import MAKE_RENDITIONS, regeneration_key


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

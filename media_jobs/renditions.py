"""Making the renditions of one stored picture: what the media jobs do, as a plain function.

Nothing here knows about Celery: the task wrapper (tasks.py) runs `make_renditions` once per
job and decides what an ImageRejected (a PermanentError) means: the job fails with its
reason and the message is dead-lettered.

Writing is idempotent. The files are written first, under fresh names; then, in one
transaction, the rows are updated (one per image, width and format: a re-run replaces, never
adds); the files they replace are deleted only once that has committed. A page therefore always
points at complete files, and a browser never gets a stale copy of a regenerated rendition
from its cache (the new file has a new name).
"""

import logging
import time

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from jobs.errors import PermanentError
from media_jobs import images
from media_jobs.models import ProductImage, Rendition

logger = logging.getLogger(__name__)


def limits_from_settings():
    """What a picture may be (media_jobs.images.Limits), from the MEDIA_MAX_* settings."""
    return images.Limits(
        max_bytes=settings.MEDIA_MAX_UPLOAD_BYTES,
        max_pixels=settings.MEDIA_MAX_PIXELS,
        max_aspect_ratio=settings.MEDIA_MAX_ASPECT_RATIO,
        max_frames=settings.MEDIA_MAX_FRAMES,
    )


def make_renditions(image_id):
    """Make (or make again) every rendition of picture `image_id`. Returns what was made."""
    started = time.monotonic()
    image = _get_image(image_id)
    storage = image.original.storage
    try:
        original = storage.open(image.original.name, "rb")
    except FileNotFoundError:
        raise PermanentError(f"the uploaded file {image.original.name} is missing") from None
    with original:
        rendered = images.make_renditions(
            original, settings.RENDITION_WIDTHS, limits_from_settings()
        )

    stored = [(r, storage.save(rendition_name(image, r), ContentFile(r.data))) for r in rendered]
    try:
        replaced = save_rendition_rows(image_id, stored)
    except BaseException:
        for _, name in stored:  # the rows never pointed at them: leave nothing behind
            storage.delete(name)
        raise
    for name in replaced:  # the rows no longer point at them: that has been committed
        storage.delete(name)

    outcome = {
        "image": image_id,
        "source": {"format": image.format, "width": image.width, "height": image.height},
        "renditions": [
            {"width": r.width, "height": r.height, "format": r.format, "bytes": len(r.data)}
            for r, _ in stored
        ],
        "seconds": round(time.monotonic() - started, 3),
    }
    logger.info("picture %s: %d renditions in %.2fs", image_id, len(stored), outcome["seconds"])
    return outcome


def rendition_name(image, rendered):
    extension = {"jpeg": "jpg"}.get(rendered.format, rendered.format)
    return f"renditions/{image.pk}/{rendered.width}w.{extension}"


@transaction.atomic
def save_rendition_rows(image_id, stored):
    """Point the image's rendition rows at the `stored` files; return the file names replaced."""
    try:
        # The lock on the picture's row makes two jobs for the same picture (an upload's and a
        # regeneration's) write their rows one after the other, never interleaved.
        image = ProductImage.objects.select_for_update().get(pk=image_id)
    except ProductImage.DoesNotExist:
        raise PermanentError(
            f"picture {image_id} was deleted while its renditions were made"
        ) from None
    before = {(r.width, r.format): r for r in image.renditions.all()}
    now = timezone.now()
    for rendered, name in stored:
        Rendition.objects.update_or_create(
            image=image,
            width=rendered.width,
            format=rendered.format,
            defaults={
                "height": rendered.height,
                "file": name,
                "size": len(rendered.data),
                "made_at": now,
            },
        )
    made = {(rendered.width, rendered.format) for rendered, _ in stored}
    # Widths no longer wanted (RENDITION_WIDTHS changed) go too.
    gone = [r for key, r in before.items() if key not in made]
    Rendition.objects.filter(pk__in=[r.pk for r in gone]).delete()
    return [r.file.name for r in before.values()]


def _get_image(image_id):
    try:
        return ProductImage.objects.get(pk=image_id)
    except ProductImage.DoesNotExist:
        raise PermanentError(f"picture {image_id} does not exist") from None

"""Writes for product pictures. Views, the admin and seed_demo call these; nothing here knows HTTP.

An upload is checked from its header (cheap, in the request), stored, and its renditions are
asked for as a job on the `media` queue: the request returns at once and the shop shows a
placeholder, or the previous picture, until they are ready.
"""

import hashlib
import uuid

from django.db import transaction
from django.utils import timezone

from jobs.outbox import enqueue_on_commit
from media_jobs import images
from media_jobs.jobs import MAKE_RENDITIONS, REGENERATE_RENDITIONS, regeneration_key
from media_jobs.models import ProductImage
from media_jobs.renditions import limits_from_settings
from media_jobs.selectors import current_image_ids
from media_jobs.tasks import make_renditions, regenerate_renditions

ImageRejected = images.ImageRejected


def check_upload(uploaded_file):
    """What `uploaded_file` is, from its header; raises ImageRejected with the reason if unusable.

    Catches at upload all that the header shows (format, size, pixels, shape, frames). A file
    that is truncated or damaged further in only shows it when decoded: its job fails.
    """
    return images.inspect(uploaded_file, limits_from_settings())


@transaction.atomic
def attach_image(product, uploaded_file):
    """Store `uploaded_file` as the newest picture of `product` and ask for its renditions.

    Raises ImageRejected if the file is not usable. The job is recorded with the picture and
    published once the transaction commits (jobs/outbox.py).
    """
    info = check_upload(uploaded_file)
    image = ProductImage.objects.create(
        product=product,
        original=store_original(uploaded_file, info),
        format=info.format,
        width=info.width,
        height=info.height,
    )
    enqueue_on_commit(make_renditions, image.pk, kind=MAKE_RENDITIONS, subject=image)
    return image


def store_original(uploaded_file, info):
    """Save the upload as originals/<sha256 of its content>.<its real format>; return the name.

    The uploader's file name is never used: it can say ".jpg" of a PNG, or ".html", and the
    extension decides the Content-Type the file is later served with. Naming by content also
    means the same picture uploaded twice (or seeded again) is stored once.
    """
    digest = hashlib.sha256()
    uploaded_file.seek(0)
    for chunk in iter(lambda: uploaded_file.read(1024 * 1024), b""):
        digest.update(chunk)
    uploaded_file.seek(0)
    field = ProductImage._meta.get_field("original")
    name = field.generate_filename(None, f"{digest.hexdigest()}.{info.extension}")
    if field.storage.exists(name):
        return name
    return field.storage.save(name, uploaded_file)


@transaction.atomic
def regenerate_all():
    """Make the renditions of every product's current pictures again, at bulk priority.

    For when the widths or the encoder settings change. Each picture gets a job of its own,
    keyed by this batch, so asking again later makes a new batch, while a redelivered message
    of this batch does nothing twice. The jobs go to the `media` queue at PRIORITY_BULK: a
    fresh upload (PRIORITY_HIGH) overtakes all of them. Returns (batch, number of jobs).
    """
    batch = f"{timezone.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"

    image_ids = current_image_ids()
    for image in ProductImage.objects.filter(pk__in=image_ids).only("pk"):
        enqueue_on_commit(
            regenerate_renditions,
            image.pk,
            batch,
            kind=REGENERATE_RENDITIONS,
            subject=image,
            key=regeneration_key(image.pk, batch),
        )
    return batch, len(image_ids)

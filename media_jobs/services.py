"""Writes for product pictures. Views, the admin and seed_demo call these; nothing here knows HTTP.

An upload is checked from its header (cheap, in the request), stored, and its renditions are
asked for as a job on the `media` queue: the request returns at once and the shop shows a
placeholder, or the previous picture, until they are ready.
"""

import hashlib
import tempfile
import uuid
from contextlib import contextmanager

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs.outbox import enqueue_on_commit
from media_jobs import ffmpeg, images, video, video_previews
from media_jobs.models import ProductImage, ProductVideo
from media_jobs.renditions import limits_from_settings
from media_jobs.selectors import current_image_ids
from media_jobs.tasks import make_poster_and_preview, make_renditions, regenerate_renditions

ImageRejected = images.ImageRejected
# What check_video_upload and attach_video raise: a sentence for staff either way.
VIDEO_REFUSALS = (video.VideoRejected, ffmpeg.FfmpegMissing)


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
    enqueue_on_commit(make_renditions, image.pk, subject=image)
    return image


def check_video_upload(uploaded_file):
    """What `uploaded_file` is (a video.VideoInfo); raises one of VIDEO_REFUSALS with the reason.

    Size and first bytes in Python, then ffprobe on the header, with a short time limit of its
    own: about a tenth of a second for a good file, in the request. A file damaged further in
    only shows it when the worker decodes it: its job fails.
    """
    limits = video_previews.limits_from_settings()
    if uploaded_file.size > limits.max_bytes:  # before writing it anywhere
        size, limit = video.megabytes(uploaded_file.size), video.megabytes(limits.max_bytes)
        raise video.VideoRejected(f"the file is {size}, over the limit of {limit}")
    uploaded_file.seek(0)
    video.sniff(uploaded_file.read(64))
    ff = video_previews.ffmpeg_from_settings()
    with local_path(uploaded_file) as path:
        return video.inspect(ff, path, limits, ffmpeg.Deadline(settings.VIDEO_PROBE_TIMEOUT))


@transaction.atomic
def attach_video(product, uploaded_file):
    """Store `uploaded_file` as the newest video of `product` and ask for its poster and preview.

    Raises one of VIDEO_REFUSALS if the file is not usable. The job is recorded with the video
    and published once the transaction commits (jobs/outbox.py).
    """
    info = check_video_upload(uploaded_file)
    field = ProductVideo._meta.get_field("original")
    row = ProductVideo.objects.create(
        product=product,
        original=store_by_content(uploaded_file, field, info.container.name),
        container=info.container.name,
        codec=info.codec[:30],
        width=info.width,
        height=info.height,
        duration=info.duration,
        size=info.size_bytes,
    )
    enqueue_on_commit(make_poster_and_preview, row.pk, subject=row)
    return row


@contextmanager
def local_path(uploaded_file):
    """A path to the upload for ffprobe: Django's own temporary file, or one written for it."""
    if hasattr(uploaded_file, "temporary_file_path"):  # large uploads are on disk already
        yield uploaded_file.temporary_file_path()
        return
    with tempfile.NamedTemporaryFile() as copy:
        uploaded_file.seek(0)
        for chunk in uploaded_file.chunks():
            copy.write(chunk)
        copy.flush()
        uploaded_file.seek(0)
        yield copy.name


def store_original(uploaded_file, info):
    """Save the upload as originals/<sha256 of its content>.<its real format>; return the name.

    The uploader's file name is never used: it can say ".jpg" of a PNG, or ".html", and the
    extension decides the Content-Type the file is later served with. Naming by content also
    means the same picture uploaded twice (or seeded again) is stored once.
    """
    return store_by_content(uploaded_file, ProductImage._meta.get_field("original"), info.extension)


def store_by_content(uploaded_file, field, extension):
    """Save the upload in `field`'s folder, named <sha256 of its content>.<extension>.

    Returns the name it is stored under.
    """
    digest = hashlib.sha256()
    uploaded_file.seek(0)
    for chunk in iter(lambda: uploaded_file.read(1024 * 1024), b""):
        digest.update(chunk)
    uploaded_file.seek(0)
    name = field.generate_filename(None, f"{digest.hexdigest()}.{extension}")
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
        # Keyed by picture and batch: once per batch, again in the next one.
        enqueue_on_commit(regenerate_renditions, image.pk, batch, subject=image)
    return batch, len(image_ids)

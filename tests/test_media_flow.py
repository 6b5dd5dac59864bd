"""Product pictures end to end: the staff page, real RabbitMQ, a real media worker.

- an uploaded JPEG gets its renditions and the product page shows them;
- every hostile file ends in a failed job with its reason (and a dead letter), and the same
  worker process goes on to serve the next upload;
- a bulk regeneration of 60 pictures does not hold up a fresh upload by more than a few jobs.
"""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import reverse
from PIL import Image

from config import queues
from jobs.models import Job
from jobs.outbox import enqueue_on_commit
from media_jobs import services
from media_jobs.models import ProductImage
from media_jobs.tasks import make_renditions
from shop.models import Product
from testkit.processes import wait_for
from tests import hostile_files

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

MEDIA_QUEUES = (queues.MEDIA,)


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_user("clerk", password="x", is_staff=True)
    client.force_login(user)
    return client


def upload_through_the_staff_page(client, product, name, data):
    response = client.post(
        reverse("media_jobs:upload", args=[product.pk]), {"image": SimpleUploadedFile(name, data)}
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    return ProductImage.objects.filter(product=product).latest()


def renditions_job(image):
    return Job.objects.get(key=make_renditions.job_key(image.pk))


def wait_until_final(key, timeout=20):
    def final():
        job = Job.objects.get(key=key)
        return job if job.is_final else None

    return wait_for(final, timeout, message=f"job {key} to finish")


def test_an_uploaded_jpeg_gets_renditions_and_the_product_page_shows_them(
    staff_client, broker, start_worker, product, media_root
):
    start_worker(queues=MEDIA_QUEUES, concurrency=1)

    image = upload_through_the_staff_page(
        staff_client, product, "mug.jpg", hostile_files.jpeg((1600, 1200))
    )
    job = wait_until_final(make_renditions.job_key(image.pk))

    assert job.state == Job.State.SUCCEEDED, job.last_error
    assert job.attempts == 1
    made = [(r["width"], r["format"]) for r in job.outcome["renditions"]]
    assert made == [(w, f) for w in (160, 480, 1200) for f in ("webp", "jpeg")]
    for rendition in image.renditions.all():
        with Image.open(media_root / rendition.file.name) as picture:
            assert picture.format == rendition.format.upper()
            assert picture.size == (rendition.width, rendition.height)
            assert rendition.size == (media_root / rendition.file.name).stat().st_size

    html = staff_client.get(product.get_absolute_url()).content.decode()
    webp = image.renditions.get(width=1200, format="webp")
    jpeg = image.renditions.get(width=480, format="jpeg")
    assert '<source type="image/webp"' in html
    assert f"{webp.file.url} 1200w" in html
    assert f'src="{jpeg.file.url}"' in html
    assert "placeholder.svg" not in html
    assert (
        "Renditions: ready at" in staff_client.get(reverse("media_jobs:pictures")).content.decode()
    )
    assert broker.depth("media") == 0
    assert broker.depth("media.dead") == 0


def test_hostile_files_fail_clearly_and_the_worker_serves_the_next_job(
    staff_client, broker, start_worker, media_root
):
    limit = 1024 * 1024
    worker = start_worker(queues=MEDIA_QUEUES, concurrency=1, MEDIA_MAX_UPLOAD_BYTES=str(limit))
    hostile = hostile_files.corpus(limit)
    storage = ProductImage._meta.get_field("original").storage

    images = {}
    for number, case in enumerate(hostile):
        product = Product.objects.create(name=case.name, slug=f"h{number}", price=Decimal("1"))
        if case.caught_at_upload:
            # The form would refuse these: store them the way an older upload, another import
            # path or a limit tightened since would have. The worker must cope on its own.
            with transaction.atomic():
                image = ProductImage.objects.create(
                    product=product,
                    original=storage.save(f"originals/{case.filename}", ContentFile(case.data)),
                    format="JPEG",
                    width=1,
                    height=1,
                )
                enqueue_on_commit(make_renditions, image.pk, subject=image)
        else:
            image = upload_through_the_staff_page(staff_client, product, case.filename, case.data)
        images[case.name] = image
    # Queued behind all of them, for the same single worker process.
    after = upload_through_the_staff_page(
        staff_client, Product.objects.create(name="Next", slug="next", price=1), "ok.jpg",
        hostile_files.jpeg((800, 600)),
    )  # fmt: skip

    next_job = wait_until_final(make_renditions.job_key(after.pk), timeout=25)
    assert next_job.state == Job.State.SUCCEEDED, next_job.last_error
    assert after.renditions.count() == 6
    page = staff_client.get(reverse("media_jobs:pictures")).content.decode()
    for case in hostile:
        job = wait_until_final(make_renditions.job_key(images[case.name].pk))
        assert job.state == Job.State.FAILED, case.name
        assert case.reason in job.last_error, (case.name, job.last_error)
        assert job.attempts == 1, f"{case.name}: a hostile file is not retried"
        assert f"Renditions: failed: {job.last_error}" in page
        assert not images[case.name].renditions.exists()

    dead = wait_for(
        lambda: len(letters := broker.peek("media.dead")) == len(hostile) and letters,
        message="a dead letter per hostile file",
    )
    assert {letter["headers"]["id"] for letter in dead} == {
        renditions_job(image).task_id for image in images.values()
    }
    assert all(letter["headers"]["x-death"][0]["reason"] == "rejected" for letter in dead)
    worker.assert_running()


def test_a_bulk_regeneration_does_not_delay_a_fresh_upload(
    staff_client, broker, start_worker, media_root
):
    bulk_size, concurrency = 60, 2
    # One photo-like original shared by all (names are content hashes): ~0.1 s a job.
    original = services.store_original(
        ContentFile(hostile_files.noisy_jpeg((1600, 1200), quality=85)),
        services.images.ImageInfo("JPEG", 1600, 1200, 1, 0),
    )
    products = Product.objects.bulk_create(
        Product(name=f"Bulk {i}", slug=f"bulk-{i}", price=Decimal("1")) for i in range(bulk_size)
    )
    ProductImage.objects.bulk_create(
        ProductImage(product=p, original=original, format="JPEG", width=1600, height=1200)
        for p in products
    )
    fresh_product = Product.objects.create(name="Fresh", slug="fresh", price=Decimal("1"))
    start_worker(queues=MEDIA_QUEUES, concurrency=concurrency)

    _, count = services.regenerate_all()
    assert count == bulk_size
    regenerations = Job.objects.filter(kind="regenerate_renditions")
    wait_for(
        lambda: regenerations.exclude(started_at=None).count() >= 4,
        message="the regeneration to be under way",
    )
    fresh_image = upload_through_the_staff_page(
        staff_client, fresh_product, "fresh.jpg", hostile_files.jpeg((1600, 1200))
    )
    fresh = wait_until_final(make_renditions.job_key(fresh_image.pk))
    assert fresh.state == Job.State.SUCCEEDED, fresh.last_error

    # The fresh job's row is written before its message is published: counting from then on
    # can only overstate the bulk jobs that went first.
    started_in_between = regenerations.filter(
        started_at__gt=fresh.created_at, started_at__lt=fresh.started_at
    ).count()
    still_waiting = regenerations.exclude(started_at__lt=fresh.started_at).count()
    assert started_in_between <= concurrency + 1, f"{started_in_between} bulk jobs went first"
    assert still_waiting >= bulk_size // 2, "the upload did not overtake the backlog"

    wait_for(
        lambda: regenerations.filter(state=Job.State.SUCCEEDED).count() == bulk_size,
        timeout=120,  # a shared, loaded machine: generous, it only bounds a hang
        message="the whole regeneration",
    )
    assert broker.depth("media.dead") == 0

"""Product pictures without a broker: upload checks, the staff page, the admin, what is shown.

The media worker's work is called directly here (media_jobs.renditions.make_renditions); the
same work on a real worker and broker is in test_media_flow.py.
"""

import re
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs.errors import PermanentError
from jobs.models import Job
from media_jobs import renditions, selectors, services
from media_jobs.forms import PictureUploadForm
from media_jobs.models import ProductImage, Rendition
from shop.models import Product
from tests import hostile_files

MAX_UPLOAD = 1024 * 1024
HOSTILE = hostile_files.corpus(MAX_UPLOAD)
CAUGHT_AT_UPLOAD = [h for h in HOSTILE if h.caught_at_upload]


@pytest.fixture(autouse=True)
def media_settings(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_MAX_UPLOAD_BYTES = MAX_UPLOAD
    return settings


@pytest.fixture
def staff_client(db):
    user = get_user_model().objects.create_user("clerk", password="x", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def mug(db):
    return Product.objects.create(name="Stoneware Mug", slug="mug", price=Decimal("14.50"))


def upload(name="photo.jpg", data=None):
    return SimpleUploadedFile(name, data or hostile_files.jpeg((1600, 1200)))


def ready_picture(product, size=(1600, 1200)):
    """A picture of `product` whose renditions the worker has made."""
    image = services.attach_image(product, upload(data=hostile_files.jpeg(size)))
    renditions.make_renditions(image.pk)
    return image


def post_upload(client, product, file):
    return client.post(reverse("media_jobs:upload", args=[product.pk]), {"image": file})


# --- the upload form ------------------------------------------------------------------------------


def test_a_good_picture_passes_the_form():
    form = PictureUploadForm(files={"image": upload()})
    assert form.is_valid(), form.errors


@pytest.mark.parametrize("hostile", CAUGHT_AT_UPLOAD, ids=lambda h: h.name)
def test_the_form_refuses_what_the_header_shows(hostile):
    form = PictureUploadForm(files={"image": upload(hostile.filename, hostile.data)})

    assert not form.is_valid()
    [error] = form.errors["image"]
    assert hostile.reason in error


def test_a_truncated_file_passes_the_form_and_is_left_to_the_worker():
    # Only decoding shows that the pixels stop half-way: its job fails (test_media_flow.py).
    [truncated] = [h for h in HOSTILE if not h.caught_at_upload]
    assert PictureUploadForm(files={"image": upload("cut.jpg", truncated.data)}).is_valid()


def test_an_upload_over_the_size_limit_is_refused(media_settings):
    media_settings.MEDIA_MAX_UPLOAD_BYTES = 50_000
    form = PictureUploadForm(files={"image": upload(data=hostile_files.padded_jpeg(60_000))})

    assert not form.is_valid()
    assert "over the limit of" in form.errors["image"][0]


# --- the staff page -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_staff_page_is_for_staff_only(client, mug):
    url = reverse("media_jobs:pictures")
    customer = get_user_model().objects.create_user("customer", password="x")
    for who in (None, customer):
        if who:
            client.force_login(who)
        for response in (
            client.get(url),
            post_upload(client, mug, upload()),
            client.post(reverse("media_jobs:regenerate_all")),
        ):
            assert response.status_code == 302
            assert response.url.startswith(reverse("admin:login"))
    assert not ProductImage.objects.exists()
    assert not Job.objects.exists()


def test_an_upload_is_stored_and_its_renditions_asked_for(
    staff_client, mug, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as publish:
        response = post_upload(staff_client, mug, upload("evil.jpg.html"))

    assert response.status_code == 302
    assert response.url == reverse("media_jobs:pictures")
    image = ProductImage.objects.get(product=mug)
    # Named after its content and its real format, never after the uploader's file name.
    assert re.fullmatch(r"originals/[0-9a-f]{64}\.jpg", image.original.name)
    assert (image.format, image.width, image.height) == ("JPEG", 1600, 1200)
    job = Job.objects.get()
    assert (job.key, job.state, job.task_name) == (
        f"renditions:{image.pk}",
        Job.State.PENDING,
        "media_jobs.make_renditions",
    )
    assert len(publish) == 1  # published once the upload's transaction commits

    page = staff_client.get(response.url).content.decode()
    assert "Renditions: queued" in page
    assert '<meta http-equiv="refresh"' in page  # it follows the job until it is final


@pytest.mark.parametrize("hostile", CAUGHT_AT_UPLOAD, ids=lambda h: h.name)
def test_the_staff_page_refuses_a_hostile_upload_with_a_form_error(
    staff_client, mug, hostile, media_settings
):
    response = post_upload(staff_client, mug, upload(hostile.filename, hostile.data))

    assert response.status_code == 200
    html = response.content.decode()
    row = html[html.index(f'id="product-{mug.pk}"') :]
    assert '<p class="error">' in row and hostile.reason in row
    assert "http-equiv" not in html  # no reload over the error
    assert not ProductImage.objects.exists()
    assert not Job.objects.exists()
    assert not (media_settings.MEDIA_ROOT / "originals").exists()  # nothing stored


def test_an_upload_without_a_file_is_refused(staff_client, mug):
    response = staff_client.post(reverse("media_jobs:upload", args=[mug.pk]), {})
    assert response.status_code == 200
    assert "Choose a picture to upload." in response.content.decode()


@pytest.mark.django_db
def test_staff_forms_are_csrf_protected(mug):
    client = Client(enforce_csrf_checks=True)
    client.force_login(get_user_model().objects.create_user("s", password="x", is_staff=True))

    assert post_upload(client, mug, upload()).status_code == 403
    assert client.post(reverse("media_jobs:regenerate_all")).status_code == 403
    html = client.get(reverse("media_jobs:pictures")).content.decode()
    assert html.count('name="csrfmiddlewaretoken"') == 2  # the regenerate and the upload form


def test_writes_need_post(staff_client, mug):
    assert staff_client.get(reverse("media_jobs:upload", args=[mug.pk])).status_code == 405
    assert staff_client.get(reverse("media_jobs:regenerate_all")).status_code == 405


def test_the_staff_page_shows_each_pictures_state(staff_client, mug):
    lamp = Product.objects.create(name="Desk Lamp", slug="lamp", price=Decimal("79.00"))
    teapot = Product.objects.create(name="Teapot", slug="teapot", price=Decimal("30.00"))
    image = ready_picture(mug)
    # As the worker's job runner records it:
    Job.objects.filter(key__startswith="renditions:").update(
        state=Job.State.SUCCEEDED, attempts=1, finished_at=timezone.now()
    )
    broken = services.attach_image(lamp, upload())
    Job.objects.filter(key=f"renditions:{broken.pk}").update(
        state=Job.State.FAILED, attempts=1, last_error="the file is truncated or damaged"
    )

    html = staff_client.get(reverse("media_jobs:pictures")).content.decode()

    rows = {p.pk: html[html.index(f'id="product-{p.pk}"') :] for p in (mug, lamp, teapot)}
    assert "Renditions: ready" in rows[mug.pk]
    # The widths it was really made in, which srcset serves.
    widths = sorted({r.width for r in image.renditions.all()})
    assert f'<span class="muted renditions">{", ".join(map(str, widths))} px</span>' in rows[mug.pk]
    assert "Renditions: failed: the file is truncated or damaged" in rows[lamp.pk]
    assert "none yet" in rows[teapot.pk].split("</tr>")[0]
    assert "http-equiv" not in html  # every job is final: nothing to follow


# --- what the shop shows --------------------------------------------------------------------------


def test_the_product_page_shows_the_renditions_with_srcset(client, mug):
    image = ready_picture(mug)

    html = client.get(mug.get_absolute_url()).content.decode()

    urls = {(r.width, r.format): r.file.url for r in image.renditions.all()}
    webp = ", ".join(f"{urls[w, 'webp']} {w}w" for w in (160, 480, 1200))
    jpeg = ", ".join(f"{urls[w, 'jpeg']} {w}w" for w in (160, 480, 1200))
    assert f'<source type="image/webp" srcset="{webp}"' in html
    assert f'src="{urls[480, "jpeg"]}" srcset="{jpeg}"' in html
    assert 'width="1200" height="900"' in html
    assert "placeholder" not in html


def test_a_new_upload_does_not_hide_the_picture_shown_until_it_is_ready(client, mug):
    shown = ready_picture(mug)
    newer = services.attach_image(mug, upload(data=hostile_files.jpeg((800, 800))))

    assert selectors.picture_for(mug).image_id == shown.pk
    renditions.make_renditions(newer.pk)
    assert selectors.picture_for(mug).image_id == newer.pk
    html = client.get(mug.get_absolute_url()).content.decode()
    assert newer.renditions.get(width=480, format="jpeg").file.url in html


def test_a_list_of_products_gets_its_pictures_in_two_queries(
    client, mug, django_assert_num_queries
):
    others = [
        Product.objects.create(name=f"Cup {i}", slug=f"cup-{i}", price=Decimal("3"))
        for i in range(3)
    ]
    for product in [mug, *others]:
        ready_picture(product, size=(320, 240))

    products = list(Product.objects.order_by("pk"))

    with django_assert_num_queries(2):
        selectors.attach_pictures(products)
    with django_assert_num_queries(0):
        pictures = [selectors.picture_for(product) for product in products]
    assert [p.largest.width for p in pictures] == [320] * 4


# --- renditions are written idempotently ----------------------------------------------------------


def test_making_renditions_again_replaces_them(mug, media_settings):
    image = ready_picture(mug)
    first = set(image.renditions.values_list("file", flat=True))

    outcome = renditions.make_renditions(image.pk)

    second = set(image.renditions.values_list("file", flat=True))
    assert image.renditions.count() == 6
    assert first.isdisjoint(second)  # new names: no browser keeps a stale copy
    folder = media_settings.MEDIA_ROOT / f"renditions/{image.pk}"
    on_disk = {f"renditions/{image.pk}/{path.name}" for path in folder.iterdir()}
    assert on_disk == second  # the replaced files are gone
    assert [(r["width"], r["format"]) for r in outcome["renditions"]] == [
        (160, "webp"),
        (160, "jpeg"),
        (480, "webp"),
        (480, "jpeg"),
        (1200, "webp"),
        (1200, "jpeg"),
    ]


def test_widths_no_longer_wanted_are_removed(mug, media_settings):
    image = ready_picture(mug)
    media_settings.RENDITION_WIDTHS = [320]

    renditions.make_renditions(image.pk)

    assert sorted(image.renditions.values_list("width", "format")) == [
        (320, "jpeg"),
        (320, "webp"),
    ]
    assert len(list((media_settings.MEDIA_ROOT / f"renditions/{image.pk}").iterdir())) == 2


def test_a_missing_picture_or_file_is_a_permanent_error(mug):
    with pytest.raises(PermanentError, match="does not exist"):
        renditions.make_renditions(987654)

    image = services.attach_image(mug, upload())
    image.original.storage.delete(image.original.name)
    with pytest.raises(PermanentError, match="missing"):
        renditions.make_renditions(image.pk)
    assert not Rendition.objects.exists()


def test_the_same_file_uploaded_twice_is_stored_once(mug):
    data = hostile_files.jpeg((300, 200))
    first = services.attach_image(mug, upload("a.jpg", data))
    second = services.attach_image(mug, upload("b.jpg", data))

    assert first.original.name == second.original.name
    assert len(first.original.storage.listdir("originals")[1]) == 1


# --- bulk regeneration ----------------------------------------------------------------------------


def test_regenerate_all_asks_for_one_job_per_current_picture_and_batch(
    staff_client, mug, django_capture_on_commit_callbacks
):
    lamp = Product.objects.create(name="Desk Lamp", slug="lamp", price=Decimal("79.00"))
    old = ready_picture(mug)
    pending = services.attach_image(mug, upload(data=hostile_files.jpeg((640, 480))))
    only = ready_picture(lamp)
    superseded = ready_picture(lamp)  # lamp's newest, shown; `only` is history now
    Product.objects.create(name="No Picture", slug="none", price=Decimal("1.00"))

    with django_capture_on_commit_callbacks() as publish:
        response = staff_client.post(reverse("media_jobs:regenerate_all"), follow=True)
    with django_capture_on_commit_callbacks():
        second_batch, count = services.regenerate_all()

    jobs = Job.objects.filter(kind="regenerate_renditions")
    first_batch = {job.args[1] for job in jobs} - {second_batch}
    assert len(first_batch) == 1
    # mug: the picture shown and the newer one waiting; lamp: only the newest.
    expected = {old.pk, pending.pk, superseded.pk}
    assert count == 3
    for batch in (*first_batch, second_batch):
        assert {job.args[0] for job in jobs if job.args[1] == batch} == expected
        assert all(job.key == f"regenerate_renditions:{job.args[0]}:{job.args[1]}" for job in jobs)
    assert all(job.task_name == "media_jobs.regenerate_renditions" for job in jobs)
    assert len(publish) == 3
    assert only.pk not in {job.args[0] for job in jobs}
    assert "Regenerating the renditions of 3 picture(s) at low priority" in (
        response.content.decode()
    )


def test_regenerate_all_stays_cheap_for_hundreds_of_pictures(
    mug, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    image = services.attach_image(mug, upload())
    products = Product.objects.bulk_create(
        Product(name=f"P{i}", slug=f"p{i}", price=Decimal("1.00")) for i in range(300)
    )
    ProductImage.objects.bulk_create(
        ProductImage(product=p, original=image.original.name, format="JPEG", width=1, height=1)
        for p in products
    )

    # The request only writes one job row per picture (a few queries each: nothing is
    # loaded or decoded per picture); publishing follows the commit, ~1.4 ms a message.
    with django_capture_on_commit_callbacks(), django_assert_max_num_queries(5 * 301 + 10):
        _, count = services.regenerate_all()
    assert count == 301


# --- the admin ------------------------------------------------------------------------------------


@pytest.fixture
def admin_form(mug):
    return {
        "name": mug.name,
        "slug": mug.slug,
        "description": "",
        "price": "14.50",
        "is_active": "on",
        "images-TOTAL_FORMS": "1",
        "images-INITIAL_FORMS": "0",
        "images-MIN_NUM_FORMS": "0",
        "images-MAX_NUM_FORMS": "1",
        "images-0-id": "",
        "images-0-product": str(mug.pk),
        "_save": "Save",
    }


def test_the_admin_uploads_through_the_service(admin_client, mug, admin_form):
    url = reverse("admin:shop_product_change", args=[mug.pk])
    page = admin_client.get(url).content.decode()
    assert 'enctype="multipart/form-data"' in page and 'name="images-0-original"' in page

    response = admin_client.post(url, {**admin_form, "images-0-original": upload()})

    assert response.status_code == 302, response.context["errors"] if response.context else ""
    image = ProductImage.objects.get(product=mug)
    assert image.original.name.startswith("originals/")
    assert Job.objects.filter(key=f"renditions:{image.pk}").exists()  # renditions asked for
    assert "Renditions: queued" in admin_client.get(url).content.decode()


def test_the_admin_refuses_a_hostile_upload(admin_client, mug, admin_form):
    url = reverse("admin:shop_product_change", args=[mug.pk])
    svg = upload("logo.svg", hostile_files.svg_with_script())

    response = admin_client.post(url, {**admin_form, "images-0-original": svg})

    assert response.status_code == 200
    assert "SVG pictures are not accepted" in response.content.decode()
    assert not ProductImage.objects.exists()


def test_the_admin_shows_the_newest_rendition(admin_client, mug):
    image = ready_picture(mug)
    preview = image.renditions.get(width=480, format="jpeg").file.url
    thumbnail = image.renditions.get(width=160, format="jpeg").file.url

    assert (
        preview
        in admin_client.get(reverse("admin:shop_product_change", args=[mug.pk])).content.decode()
    )
    assert thumbnail in admin_client.get(reverse("admin:shop_product_changelist")).content.decode()


@pytest.mark.parametrize("view", ["media_jobs:pictures", "media_jobs:videos"])
def test_staff_find_a_product_by_name_and_keep_the_search_through_an_upload(
    staff_client, mug, view
):
    lamp = Product.objects.create(name="Desk Lamp", slug="lamp", price=Decimal("79.00"))

    html = staff_client.get(reverse(view), {"q": "  LAMP "}).content.decode()
    assert f'id="product-{lamp.pk}"' in html and f'id="product-{mug.pk}"' not in html
    assert 'value="LAMP"' in html  # the box shows what was searched
    # Every form of the page comes back to this search.
    assert f"/{lamp.pk}/" in html and "?q=LAMP" in html

    html = staff_client.get(reverse(view), {"q": "teapot"}).content.decode()
    assert 'No product\'s name contains "teapot".' in html
    html = staff_client.get(reverse(view), {"q": "<b>x"}).content.decode()
    assert "&lt;b&gt;x" in html and "<b>x" not in html


def test_an_upload_from_a_search_comes_back_to_it(staff_client, mug):
    url = reverse("media_jobs:upload", args=[mug.pk]) + "?q=mug"
    response = staff_client.post(url, {"image": upload()})
    assert response["Location"] == reverse("media_jobs:pictures") + "?q=mug"

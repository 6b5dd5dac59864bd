import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from PIL import Image

from jobs.models import Job
from media_jobs.models import ProductImage
from shop.models import Product


@pytest.fixture
def demo_settings(settings, tmp_path):
    settings.DEBUG = True
    settings.MEDIA_ROOT = tmp_path / "media"
    # Hashing with the real hasher is slow on purpose; these tests only need it to work.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return settings


@pytest.fixture
def no_env_password(monkeypatch):
    monkeypatch.delenv("DEMO_STAFF_PASSWORD", raising=False)


def seed(*args):
    out = io.StringIO()
    # No newsletter subscribers (10,000 by default): tests/test_newsletters.py seeds those.
    call_command("seed_demo", "--subscribers", "0", *args, stdout=out)
    return out.getvalue()


def printed_password(output):
    match = re.search(r"^Staff login: staff / (\S+)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


@pytest.mark.django_db
def test_seed_creates_products_with_real_pictures(demo_settings, no_env_password):
    seed()

    products = list(Product.objects.all())
    assert len(products) == 24
    assert len({p.slug for p in products}) == 24
    for product in products:
        assert product.is_active
        assert product.price > 0
        assert product.description
        [picture] = product.images.all()
        assert picture.original.name.startswith("originals/")
        assert (picture.format, picture.width, picture.height) == ("JPEG", 800, 800)
        path = demo_settings.MEDIA_ROOT / picture.original.name
        assert path.is_file()
        with Image.open(path) as image:
            assert image.format == "JPEG"
            assert image.size == (800, 800)
            image.load()  # decodes the whole picture, not just the header
    # Attached like a staff upload: each picture's renditions are asked for.
    assert Job.objects.filter(kind="renditions").count() == 24


@pytest.mark.django_db
def test_seed_prints_a_working_staff_login(demo_settings, no_env_password):
    password = printed_password(seed())

    user = get_user_model().objects.get(username="staff")
    assert user.is_staff and user.is_superuser and user.is_active
    assert len(password) >= 12
    assert user.check_password(password)


@pytest.mark.django_db
def test_seed_takes_the_staff_password_from_the_environment(demo_settings, monkeypatch):
    monkeypatch.setenv("DEMO_STAFF_PASSWORD", "demo-pass-123")
    assert printed_password(seed()) == "demo-pass-123"
    assert get_user_model().objects.get(username="staff").check_password("demo-pass-123")


@pytest.mark.django_db
def test_seed_is_idempotent(demo_settings, no_env_password):
    seed()
    first_images = dict(Product.objects.values_list("slug", "images__original"))
    Product.objects.filter(slug="yoga-mat").update(price="1.00", is_active=False)

    password = printed_password(seed())

    assert Product.objects.count() == 24
    assert dict(Product.objects.values_list("slug", "images__original")) == first_images
    assert ProductImage.objects.count() == 24
    assert len(list((demo_settings.MEDIA_ROOT / "originals").iterdir())) == 24
    yoga = Product.objects.get(slug="yoga-mat")
    assert yoga.is_active and str(yoga.price) == "58.00"
    users = get_user_model().objects.filter(username="staff")
    assert users.count() == 1
    assert users.get().check_password(password)


@pytest.mark.django_db
def test_seed_reuses_the_pictures_of_an_earlier_database(demo_settings, no_env_password):
    seed()
    Product.objects.all().delete()  # as if the demo database had been thrown away

    seed()

    assert Product.objects.count() == 24
    files = sorted(p.name for p in (demo_settings.MEDIA_ROOT / "originals").iterdir())
    assert len(files) == 24
    assert sorted(ProductImage.objects.values_list("original", flat=True)) == [
        f"originals/{name}" for name in files
    ]


@pytest.mark.django_db
def test_seed_takes_a_number_of_products(demo_settings, no_env_password):
    seed("--products", "3")
    assert Product.objects.count() == 3
    seed("--products", "30")
    assert Product.objects.count() == 30

    with pytest.raises(CommandError):
        seed("--products", "-1")


@pytest.mark.django_db
def test_seed_refuses_without_debug(settings, tmp_path):
    settings.DEBUG = False
    settings.MEDIA_ROOT = tmp_path

    with pytest.raises(CommandError, match="DEBUG"):
        seed()
    assert Product.objects.count() == 0
    assert not get_user_model().objects.filter(username="staff").exists()
    assert list(tmp_path.iterdir()) == []

"""Staff upload a product picture; a media worker makes its renditions; the shop shows them."""

import re

import pytest

from shop.models import Product
from tests import hostile_files
from tests.browser.steps import JOB_TIMEOUT_MS, expect, log_in, make_staff

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def loaded(image):
    """True when the browser has fetched and decoded `image` (not a broken image icon)."""
    return image.evaluate("img => img.complete && img.naturalWidth > 0")


def test_staff_upload_a_picture_and_the_thumbnail_replaces_the_placeholder(
    page, worker, django_user_model, screenshot
):
    mug = Product.objects.create(name="Blue Mug", slug="blue-mug", price="12.50")
    staff = make_staff(django_user_model)

    page.goto("/")
    card_image = page.locator(".card", has_text="Blue Mug").locator("img.product-image")
    expect(card_image).to_have_class("product-image placeholder")

    log_in(page, staff, then="/staff/images/")
    row = page.locator(f"#product-{mug.pk}")
    on_the_shop = row.locator("td").nth(1)
    expect(on_the_shop).to_have_text("placeholder")

    row.get_by_label("New picture of Blue Mug").set_input_files(
        {"name": "mug.jpg", "mimeType": "image/jpeg", "buffer": hostile_files.jpeg((1200, 900))}
    )
    row.get_by_role("button", name="Upload").click()
    expect(page.locator(".messages")).to_contain_text("Blue Mug: picture uploaded")

    # The page reloads itself while the renditions are made; then the thumbnail is there,
    # served from the media storage the worker wrote it to.
    thumbnail = on_the_shop.locator("img")
    expect(thumbnail).to_be_visible(timeout=JOB_TIMEOUT_MS)
    expect(thumbnail).to_have_attribute("src", re.compile(r"^/media/renditions/.+"))
    page.wait_for_load_state("load")
    assert loaded(thumbnail), "the thumbnail's file is not served"
    expect(row).to_contain_text("1200 \u00d7 900 JPEG")

    # And the customer's catalog shows the picture instead of the placeholder.
    page.goto("/")
    expect(card_image).not_to_have_class("product-image placeholder")
    assert loaded(card_image), "the picture's file is not served"
    screenshot("catalog-with-picture")

"""The staff page for product pictures: upload, follow each picture's job, regenerate all.

Views stay thin: they check input with media_jobs/forms.py and write only through
media_jobs/services.py, which asks for the background work itself.
"""

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from media_jobs import selectors, services
from media_jobs.forms import PictureUploadForm, VideoUploadForm
from shop.models import Product

PER_PAGE = 25


@staff_member_required
@never_cache
@require_safe
def pictures(request):
    return render_pictures(request)


@staff_member_required
@never_cache
@require_POST
def upload_picture(request, product_id):
    product = get_object_or_404(Product, pk=product_id)
    form = PictureUploadForm(request.POST, request.FILES, auto_id=form_id(product))
    if form.is_valid():
        try:
            services.attach_image(product, form.cleaned_data["image"])
        except services.ImageRejected as exc:
            form.add_error("image", f"{exc}.")
    if not form.is_valid():
        # The same page, with the error next to this product's upload field.
        return render_pictures(request, invalid_form=(product.pk, form))
    messages.success(request, f"{product.name}: picture uploaded; its renditions are being made.")
    return redirect(page_url(request))


@staff_member_required
@require_POST
def regenerate_all(request):
    batch, count = services.regenerate_all()
    messages.success(
        request,
        f"Regenerating the renditions of {count} picture(s) at low priority (batch {batch}): "
        "new uploads still go first.",
    )
    return redirect(page_url(request))


def products_page(request):
    """The page of products the request asks for, found by name (`?q=`) if it asks."""
    products = Product.objects.order_by("name", "pk")
    if search := search_term(request):
        products = products.filter(name__icontains=search)
    return Paginator(products, PER_PAGE).get_page(request.GET.get("page"))


def render_pictures(request, invalid_form=None):
    page = products_page(request)
    rows = []  # (selectors.ProductPictureRow, its upload form)
    for row in selectors.picture_rows(page):
        form = PictureUploadForm(auto_id=form_id(row.product))
        if invalid_form and invalid_form[0] == row.product.pk:
            form = invalid_form[1]
        rows.append((row, form))
    context = {
        "page": page,
        "search": search_term(request),
        # What every link and form of the page carries along: this page of this search.
        "here": here(request),
        "rows": rows,
        "widths": settings.RENDITION_WIDTHS,
        # Reload while a job is on its way, but never over a form error staff must read.
        "refresh": invalid_form is None and any(row.waiting for row, _ in rows),
    }
    return render(request, "media_jobs/pictures.html", context)


def form_id(product):
    return f"id_picture{product.pk}_%s"


def search_term(request):
    return request.GET.get("q", "").strip()[:100]


def here(request):
    """`?page=N&q=...` of this request (what is valid of it), or ""."""
    page = request.GET.get("page", "")
    params = {"page": page if page.isdigit() else "", "q": search_term(request)}
    query = urlencode({k: v for k, v in params.items() if v})
    return f"?{query}" if query else ""


def page_url(request, view="media_jobs:pictures"):
    return reverse(view) + here(request)


# --- videos ---------------------------------------------------------------------------------------


@staff_member_required
@never_cache
@require_safe
def videos(request):
    return render_videos(request)


@staff_member_required
@never_cache
@require_POST
def upload_video(request, product_id):
    product = get_object_or_404(Product, pk=product_id)
    form = VideoUploadForm(request.POST, request.FILES, auto_id=video_form_id(product))
    if form.is_valid():
        try:
            services.attach_video(product, form.cleaned_data["video"])
        except services.VIDEO_REFUSALS as exc:
            form.add_error("video", f"{exc}.")
    if not form.is_valid():
        return render_videos(request, invalid_form=(product.pk, form))
    messages.success(
        request, f"{product.name}: video uploaded; its poster and preview are being made."
    )
    return redirect(page_url(request, "media_jobs:videos"))


def render_videos(request, invalid_form=None):
    page = products_page(request)
    rows = []  # (selectors.ProductVideoRow, its upload form)
    for row in selectors.video_rows(page):
        form = VideoUploadForm(auto_id=video_form_id(row.product))
        if invalid_form and invalid_form[0] == row.product.pk:
            form = invalid_form[1]
        rows.append((row, form))
    context = {
        "page": page,
        "search": search_term(request),
        # What every link and form of the page carries along: this page of this search.
        "here": here(request),
        "rows": rows,
        "max_seconds": settings.VIDEO_MAX_SECONDS,
        "max_megabytes": settings.VIDEO_MAX_UPLOAD_BYTES // (1024 * 1024),
        "preview_width": settings.VIDEO_PREVIEW_WIDTH,
        "preview_seconds": settings.VIDEO_PREVIEW_SECONDS,
        # Reload while a job is on its way, but never over a form error staff must read.
        "refresh": invalid_form is None and any(row.waiting for row, _ in rows),
    }
    return render(request, "media_jobs/videos.html", context)


def video_form_id(product):
    return f"id_video{product.pk}_%s"

"""Reads for product pictures: what the shop shows, and what staff see of the jobs behind it.

The shop shows a product's newest picture whose renditions are ready. A fresh upload is
therefore not shown until it is ready (the previous picture, or the placeholder, stays until
then), and an upload that fails leaves the previous picture in place.
"""

from dataclasses import dataclass, field

from django.db.models import Exists, OuterRef, Subquery

from jobs.models import Job
from jobs.outbox import subject_label
from media_jobs.models import ProductImage, ProductVideo, Rendition
from shop.models import Product


@dataclass(frozen=True)
class Picture:
    """The ready renditions of one picture, for <picture>, srcset and the admin's previews."""

    image_id: int
    renditions: list = field(default_factory=list)  # Rendition rows, smallest first

    def of_format(self, format):
        return [r for r in self.renditions if r.format == format]

    @property
    def webp_srcset(self):
        return srcset(self.of_format(Rendition.Format.WEBP))

    @property
    def jpeg_srcset(self):
        return srcset(self.of_format(Rendition.Format.JPEG))

    @property
    def largest(self):
        # Its width and height go in <img width height>: the browser reserves the space
        # before the file arrives, and the layout does not jump.
        return self.renditions[-1]

    @property
    def widths(self):
        """The widths it was made in: those of RENDITION_WIDTHS the original is wide enough for."""
        return sorted({r.width for r in self.renditions})

    @property
    def smallest(self):
        return self.of_format(Rendition.Format.JPEG)[0]

    def at_least(self, width, format=Rendition.Format.JPEG):
        """The smallest rendition of `format` at least `width` wide, else the largest."""
        candidates = self.of_format(format)
        return next((r for r in candidates if r.width >= width), candidates[-1])

    @property
    def fallback(self):
        """The <img src> for browsers without srcset: a JPEG of middling size."""
        return self.at_least(480)


def srcset(renditions):
    return ", ".join(f"{r.file.url} {r.width}w" for r in renditions)


def picture_for(product):
    """The Picture the shop shows for `product`, or None while it has no ready picture.

    Two queries, unless attach_pictures() already loaded it with its neighbours.
    """
    if hasattr(product, "picture"):
        return product.picture
    return pictures_for([product]).get(product.pk)


def attach_pictures(products):
    """Set `product.picture` on each of `products`, in two queries for the whole list.

    For pages that show many products (the catalog, the cart): without it, each picture is
    looked up as it is drawn. Returns `products` as a list.
    """
    products = list(products)
    pictures = pictures_for(products)
    for product in products:
        product.picture = pictures.get(product.pk)
    return products


def pictures_for(products):
    """{product id: Picture} for those of `products` that have a ready picture. Two queries."""
    shown = dict(
        Product.objects.filter(pk__in=[p.pk for p in products])
        .annotate(image_id=newest_image(ready=True))
        .exclude(image_id=None)
        .values_list("pk", "image_id")
    )
    renditions = {}
    for rendition in Rendition.objects.filter(image_id__in=shown.values()).order_by(
        "width", "format"
    ):
        renditions.setdefault(rendition.image_id, []).append(rendition)
    return {
        product_id: Picture(image_id, renditions[image_id])
        for product_id, image_id in shown.items()
        if image_id in renditions
    }


def current_image_ids():
    """Ids of the pictures that matter: each product's newest, and the one the shop shows.

    They differ while a new upload is waiting for its renditions, or after it failed.
    """
    rows = Product.objects.annotate(
        newest_id=newest_image(), shown_id=newest_image(ready=True)
    ).values_list("newest_id", "shown_id")
    return sorted({image_id for row in rows for image_id in row if image_id is not None})


@dataclass
class ProductPictureRow:
    """One product on the staff pictures page."""

    product: Product
    picture: Picture | None  # what the shop shows
    newest: ProductImage | None  # the latest upload, shown or not
    job: Job | None  # the latest job of the latest upload: its state in words

    @property
    def waiting(self):
        return self.job is not None and not self.job.is_final


def picture_rows(products):
    """A ProductPictureRow for each of `products`, in a fixed handful of queries."""
    products = list(products)
    newest_ids = dict(
        Product.objects.filter(pk__in=[p.pk for p in products])
        .annotate(image_id=newest_image())
        .values_list("pk", "image_id")
    )
    newest = ProductImage.objects.in_bulk([i for i in newest_ids.values() if i is not None])
    latest_job = {}
    subjects = [subject_label(image) for image in newest.values()]
    for job in Job.objects.filter(subject__in=subjects).order_by("created_at", "pk"):
        latest_job[job.subject] = job  # ascending: the last one seen is the latest
    pictures = pictures_for(products)
    rows = []
    for product in products:
        image = newest.get(newest_ids.get(product.pk))
        job = latest_job.get(subject_label(image)) if image else None
        rows.append(ProductPictureRow(product, pictures.get(product.pk), image, job))
    return rows


def newest_image(ready=False):
    """Subquery: the id of a product's newest picture (`ready`: of those with renditions)."""
    images = ProductImage.objects.filter(product=OuterRef("pk"))
    if ready:
        images = images.filter(Exists(Rendition.objects.filter(image=OuterRef("pk"))))
    return Subquery(images.order_by("-uploaded_at", "-pk").values("pk")[:1])


# --- videos ---------------------------------------------------------------------------------------


def video_for(product):
    """The ProductVideo the shop shows for `product`: its newest with poster and preview ready."""
    return ready_videos().filter(product=product).first()


def ready_videos():
    return ProductVideo.objects.exclude(poster="").exclude(preview="")


@dataclass
class ProductVideoRow:
    """One product on the staff videos page."""

    product: Product
    shown: ProductVideo | None  # what the shop shows
    newest: ProductVideo | None  # the latest upload, shown or not
    job: Job | None  # the latest job of the latest upload: its state in words

    @property
    def waiting(self):
        return self.job is not None and not self.job.is_final


def video_rows(products):
    """A ProductVideoRow for each of `products`, in a fixed handful of queries."""
    products = list(products)
    ids = {
        pk: (newest_id, shown_id)
        for pk, newest_id, shown_id in Product.objects.filter(pk__in=[p.pk for p in products])
        .annotate(newest_id=newest_video(), shown_id=newest_video(ready=True))
        .values_list("pk", "newest_id", "shown_id")
    }
    videos = ProductVideo.objects.in_bulk([i for pair in ids.values() for i in pair if i])
    latest_job = {}
    subjects = [subject_label(v) for v in videos.values()]
    for job in Job.objects.filter(subject__in=subjects).order_by("created_at", "pk"):
        latest_job[job.subject] = job  # ascending: the last one seen is the latest
    rows = []
    for product in products:
        newest_id, shown_id = ids.get(product.pk, (None, None))
        newest = videos.get(newest_id)
        job = latest_job.get(subject_label(newest)) if newest else None
        rows.append(ProductVideoRow(product, videos.get(shown_id), newest, job))
    return rows


def newest_video(ready=False):
    """Subquery: the id of a product's newest video (`ready`: of those with poster and preview)."""
    videos = ready_videos() if ready else ProductVideo.objects.all()
    return Subquery(
        videos.filter(product=OuterRef("pk")).order_by("-uploaded_at", "-pk").values("pk")[:1]
    )

from django.db import models
from django.utils import timezone


class ProductImage(models.Model):
    """One picture uploaded for a product. The newest one whose renditions are ready is shown.

    The original is kept as uploaded; the shop only ever shows renditions made from it (see
    Rendition), so what a browser receives was decoded and re-encoded by us. It is a FileField,
    not an ImageField: an ImageField opens the file with Pillow on its own to read the size,
    while we read it once, from the header, after our limits were checked (media_jobs/images.py).
    """

    product = models.ForeignKey("shop.Product", related_name="images", on_delete=models.CASCADE)
    # Named after its content (originals/<sha256>.<format>), never after the uploader's file
    # name: see media_jobs/services.py.
    original = models.FileField(upload_to="originals/", max_length=200)
    format = models.CharField(max_length=10, help_text="As Pillow identified it: JPEG, PNG, ...")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    uploaded_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-uploaded_at", "-pk"]
        get_latest_by = ["uploaded_at", "pk"]

    def __str__(self):
        return f"Picture {self.pk} of {self.product}"


class Rendition(models.Model):
    """One resized copy of a ProductImage: one width, one format.

    Making renditions again (a redelivered job, a bulk regeneration) replaces these rows and
    their files; the unique constraint makes a duplicate impossible.
    """

    class Format(models.TextChoices):
        WEBP = "webp", "WebP"
        JPEG = "jpeg", "JPEG"

    image = models.ForeignKey(ProductImage, related_name="renditions", on_delete=models.CASCADE)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=4, choices=Format.choices)
    file = models.FileField(upload_to="renditions/", max_length=200)
    size = models.PositiveIntegerField(help_text="In bytes")
    made_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["image", "width", "format"]
        constraints = [
            models.UniqueConstraint(
                fields=["image", "width", "format"], name="one_rendition_per_width_and_format"
            )
        ]

    def __str__(self):
        return f"{self.width}w {self.format} of picture {self.image_id}"

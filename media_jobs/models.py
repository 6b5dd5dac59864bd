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


class ProductVideo(models.Model):
    """A short video uploaded for a product, with the poster frame and preview made of it.

    The shop shows a product's newest video whose poster and preview are ready, never the
    original: what a browser receives was decoded and re-encoded by us (media_jobs/video.py).
    What the probe at upload found is kept with it; the poster and preview fields stay empty
    until the media worker has made them (media_jobs/video_previews.py), each saved as soon as
    it is made, so a job run again makes only what is missing.
    """

    product = models.ForeignKey("shop.Product", related_name="videos", on_delete=models.CASCADE)
    # videos/originals/<sha256>.<container>, never the uploader's file name (see services.py).
    original = models.FileField(upload_to="videos/originals/", max_length=200)
    container = models.CharField(max_length=10, help_text="mp4, mov, webm or mkv")
    codec = models.CharField(max_length=30, help_text="As ffprobe names it: h264, hevc, vp9, ...")
    width = models.PositiveIntegerField(help_text="As shown, rotation applied")
    height = models.PositiveIntegerField()
    duration = models.FloatField(help_text="In seconds")
    size = models.PositiveBigIntegerField(help_text="In bytes")
    uploaded_at = models.DateTimeField(default=timezone.now, db_index=True)

    poster = models.FileField(upload_to="videos/", max_length=200, blank=True)
    poster_width = models.PositiveIntegerField(null=True, blank=True)
    poster_height = models.PositiveIntegerField(null=True, blank=True)
    preview = models.FileField(upload_to="videos/", max_length=200, blank=True)
    preview_width = models.PositiveIntegerField(null=True, blank=True)
    preview_height = models.PositiveIntegerField(null=True, blank=True)
    preview_duration = models.FloatField(null=True, blank=True, help_text="In seconds")
    preview_size = models.PositiveIntegerField(null=True, blank=True, help_text="In bytes")

    class Meta:
        ordering = ["-uploaded_at", "-pk"]
        get_latest_by = ["uploaded_at", "pk"]

    def __str__(self):
        return f"Video {self.pk} of {self.product}"

    @property
    def ready(self):
        return bool(self.poster and self.preview)

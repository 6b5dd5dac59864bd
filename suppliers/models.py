"""Suppliers, the pages of theirs we follow, each fetch run, and every change it made."""

from urllib.parse import urljoin, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse
from django.utils import timezone


def validate_http_url(value):
    if urlsplit(value).scheme not in ("http", "https"):
        raise ValidationError("Enter an http:// or https:// address.")


def validate_page_path(value):
    parts = urlsplit(value)
    if not value.startswith("/") or parts.scheme or parts.netloc:
        raise ValidationError("Enter a path on the supplier's site, starting with /.")


class Supplier(models.Model):
    name = models.CharField(max_length=100)
    base_url = models.URLField(
        validators=[validate_http_url],
        help_text="Where the supplier's site starts, e.g. https://supplier.example/ ; "
        "robots.txt is read from its root.",
    )
    is_active = models.BooleanField(
        default=True, help_text="Fetched by the schedule; an inactive one only on request."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def url_of(self, path):
        return urljoin(self.base_url, path)


class SupplierListing(models.Model):
    """One of our products, as one supplier sells it: the page that says its price and stock."""

    supplier = models.ForeignKey(Supplier, related_name="listings", on_delete=models.CASCADE)
    product = models.ForeignKey(
        "shop.Product", related_name="supplier_listings", on_delete=models.CASCADE
    )
    path = models.CharField(
        max_length=300, validators=[validate_page_path], help_text="e.g. /products/blue-mug"
    )
    is_active = models.BooleanField(default=True)
    # What the page said last time it was read, and when; the catalog holds what we sell at.
    last_price = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    last_stock = models.PositiveIntegerField(null=True, blank=True)
    last_fetched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["supplier", "path"]
        constraints = [
            models.UniqueConstraint(fields=["supplier", "path"], name="one_listing_per_page"),
            models.UniqueConstraint(
                fields=["supplier", "product"], name="one_listing_per_supplier_product"
            ),
        ]

    def __str__(self):
        return f"{self.supplier}: {self.path}"

    @property
    def url(self):
        return self.supplier.url_of(self.path)


class FetchRun(models.Model):
    """One fetch of a supplier's pages: asked for by staff ("fetch now") or by the schedule.

    Its state is its job's (jobs.Job: queued, fetching, retrying, done, failed), so there is one
    truth for it, kept by the job runner. The counters are kept up to date page by page.
    """

    supplier = models.ForeignKey(Supplier, related_name="runs", on_delete=models.CASCADE)
    job = models.OneToOneField(
        "jobs.Job", null=True, blank=True, related_name="+", on_delete=models.SET_NULL
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        related_name="+",
        on_delete=models.SET_NULL,
        help_text="Empty for a run of the schedule.",
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    pages_total = models.PositiveIntegerField(default=0)
    pages_fetched = models.PositiveIntegerField(default=0)
    pages_changed = models.PositiveIntegerField(default=0)
    pages_failed = models.PositiveIntegerField(default=0)
    pages_skipped = models.PositiveIntegerField(default=0, help_text="Disallowed by robots.txt.")

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"Fetch #{self.pk} of {self.supplier}"

    def get_absolute_url(self):
        return reverse("suppliers:run", args=[self.pk])


class PageResult(models.Model):
    """What happened to one page in one run: the run's checkpoint and its reasons.

    A page with a final result (changed, unchanged, disallowed) is not fetched again by a
    retry or a redelivery of the same run; a failed one is, on the run's next attempt.
    """

    class Outcome(models.TextChoices):
        CHANGED = "changed", "changed"
        UNCHANGED = "unchanged", "no change"
        DISALLOWED = "disallowed", "not fetched: robots.txt"
        RETRYING = "retrying", "to try again"
        FAILED = "failed", "failed"

    DONE = (Outcome.CHANGED, Outcome.UNCHANGED, Outcome.DISALLOWED)

    run = models.ForeignKey(FetchRun, related_name="pages", on_delete=models.CASCADE)
    listing = models.ForeignKey(SupplierListing, related_name="+", on_delete=models.CASCADE)
    url = models.CharField(max_length=500)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    detail = models.TextField(blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["url"]
        constraints = [
            models.UniqueConstraint(fields=["run", "listing"], name="one_result_per_run_page")
        ]

    def __str__(self):
        return f"{self.url}: {self.outcome}"


class PriceChange(models.Model):
    """A change of a product's price or stock, made by a run from a supplier's page."""

    product = models.ForeignKey("shop.Product", related_name="+", on_delete=models.CASCADE)
    listing = models.ForeignKey(SupplierListing, related_name="changes", on_delete=models.CASCADE)
    run = models.ForeignKey(FetchRun, related_name="changes", on_delete=models.CASCADE)
    old_price = models.DecimalField(max_digits=10, decimal_places=2)
    new_price = models.DecimalField(max_digits=10, decimal_places=2)
    old_stock = models.PositiveIntegerField(null=True, blank=True)
    new_stock = models.PositiveIntegerField()
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-at", "-pk"]
        constraints = [
            # The database's own guard against a change recorded twice for a page of a run,
            # whatever a redelivered or duplicated message does.
            models.UniqueConstraint(fields=["run", "listing"], name="one_change_per_run_page")
        ]

    def __str__(self):
        return f"{self.product}: {self.old_price} -> {self.new_price}"

    @property
    def price_changed(self):
        return self.old_price != self.new_price

    @property
    def stock_changed(self):
        return self.old_stock != self.new_stock

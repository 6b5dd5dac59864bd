import secrets
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse

MAX_QUANTITY = 99


class Product(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=140, unique=True)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    # Kept up to date from the supplier's site (suppliers/); empty while nobody follows it.
    stock = models.PositiveIntegerField(null=True, blank=True)
    # Pictures are media_jobs.ProductImage rows (product.images), each with its renditions.
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("shop:product", args=[self.slug])


def new_order_token():
    # 128 bits from the OS's CSPRNG: the link is the only key to the order page.
    return secrets.token_urlsafe(16)


class Order(models.Model):
    class Status(models.TextChoices):
        PLACED = "placed", "placed"
        SHIPPED = "shipped", "shipped"

    token = models.CharField(max_length=40, unique=True, default=new_order_token, editable=False)
    customer_name = models.CharField(max_length=100)
    email = models.EmailField()
    shipping_address = models.TextField(max_length=500)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PLACED)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    carrier = models.CharField(max_length=50, blank=True)
    tracking_number = models.CharField(max_length=100, blank=True)
    shipped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"Order #{self.pk}"

    def get_absolute_url(self):
        return reverse("shop:order_status", args=[self.token])

    @property
    def total(self):
        return sum((line.subtotal for line in self.lines.all()), Decimal("0.00"))


class OrderLine(models.Model):
    order = models.ForeignKey(Order, related_name="lines", on_delete=models.CASCADE)
    product = models.ForeignKey(Product, related_name="+", on_delete=models.PROTECT)
    # Copied at checkout: the order keeps what the customer saw, whatever the catalog does later.
    product_name = models.CharField(max_length=120)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    quantity = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_QUANTITY)]
    )

    def __str__(self):
        return f"{self.quantity} x {self.product_name}"

    @classmethod
    def of(cls, product, quantity, order=None):
        """A line of `quantity` x `product`, keeping the name and price the customer saw."""
        return cls(
            order=order,
            product=product,
            product_name=product.name,
            unit_price=product.price,
            quantity=quantity,
        )

    @property
    def subtotal(self):
        return self.unit_price * self.quantity


def sales_report_path(report, filename):
    # A folder nobody can guess: the file lives in the media storage, and the staff-only
    # download view is the way to it, not a URL someone could work out from the dates.
    return f"reports/{secrets.token_urlsafe(16)}/{filename}"


class SalesReport(models.Model):
    """A sales report of a date range: asked for by staff (or by celery beat), built by a job.

    The row is also the report's progress: the job writes `rows_done` and `percent` to it every
    chunk of orders, so the report's page and the admin read progress with a plain query and
    never touch the Celery result backend.
    """

    class State(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        RETRYING = "retrying", "retrying"
        DONE = "done", "done"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    # A report in one of these states is still to come: asking for its range again reuses it.
    ACTIVE_STATES = (State.QUEUED, State.RUNNING, State.RETRYING)

    date_from = models.DateField()
    date_to = models.DateField()
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="sales_reports",
        help_text="Empty for the daily report made by celery beat.",
    )
    scheduled = models.BooleanField(default=False, help_text="Made by the daily schedule.")

    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED)
    rows_total = models.PositiveIntegerField(default=0, help_text="Order lines in the range.")
    rows_done = models.PositiveIntegerField(default=0)
    percent = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)

    csv_file = models.FileField(upload_to=sales_report_path, blank=True)
    # [["2026-11-24", "1234.50"], ...]: one entry per day of the range, days without sales
    # included; amounts as strings so that no cent is lost to floating point.
    revenue_per_day = models.JSONField(default=list, blank=True)
    order_count = models.PositiveIntegerField(default=0)
    units_sold = models.PositiveIntegerField(default=0)
    revenue = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0.00"))

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(date_from__lte=models.F("date_to")),
                name="sales_report_range_in_order",
            ),
            # Two requests for the same range at the same moment cannot both start a report:
            # the database itself refuses the second one (see services.request_sales_report).
            models.UniqueConstraint(
                fields=["date_from", "date_to"],
                # ACTIVE_STATES, spelled out: Meta cannot see the names of the class around it.
                condition=models.Q(state__in=["queued", "running", "retrying"]),
                name="one_active_sales_report_per_range",
            ),
        ]

    def __str__(self):
        return f"Sales report #{self.pk}: {self.date_from} to {self.date_to}"

    def get_absolute_url(self):
        return reverse("reports:detail", args=[self.pk])

    @property
    def is_active(self):
        return self.state in self.ACTIVE_STATES

    @property
    def is_done(self):
        return self.state == self.State.DONE

    @property
    def download_name(self):
        if self.date_from == self.date_to:
            return f"sales-{self.date_from}.csv"
        return f"sales-{self.date_from}-to-{self.date_to}.csv"

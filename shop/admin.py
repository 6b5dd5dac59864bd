from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from media_jobs import selectors as picture_selectors
from media_jobs.admin import ProductImageUploadInline
from shop import selectors, services
from shop.forms import BulkShipForm
from shop.models import Order, OrderLine, Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["thumbnail", "name", "slug", "price", "stock", "is_active"]
    list_display_links = ["thumbnail", "name"]
    list_filter = ["is_active"]
    list_editable = ["price", "is_active"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}
    # Stock comes from the supplier's site (suppliers/): an edit here would be overwritten by
    # the next fetch, so it is shown, not edited.
    readonly_fields = ["image_preview", "stock", "created_at"]
    fields = ["name", "slug", "description", "price", "stock", "is_active", "image_preview"]
    # Pictures are uploaded through media_jobs.services.attach_image, which asks for renditions.
    inlines = [ProductImageUploadInline]

    @admin.display(description="")
    def thumbnail(self, obj):
        return self._img(picture_selectors.picture_for(obj), 48)

    @admin.display(description="Picture")
    def image_preview(self, obj):
        if obj.pk is None:
            return "No picture yet"
        [row] = picture_selectors.picture_rows([obj])
        preview = self._img(row.picture, 240) or "No picture ready yet"
        if row.newest is None or row.job is None:
            return preview
        # The state of the latest upload, whether or not it is the one shown yet.
        return format_html(
            "{}<p>Latest upload: {}: {}</p>", preview, row.job.label, row.job.describe()
        )

    @staticmethod
    def _img(picture, size):
        if picture is None:
            return ""
        return format_html(
            '<img src="{}" alt="" width="{}" height="{}" style="{}">',
            picture.at_least(size).file.url,
            size,
            size,
            "object-fit:cover;border-radius:4px",
        )


class OrderLineInline(admin.TabularInline):
    """What was bought, as it was at checkout: nothing here can be changed."""

    model = OrderLine
    fields = ["product", "product_name", "unit_price", "quantity", "subtotal"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["__str__", "customer_name", "email", "status", "order_total", "created_at"]
    list_filter = ["status"]
    actions = ["mark_shipped"]
    search_fields = ["customer_name", "email", "token"]
    date_hierarchy = "created_at"
    inlines = [OrderLineInline]
    fields = [
        "status",
        "carrier",
        "tracking_number",
        "shipped_at",
        "customer_name",
        "email",
        "shipping_address",
        "token",
        "created_at",
        "order_total",
        "status_page",
        "background_jobs",
    ]
    # Shipping goes through the "Mark as shipped" action (shop.services.ship_orders), which
    # also asks for the shipping email: these fields are not typed in by hand.
    readonly_fields = [
        "status",
        "carrier",
        "tracking_number",
        "shipped_at",
        "token",
        "created_at",
        "order_total",
        "status_page",
        "background_jobs",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("lines")

    def has_add_permission(self, request):
        # Orders come from checkout (shop.services.place_order), which also asks for the
        # confirmation email; one typed in here would have no job behind it.
        return False

    @admin.action(description="Mark as shipped (and email the customers)")
    def mark_shipped(self, request, queryset):
        """Ship many orders in one request: the emails are jobs, so this returns at once."""
        form = BulkShipForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            shipped = services.ship_orders(queryset, carrier=form.cleaned_data["carrier"])
            skipped = queryset.count() - len(shipped)
            self.message_user(
                request,
                f"{len(shipped)} order(s) shipped, their emails queued; "
                f"{skipped} already shipped left alone.",
                messages.SUCCESS,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Mark orders as shipped",
            "orders": queryset,
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/shop/order/ship_orders.html", context)

    @admin.display(description="Total")
    def order_total(self, obj):
        return obj.total

    @admin.display(description="Customer's page")
    def status_page(self, obj):
        url = obj.get_absolute_url()
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, url)

    @admin.display(description="Background jobs")
    def background_jobs(self, obj):
        jobs = selectors.jobs_for(obj)
        if not jobs:
            return "None"
        return format_html(
            "<ul style='margin:0;padding-left:1.2em'>{}</ul>",
            format_html_join(
                "",
                '<li><a href="{}">{}</a> [{}]: {}</li>',
                (
                    (
                        reverse("admin:jobs_job_change", args=[job.pk]),
                        job.label,
                        job.state,
                        job.describe(),
                    )
                    for job in jobs
                ),
            ),
        )


# --- Sales reports ------------------------------------------------------------------------------
# Appended on its own while the admin above is being reworked; this import can join the others.
from shop.models import SalesReport  # noqa: E402


@admin.register(SalesReport)
class SalesReportAdmin(admin.ModelAdmin):
    """Reports are asked for on the reports page (or by the daily schedule) and filled in by
    their job: here they are looked at, and deleted, never edited."""

    list_display = [
        "__str__",
        "state",
        "percent",
        "requested_by",
        "scheduled",
        "revenue",
        "created_at",
    ]
    list_filter = ["state", "scheduled"]
    date_hierarchy = "created_at"
    fields = [
        "date_from",
        "date_to",
        "requested_by",
        "scheduled",
        "state",
        "percent",
        "rows_done",
        "rows_total",
        "error",
        "order_count",
        "units_sold",
        "revenue",
        "report_page",
        "download",
        "created_at",
        "started_at",
        "finished_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        # A report typed in here would have no job to build it: ask on the reports page.
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Page")
    def report_page(self, obj):
        url = obj.get_absolute_url()
        return format_html('<a href="{}">{}</a>', url, url)

    @admin.display(description="CSV file")
    def download(self, obj):
        # Through the staff-only download view, not the file's address in the media storage.
        if not (obj.is_done and obj.csv_file):
            return "None yet"
        url = reverse("reports:download", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, obj.download_name)

    def delete_model(self, request, obj):
        obj.csv_file.delete(save=False)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for report in queryset:
            report.csv_file.delete(save=False)
        super().delete_queryset(request, queryset)

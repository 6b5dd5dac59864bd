from django.contrib import admin, messages
from django.db import models
from django.utils.html import format_html

from suppliers import services
from suppliers.models import FetchRun, PageResult, PriceChange, Supplier, SupplierListing


class ListingInline(admin.TabularInline):
    model = SupplierListing
    fields = ["product", "path", "is_active", "last_price", "last_stock", "last_fetched_at"]
    readonly_fields = ["last_price", "last_stock", "last_fetched_at"]
    autocomplete_fields = ["product"]
    extra = 1


@admin.register(Supplier)
class SupplierAdmin(admin.ModelAdmin):
    list_display = ["name", "base_url", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name", "base_url"]
    inlines = [ListingInline]
    actions = ["fetch_now"]
    # "supplier.example" typed without a scheme means https (Django 6's default, today).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    @admin.action(description="Fetch their prices now")
    def fetch_now(self, request, queryset):
        for supplier in queryset:
            run, reused = services.request_fetch(supplier, requested_by=request.user)
            note = "already on its way" if reused else "asked for"
            self.message_user(request, f"{supplier}: fetch #{run.pk} {note}.", messages.SUCCESS)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Written by the fetch job only: looked at here, never edited."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class PageResultInline(admin.TabularInline):
    model = PageResult
    fields = ["url", "outcome", "http_status", "detail", "at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(FetchRun)
class FetchRunAdmin(ReadOnlyAdmin):
    list_display = [
        "__str__",
        "state",
        "pages_total",
        "pages_fetched",
        "pages_changed",
        "pages_failed",
        "pages_skipped",
        "requested_by",
        "created_at",
    ]
    list_filter = ["supplier"]
    list_select_related = ["supplier", "job", "requested_by"]
    date_hierarchy = "created_at"
    fields = [
        "supplier",
        "state",
        "requested_by",
        "created_at",
        "pages_total",
        "pages_fetched",
        "pages_changed",
        "pages_failed",
        "pages_skipped",
        "page",
    ]
    readonly_fields = fields
    inlines = [PageResultInline]

    @admin.display(description="State")
    def state(self, obj):
        return obj.job.describe() if obj.job else "no job"

    @admin.display(description="Page")
    def page(self, obj):
        return format_html('<a href="{}">{}</a>', obj.get_absolute_url(), obj.get_absolute_url())


@admin.register(PriceChange)
class PriceChangeAdmin(ReadOnlyAdmin):
    list_display = ["product", "old_price", "new_price", "old_stock", "new_stock", "run", "at"]
    list_filter = ["run__supplier"]
    list_select_related = ["product", "run__supplier"]
    search_fields = ["product__name"]
    date_hierarchy = "at"

from django.contrib import admin
from django.forms.models import BaseInlineFormSet

from media_jobs import services
from media_jobs.forms import ProductImageUploadForm
from media_jobs.models import ProductImage, ProductVideo


class ProductImageUploadFormSet(BaseInlineFormSet):
    """Saves each new upload through services.attach_image, which also asks for renditions.

    A plain inline would save the ProductImage row and ask for nothing: no renditions, ever.
    """

    def save(self, commit=True):
        self.new_objects = [
            services.attach_image(self.instance, form.cleaned_data["original"])
            for form in self.extra_forms
            if form.has_changed()
        ]
        # The admin's change message reads these three lists.
        self.changed_objects, self.deleted_objects = [], []
        return self.new_objects


class ProductImageUploadInline(admin.StackedInline):
    """Upload a new picture from the product's admin page (the history stays out of the way).

    Shown on shop.admin.ProductAdmin. Only adds: an uploaded picture is never edited in place,
    a new upload replaces it on the shop as soon as its renditions are ready.
    """

    model = ProductImage
    form = ProductImageUploadForm
    formset = ProductImageUploadFormSet
    extra = 1
    max_num = 1
    can_delete = False
    verbose_name = "new picture"
    verbose_name_plural = "New picture"

    def get_queryset(self, request):
        return super().get_queryset(request).none()


@admin.register(ProductVideo)
class ProductVideoAdmin(admin.ModelAdmin):
    """Product videos, to look at and delete. Uploads go through the staff videos page
    (/staff/images/videos/), which checks the file and asks for its poster and preview."""

    list_display = ["__str__", "product", "duration", "width", "height", "size", "ready"]
    list_select_related = ["product"]
    search_fields = ["product__name"]
    date_hierarchy = "uploaded_at"
    readonly_fields = [field.name for field in ProductVideo._meta.fields]

    @admin.display(boolean=True)
    def ready(self, obj):
        return obj.ready

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

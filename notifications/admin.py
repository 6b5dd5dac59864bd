from django.contrib import admin, messages
from django.db.models import Count, Q

from notifications import services
from notifications.models import Delivery, Newsletter, Subscriber


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    list_display = ["email", "status", "created_at", "confirmed_at", "unsubscribed_at"]
    list_filter = ["status"]
    search_fields = ["email"]
    date_hierarchy = "created_at"
    actions = ["unsubscribe"]
    # Subscribing takes the owner's click on the emailed link (double opt-in); unsubscribing
    # someone who asked by other means is the action below.
    readonly_fields = [
        "status",
        "created_at",
        "confirmations_asked",
        "confirmation_asked_at",
        "confirmed_at",
        "unsubscribed_at",
    ]

    @admin.action(description="Unsubscribe the selected subscribers")
    def unsubscribe(self, request, queryset):
        done = sum(services.unsubscribe(subscriber) for subscriber in queryset)
        self.message_user(request, f"{done} subscriber(s) unsubscribed.", messages.SUCCESS)


@admin.register(Newsletter)
class NewsletterAdmin(admin.ModelAdmin):
    list_display = ["subject", "state", "recipients", "sent", "in_doubt", "created_at"]
    list_filter = ["state"]
    search_fields = ["subject", "body"]
    readonly_fields = [
        "state",
        "created_by",
        "created_at",
        "send_requested_by",
        "send_requested_at",
        "planned_at",
        "recipients",
        "chunks",
        "finished_at",
    ]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                sent_count=Count("deliveries", filter=Q(deliveries__state=Delivery.State.SENT)),
                unknown_count=Count(
                    "deliveries", filter=Q(deliveries__state=Delivery.State.UNKNOWN)
                ),
            )
        )

    @admin.display(description="sent", ordering="sent_count")
    def sent(self, obj):
        return obj.sent_count

    @admin.display(description="in doubt", ordering="unknown_count")
    def in_doubt(self, obj):
        return obj.unknown_count

    def get_readonly_fields(self, request, obj=None):
        # What was sent stays as it was sent; send and resend from the staff page.
        if obj is not None and obj.state != Newsletter.State.DRAFT:
            return [*self.readonly_fields, "subject", "body"]
        return self.readonly_fields


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["newsletter", "subscriber", "state", "chunk", "attempts", "finished_at"]
    list_filter = ["state", "newsletter"]
    search_fields = ["subscriber__email"]
    list_select_related = ["newsletter", "subscriber"]
    readonly_fields = [f.name for f in Delivery._meta.fields]

    # The record of what was sent: written by the workers only.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

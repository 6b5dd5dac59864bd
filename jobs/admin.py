from django.contrib import admin

from jobs.models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["key", "state", "attempts", "subject", "created_at", "finished_at"]
    list_filter = ["state", "kind"]
    search_fields = ["key", "subject", "task_id"]
    readonly_fields = [f.name for f in Job._meta.fields]

    def has_add_permission(self, request):
        return False

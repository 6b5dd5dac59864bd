from django.contrib import admin, messages
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from jobs import cancel, deadletters, staff_views
from jobs.models import Job, JobEvent


class JobEventInline(admin.TabularInline):
    """The job's timeline: every step it took, oldest first."""

    model = JobEvent
    fields = ["at", "kind", "attempt", "worker", "detail"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    inlines = [JobEventInline]
    list_display = ["key", "state", "attempts", "subject", "created_at", "finished_at"]
    list_filter = ["state", "kind"]
    search_fields = ["key", "subject", "task_id"]
    readonly_fields = [f.name for f in Job._meta.fields]
    change_list_template = "admin/jobs/job/change_list.html"
    change_form_template = "admin/jobs/job/change_form.html"
    actions = ["cancel_selected"]

    def has_add_permission(self, request):
        return False

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/cancel/", view(require_POST(self.cancel_one)), name="jobs_job_cancel"),
            path("dead-letters/", view(self.dead_letters), name="jobs_dead_letters"),
            path(
                "dead-letters/act/",
                view(require_POST(self.act_on_dead_letters)),
                name="jobs_dead_letters_act",
            ),
            *super().get_urls(),
        ]

    @admin.action(description="Cancel the selected jobs (jobs/cancel.py)")
    def cancel_selected(self, request, queryset):
        touched = cancel.cancel_many(queryset, by=request.user.get_username())
        messages.success(
            request,
            f"{touched} unfinished job(s) cancelled; a running one stops at its next stop point. "
            f"{queryset.count() - touched} had already finished and were left alone.",
        )

    def cancel_one(self, request, pk):
        staff_views.cancel_and_tell(request, pk)
        return redirect(reverse("admin:jobs_job_change", args=[pk]))

    def dead_letters(self, request):
        """Every dead-letter queue with its messages: why each died, and when."""
        sections = [
            {"queue": name, "depth": depth, "letters": deadletters.read(name) if depth else []}
            for name, depth in deadletters.depths().items()
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Dead letters",
            "sections": sections,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/jobs/dead_letters.html", context)

    def act_on_dead_letters(self, request):
        queue = request.POST.get("queue", "")
        action = request.POST.get("action")
        ids = None if request.POST.get("all") else request.POST.getlist("id")
        act = {"replay": deadletters.replay, "discard": deadletters.discard}.get(action)
        if act is None or queue not in deadletters.dead_letter_queues():
            messages.error(request, "Unknown action or queue.")
        else:
            done = act(queue, ids)
            messages.success(request, f"{done} message(s) of {queue}: {action} done.")
        return redirect(reverse("admin:jobs_dead_letters"))

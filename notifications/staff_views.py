"""Staff pages for newsletters: write one, send it, watch it go out.

The progress bar is the delivery rows counted (newsletters.progress_of): the page asks for
the small JSON of progress.json every second and moves the bar, as long as something is on
its way.
"""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from jobs.models import Job
from notifications import newsletters, services
from notifications.forms import NewsletterForm
from notifications.models import Newsletter, Subscriber
from notifications.tasks import plan_newsletter

RECENT_NEWSLETTERS = 20


@never_cache
@staff_member_required
@require_http_methods(["GET", "POST"])
def newsletter_list(request):
    """Write a new newsletter (a draft), and the newsletters of late."""
    form = NewsletterForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        newsletter = services.create_newsletter(**form.cleaned_data, created_by=request.user)
        messages.success(request, "Draft saved. Read it through, then send it.")
        return redirect(newsletter)
    context = {
        "form": form,
        "newsletters": Newsletter.objects.all()[:RECENT_NEWSLETTERS],
        "confirmed": Subscriber.objects.filter(status=Subscriber.Status.CONFIRMED).count(),
    }
    return render(request, "notifications/newsletters/list.html", context)


@never_cache
@staff_member_required
@require_safe
def newsletter_detail(request, pk):
    newsletter = get_object_or_404(Newsletter, pk=pk)
    context = {
        "newsletter": newsletter,
        "progress": newsletters.progress_of(newsletter.pk),
        "confirmed": Subscriber.objects.filter(status=Subscriber.Status.CONFIRMED).count(),
        "planner": Job.objects.filter(key=plan_newsletter.job_key(newsletter.pk)).first(),
        "failed_chunks": newsletters.chunk_jobs(newsletter.pk).filter(state=Job.State.FAILED),
    }
    return render(request, "notifications/newsletters/detail.html", context)


@never_cache
@staff_member_required
@require_safe
def newsletter_progress(request, pk):
    """What the progress bar polls: the counts, and whether to keep polling."""
    newsletter = get_object_or_404(Newsletter, pk=pk)
    progress = newsletters.progress_of(newsletter.pk)
    return JsonResponse(
        {"state": newsletter.state, "active": newsletter.is_active, **progress.as_dict()}
    )


@staff_member_required
@require_POST
def newsletter_send(request, pk):
    newsletter = get_object_or_404(Newsletter, pk=pk)
    if services.send_newsletter(newsletter, requested_by=request.user):
        messages.success(request, "On its way: the progress bar below follows it.")
    else:
        messages.info(request, "This newsletter was sent already: nothing new was sent.")
    return redirect(newsletter)


@staff_member_required
@require_POST
def newsletter_cancel(request, pk):
    newsletter = get_object_or_404(Newsletter, pk=pk)
    was_active = newsletter.is_active
    left = services.cancel_newsletter(newsletter, cancelled_by=request.user)
    if was_active:
        messages.success(request, f"Cancelled: {left} recipient(s) still waiting will not get it.")
    else:
        messages.info(request, "This newsletter is not on its way: there was nothing to cancel.")
    return redirect(newsletter)


@staff_member_required
@require_POST
def newsletter_resend_in_doubt(request, pk):
    newsletter = get_object_or_404(Newsletter, pk=pk)
    count = services.resend_in_doubt(newsletter)
    if count:
        messages.success(request, f"Sending it again to {count} recipient(s) in doubt.")
    else:
        messages.info(request, "No recipient is in doubt: nothing was sent again.")
    return redirect(newsletter)

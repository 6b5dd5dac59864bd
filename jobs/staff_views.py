"""The staff jobs pages: find jobs by filter, look at one, cancel it, retry it now, and replay
or discard many after a preview. Thin views: reads in jobs/selectors.py, writes in
jobs/bulk.py and jobs/cancel.py."""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from jobs import bulk, cancel, selectors
from jobs.models import Job


@never_cache
@staff_member_required
@require_safe
def job_list(request):
    """/staff/jobs/: the jobs a filter shows, newest first; with ?preview=replay|discard, what
    a bulk action on them would do, and the button that does it."""
    form = selectors.JobFilter(request.GET)
    if not form.is_valid():
        context = {"form": form, "page": None}
        return render(request, "jobs/job_list.html", context, status=400)
    jobs = form.jobs()
    count, more = selectors.count_capped(jobs)
    action = request.GET.get("preview")
    context = {
        "form": form,
        "page": selectors.page_of(jobs, form.cleaned_data["before"]),
        "count": count,
        "more": more,
        "count_cap": selectors.COUNT_CAP,
        "query": form.as_query(),
        "preview": bulk.preview(jobs, action) if action in bulk.ACTIONS else None,
    }
    return render(request, "jobs/job_list.html", context)


@staff_member_required
@require_POST
def job_bulk(request):
    """The confirm step of a bulk action: the same filter again, at most what was previewed."""
    form = selectors.JobFilter(request.POST)
    action = request.POST.get("action")
    try:
        up_to_pk = int(request.POST.get("up_to_pk", ""))
        limit = int(request.POST.get("expected", ""))
    except ValueError:
        up_to_pk = limit = None
    if not form.is_valid() or action not in bulk.ACTIONS or up_to_pk is None or limit is None:
        messages.error(request, "That bulk action was not understood: preview it again.")
        return redirect(reverse("jobs:job_list") + "?" + form.as_query())
    act = bulk.replay if action == "replay" else bulk.discard
    done = act(form.jobs(), up_to_pk=up_to_pk, limit=limit, by=request.user.get_username())
    messages.success(request, done.summary())
    return redirect(reverse("jobs:job_list") + "?" + form.as_query())


@never_cache
@staff_member_required
@require_safe
def job_detail(request, pk):
    """/staff/jobs/<pk>/: a job's fields, its timeline and the lines it logged."""
    job = get_object_or_404(Job, pk=pk)
    context = {
        "detail": selectors.job_detail(job),
        "job": job,
        "can_retry": job.state in (Job.State.FAILED, Job.State.RETRYING),
    }
    return render(request, "jobs/job_detail.html", context)


@staff_member_required
@require_POST
def job_cancel(request, pk):
    job = get_object_or_404(Job, pk=pk)
    cancel_and_tell(request, job.pk)
    return redirect("jobs:job_detail", pk=job.pk)


def cancel_and_tell(request, job_pk):
    """Cancel a job for the staff member asking, and tell them what became of it (this page
    and the admin's)."""
    state = cancel.cancel(job_pk, by=request.user.get_username())
    if state == Job.State.CANCELLED:
        messages.success(request, "Cancelled: no worker will run it.")
    elif state == Job.State.STARTED:
        messages.success(request, "Cancel asked: it stops at its next stop point.")
    else:
        messages.info(request, f"It had already finished ({state}): nothing to cancel.")


@staff_member_required
@require_POST
def job_retry(request, pk):
    job = get_object_or_404(Job, pk=pk)
    messages.success(request, bulk.retry_now(job.pk, by=request.user.get_username()))
    return redirect("jobs:job_detail", pk=job.pk)

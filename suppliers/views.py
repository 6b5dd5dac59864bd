"""Staff pages of the supplier feeds: runs with their figures and reasons, "fetch now".

Views stay thin: they read through selectors.py and write only through services.py, which asks
for the job itself.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from suppliers import selectors, services, site
from suppliers.forms import SiteControlsForm
from suppliers.models import FetchRun, Supplier


@staff_member_required
@never_cache
@require_safe
def suppliers(request):
    return render_suppliers(request)


def render_suppliers(request, site_form=None):
    runs = selectors.recent_runs()
    context = {
        "suppliers": selectors.suppliers_with_listing_counts(),
        "runs": runs,
        "changes": selectors.recent_changes(),
        "refresh": site_form is None and selectors.any_active(runs),
    }
    if settings.DEBUG:
        controls = site.read_controls(settings.SUPPLIER_SITE_CONTROL)
        context["site_controls"] = controls
        context["site_form"] = site_form or SiteControlsForm(initial=controls)
    return render(request, "suppliers/suppliers.html", context)


@staff_member_required
@require_POST
def fetch_now(request, supplier_id):
    supplier = get_object_or_404(Supplier, pk=supplier_id)
    run, reused = services.request_fetch(supplier, requested_by=request.user)
    if reused:
        messages.info(request, f"A fetch of {supplier} is already on its way: here it is.")
    else:
        messages.success(request, f"Fetching the prices of {supplier}.")
    return redirect(run)


@staff_member_required
@never_cache
@require_safe
def run_detail(request, pk):
    run = get_object_or_404(
        FetchRun.objects.select_related("supplier", "job", "requested_by"), pk=pk
    )
    context = {
        "run": run,
        "job": run.job,
        "pages": run.pages.all(),
        "changes": run.changes.select_related("product"),
        "refresh": selectors.any_active([run]),
    }
    return render(request, "suppliers/run.html", context)


@staff_member_required
@require_POST
def site_controls(request):
    """Turn the local supplier site's knobs (demo only, like /staff/demo/)."""
    if not settings.DEBUG:
        raise Http404("The local supplier site is part of the demo only.")
    form = SiteControlsForm(request.POST)
    if not form.is_valid():
        return render_suppliers(request, site_form=form)
    site.update_controls(settings.SUPPLIER_SITE_CONTROL, **form.cleaned_data)
    messages.success(request, "The local supplier site uses the new settings from its next page.")
    return redirect("suppliers:suppliers")

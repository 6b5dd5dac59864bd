"""Staff pages of the supplier feeds: runs with their figures and reasons, "fetch now".

Views stay thin: they read through selectors.py and write only through services.py, which asks
for the job itself.
"""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from suppliers import selectors, services
from suppliers.models import FetchRun, Supplier


@staff_member_required
@never_cache
@require_safe
def suppliers(request):
    return render_suppliers(request)


def render_suppliers(request):
    runs = selectors.recent_runs()
    context = {
        "suppliers": selectors.suppliers_with_listing_counts(),
        "runs": runs,
        "changes": selectors.recent_changes(),
        "refresh": selectors.any_active(runs),
    }
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

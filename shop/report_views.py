"""Staff pages for sales reports: ask for one, watch it being built, download it, look at it.

Views stay thin, as elsewhere: the form checks the dates, shop/services.py asks for the report,
and the report's row says how far it has got (the job writes its progress there).
"""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe

from jobs.models import Job
from shop import report_charts, reports, services
from shop.forms import SalesReportForm
from shop.models import SalesReport
from shop.tasks import build_sales_report

RECENT_REPORTS = 20


@never_cache
@staff_member_required
@require_http_methods(["GET", "POST"])
def report_list(request):
    """The form that asks for a report, and the reports asked for lately."""
    form = SalesReportForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        report, reused = services.request_sales_report(
            form.cleaned_data["date_from"], form.cleaned_data["date_to"], requested_by=request.user
        )
        if reused:
            messages.info(request, "A report of these dates is already on its way: here it is.")
        else:
            messages.success(request, "Your report is queued.")
        return redirect(report)
    recent = SalesReport.objects.select_related("requested_by")[:RECENT_REPORTS]
    return render(request, "shop/reports/list.html", {"form": form, "reports": recent})


@never_cache
@staff_member_required
@require_safe
def report_detail(request, pk):
    """One report: its progress bar while it is built, then its figures, chart and file."""
    report = get_object_or_404(SalesReport.objects.select_related("requested_by"), pk=pk)
    context = {"report": report, "job": job_of(report), "refresh": report.is_active}
    if report.is_done:
        context["chart"] = report_charts.revenue_chart_svg(report.revenue_per_day)
        context["best_day"] = report_charts.best_day(report.revenue_per_day)
        if report.order_count:
            context["average_order"] = (report.revenue / report.order_count).quantize(reports.CENT)
    return render(request, "shop/reports/detail.html", context)


@staff_member_required
@require_safe
def report_download(request, pk):
    """The report's CSV, streamed from the storage, for staff only."""
    report = get_object_or_404(SalesReport, pk=pk, state=SalesReport.State.DONE)
    if not report.csv_file:
        raise Http404("This report has no file.")
    try:
        csv_file = report.csv_file.open("rb")
    except FileNotFoundError:
        raise Http404("This report's file is gone from the storage.") from None
    return FileResponse(
        csv_file,
        as_attachment=True,
        filename=report.download_name,
        content_type="text/csv; charset=utf-8",
    )


def job_of(report):
    """The background job building `report` (None if it has not been asked for yet)."""
    return Job.objects.filter(key=build_sales_report.job_key(report.pk)).first()

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from jobs import dashboard as dashboard_data
from jobs import health
from jobs import metrics as job_metrics


def _answer(*checks):
    results = [check() for check in checks]
    down = [detail for ok, detail in results if not ok]
    body = {"status": "down" if down else "ok", "checks": [detail for _, detail in results]}
    if down:
        body["down"] = down
    return JsonResponse(body, status=503 if down else 200)


@never_cache
def healthz(request):
    """The web process and its database: for the load balancer."""
    return _answer(health.database)


@never_cache
def healthz_broker(request):
    return _answer(health.broker)


# These two open one connection to RabbitMQ, not two: each check says itself when the
# broker does not answer.
@never_cache
def healthz_workers(request):
    return _answer(health.workers)


@never_cache
def healthz_consumers(request):
    return _answer(health.event_consumers)


# --- Staff pages: the operations dashboard ---------------------------------------------------


@never_cache
@staff_member_required
@require_safe
def dashboard(request):
    """The operations dashboard. With `?partial=1`, its panels alone: what the page's script
    fetches every 5 s to swap in place, instead of reloading the page."""
    queues = dashboard_data.queue_rows()
    context = {
        "queues": queues,
        "workers": dashboard_data.workers(expected=dashboard_data.consumers_on_work_queues(queues)),
        # Built from counts and times only: nothing a user typed reaches the SVG.
        "chart": mark_safe(dashboard_data.bars_svg(dashboard_data.throughput())),
        "bucket_minutes": dashboard_data.BUCKET_MINUTES,
        "colours": {
            "succeeded": dashboard_data.SUCCEEDED_COLOUR,
            "failed": dashboard_data.FAILED_COLOUR,
        },
        "as_of": timezone.now(),
    }
    partial = request.GET.get("partial") == "1"  # any other value: the whole page
    template = "jobs/dashboard_panels.html" if partial else "jobs/dashboard.html"
    return render(request, template, context)


# --- Prometheus ------------------------------------------------------------------------------


@never_cache
@require_safe
def metrics(request):
    """What Prometheus scrapes (jobs/metrics.py). With DEBUG off it answers only the bearer of
    METRICS_TOKEN: queue names and failure counts are for the operators."""
    if not job_metrics.may_read(request):
        return HttpResponse("send Authorization: Bearer <METRICS_TOKEN>\n", status=401)
    return HttpResponse(job_metrics.render(), content_type=CONTENT_TYPE_LATEST)

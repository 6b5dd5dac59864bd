from celery import current_app
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from jobs import conf, health, history, pause, topology
from jobs import dashboard as dashboard_data
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
    """A consumer on every work queue, and every queue with a job waiting taking work."""
    return _answer(health.workers, health.progress)


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
            "wait_p50": dashboard_data.WAIT_P50_COLOUR,
            "wait_p95": dashboard_data.WAIT_P95_COLOUR,
        },
        "as_of": timezone.now(),
    }
    if request.GET.get("partial") == "1":  # any other value: the whole page
        return render(request, "jobs/dashboard_panels.html", context)
    # The day's history is read once per page, not every 5 s: it changes by the hour.
    day = history.last_day(topology.work_queue_names(current_app))
    context["history"] = None if day is None else [
        (queue, mark_safe(finished), mark_safe(wait))  # numbers only, like the chart above
        for queue, finished, wait in dashboard_data.history_charts(day)
    ]  # fmt: skip
    context["prometheus_url"] = conf.PROMETHEUS_URL
    return render(request, "jobs/dashboard.html", context)


@staff_member_required
@require_POST
def queue_pause(request, queue):
    """Pause a work queue (jobs/pause.py): its workers stop taking its messages."""
    return _act_on_queue(request, queue, pause.pause, "paused: its messages wait in RabbitMQ")


@staff_member_required
@require_POST
def queue_resume(request, queue):
    return _act_on_queue(request, queue, pause.resume, "resumed: its workers take them again")


def _act_on_queue(request, queue, act, done):
    try:
        act(current_app, queue, by=request.user.get_username())
    except pause.UnknownQueue as exc:
        raise Http404(str(exc)) from exc
    messages.success(request, f"Queue {queue} {done}.")
    return redirect("jobs:dashboard")


# --- Prometheus ------------------------------------------------------------------------------


@never_cache
@require_safe
def metrics(request):
    """What Prometheus scrapes (jobs/metrics.py). With DEBUG off it answers only the bearer of
    METRICS_TOKEN: queue names and failure counts are for the operators."""
    if not job_metrics.may_read(request):
        return HttpResponse("send Authorization: Bearer <METRICS_TOKEN>\n", status=401)
    return HttpResponse(job_metrics.render(), content_type=CONTENT_TYPE_LATEST)

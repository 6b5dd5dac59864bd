from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe

from jobs import dashboard as dashboard_data
from jobs import demo, health
from jobs.forms import FloodForm, SinkControlsForm
from notifications.sink import read_controls, update_controls


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


@never_cache
def healthz_workers(request):
    return _answer(health.broker, health.workers)


@never_cache
def healthz_consumers(request):
    return _answer(health.broker, health.event_consumers)


# --- Staff pages: the operations dashboard and the demo's controls --------------------------


@staff_member_required
@require_safe
def dashboard(request):
    context = {
        "queues": dashboard_data.queue_rows(),
        "workers": dashboard_data.workers(),
        # Built from counts and times only: nothing a user typed reaches the SVG.
        "chart": mark_safe(dashboard_data.bars_svg(dashboard_data.throughput())),
        "bucket_minutes": dashboard_data.BUCKET_MINUTES,
    }
    return render(request, "jobs/dashboard.html", context)


def demo_only(view):
    """Demo controls exist only in the demo: 404 when DEBUG is off."""

    def wrapper(request, *args, **kwargs):
        if not settings.DEBUG:
            raise Http404("demo controls are off")
        return view(request, *args, **kwargs)

    return wrapper


@staff_member_required
@demo_only
@require_http_methods(["GET", "POST"])
def demo_controls(request):
    controls = read_controls(settings.SMTP_SINK_CONTROL)
    sink_form = SinkControlsForm(initial=controls)
    flood_form = FloodForm()
    action = request.POST.get("action")
    if action == "sink":
        sink_form = SinkControlsForm(request.POST)
        if sink_form.is_valid():
            update_controls(settings.SMTP_SINK_CONTROL, **sink_form.cleaned_data)
            messages.success(request, "The SMTP sink uses the new settings from its next message.")
            return redirect("jobs:demo_controls")
    elif action == "flood":
        flood_form = FloodForm(request.POST)
        if flood_form.is_valid():
            count = demo.flood(**flood_form.cleaned_data)
            messages.success(request, f"{count} low-priority filler jobs queued on emails.")
            return redirect("jobs:demo_controls")
    elif action == "poison":
        demo.poison()
        messages.success(request, "A poison pill is on its way to the maintenance worker.")
        return redirect("jobs:demo_controls")
    context = {"controls": controls, "sink_form": sink_form, "flood_form": flood_form}
    return render(request, "jobs/demo_controls.html", context)

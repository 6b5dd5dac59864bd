"""The demo's pages: the mailbox (what the local SMTP sink received) and the knobs of the
stand-ins. They exist only under DEBUG: mail holds customers' names and addresses, and the
knobs break things on purpose."""

from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from demo import controls, supplier_site
from demo.forms import FloodForm, SinkControlsForm, SiteControlsForm
from demo.maildir import get_message, list_messages, message_keys
from demo.smtp_sink import read_controls, update_controls

# The newest messages only: a demo newsletter alone puts 10,000 in the mailbox.
OUTBOX_PAGE_SIZE = 200


def debug_only(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not settings.DEBUG:
            raise Http404("The demo's pages only exist when DEBUG is on.")
        return view(request, *args, **kwargs)

    return wrapper


@debug_only
def mailbox(request):
    # Not "messages": base.html uses that name for django.contrib.messages.
    context = {
        "mails": list_messages(settings.SMTP_SINK_DIR, limit=OUTBOX_PAGE_SIZE),
        "total": len(message_keys(settings.SMTP_SINK_DIR)),
        "maildir": settings.SMTP_SINK_DIR,
    }
    return render(request, "demo/mailbox.html", context)


@debug_only
def mailbox_message(request, key):
    mail = get_message(settings.SMTP_SINK_DIR, key)
    if mail is None:
        raise Http404("No such message in the mailbox.")
    return render(request, "demo/mailbox_message.html", {"mail": mail})


@staff_member_required
@debug_only
@require_http_methods(["GET", "POST"])
def demo_controls(request):
    sink = read_controls(settings.SMTP_SINK_CONTROL)
    sink_form = SinkControlsForm(initial=sink)
    flood_form = FloodForm()
    action = request.POST.get("action")
    if action == "sink":
        sink_form = SinkControlsForm(request.POST)
        if sink_form.is_valid():
            update_controls(settings.SMTP_SINK_CONTROL, **sink_form.cleaned_data)
            messages.success(request, "The SMTP sink uses the new settings from its next message.")
            return redirect("demo:demo_controls")
    elif action == "flood":
        flood_form = FloodForm(request.POST)
        if flood_form.is_valid():
            count = controls.flood(**flood_form.cleaned_data)
            messages.success(request, f"{count} low-priority filler jobs queued on emails.")
            return redirect("demo:demo_controls")
    elif action == "poison":
        controls.poison()
        messages.success(request, "A poison pill is on its way to the maintenance worker.")
        return redirect("demo:demo_controls")
    context = {"controls": sink, "sink_form": sink_form, "flood_form": flood_form}
    return render(request, "demo/demo_controls.html", context)


@staff_member_required
@debug_only
@require_POST
def site_controls(request):
    """Turn the local supplier site's knobs, from the staff suppliers page."""
    form = SiteControlsForm(request.POST)
    if form.is_valid():
        supplier_site.update_controls(settings.SUPPLIER_SITE_CONTROL, **form.cleaned_data)
        messages.success(
            request, "The local supplier site uses the new settings from its next page."
        )
    else:
        problems = "; ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items())
        messages.error(request, f"The supplier site's knobs were not changed: {problems}")
    return redirect("suppliers:suppliers")

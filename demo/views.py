"""The outbox: what the local SMTP sink received, for developers. It only exists under DEBUG."""

from functools import wraps

from django.conf import settings
from django.http import Http404
from django.shortcuts import render

from notifications.outbox import get_message, list_messages, message_keys

# The newest messages only: a demo newsletter alone puts 10,000 in the outbox.
OUTBOX_PAGE_SIZE = 200


def debug_only(view):
    # Mail holds customers' names and addresses: never serve it from a real deployment.
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not settings.DEBUG:
            raise Http404("The outbox only exists when DEBUG is on.")
        return view(request, *args, **kwargs)

    return wrapper


@debug_only
def outbox(request):
    # Not "messages": base.html uses that name for django.contrib.messages.
    context = {
        "mails": list_messages(settings.SMTP_SINK_DIR, limit=OUTBOX_PAGE_SIZE),
        "total": len(message_keys(settings.SMTP_SINK_DIR)),
        "maildir": settings.SMTP_SINK_DIR,
    }
    return render(request, "notifications/outbox.html", context)


@debug_only
def outbox_message(request, key):
    mail = get_message(settings.SMTP_SINK_DIR, key)
    if mail is None:
        raise Http404("No such message in the outbox.")
    return render(request, "notifications/outbox_message.html", {"mail": mail})

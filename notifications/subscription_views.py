"""The public newsletter pages: subscribe, confirm (double opt-in), unsubscribe.

No login anywhere: the signed links in the emails are the keys (notifications/tokens.py). A
link that was changed, or made up, gets a page saying so with status 400, never a 500.
"""

from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe

from notifications import services, tokens
from notifications.forms import SubscribeForm
from notifications.models import Subscriber
from notifications.services import Confirmation


@never_cache
@require_http_methods(["GET", "POST"])
def subscribe(request):
    form = SubscribeForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        services.subscribe(form.cleaned_data["email"])
        return redirect("subscriptions:check_inbox")
    return render(request, "notifications/subscriptions/subscribe.html", {"form": form})


@require_safe
def check_inbox(request):
    # The same page whatever the address's state: it tells a stranger nothing.
    return render(request, "notifications/subscriptions/check_inbox.html")


def bad_link(request, expired=False):
    return render(
        request, "notifications/subscriptions/bad_link.html", {"expired": expired}, status=400
    )


@never_cache
@require_safe
def confirm(request, token):
    # Confirming on GET, by following the link, is what double opt-in means; unlike an
    # unsubscribe, a confirmation made by a mail scanner that follows links can be undone with
    # the unsubscribe link of the first newsletter.
    try:
        outcome, subscriber = services.confirm(token)
    except tokens.ExpiredLink:
        return bad_link(request, expired=True)
    except (tokens.BadLink, Subscriber.DoesNotExist):
        return bad_link(request)
    context = {
        "subscriber": subscriber,
        "confirmed": outcome is not Confirmation.UNSUBSCRIBED,
        "already": outcome is Confirmation.ALREADY,
    }
    return render(request, "notifications/subscriptions/confirmed.html", context)


@never_cache
@csrf_exempt  # the signed link is the credential; mail clients POST here with no cookie at all
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    """GET: a page with one button; POST (that button, or a mail client's one-click
    unsubscribe, RFC 8058): unsubscribed.

    A GET never unsubscribes: mail scanners and link previews follow every link in an email,
    and would unsubscribe people who never asked to.
    """
    try:
        subscriber = services.subscriber_of_unsubscribe_link(token)
    except (tokens.BadLink, Subscriber.DoesNotExist):
        return bad_link(request)
    if request.method == "POST":
        services.unsubscribe(subscriber)
        return render(
            request, "notifications/subscriptions/unsubscribed.html", {"subscriber": subscriber}
        )
    context = {
        "subscriber": subscriber,
        "already": subscriber.status == Subscriber.Status.UNSUBSCRIBED,
    }
    return render(request, "notifications/subscriptions/unsubscribe.html", context)

from django.conf import settings

from shop.cart import Cart


def site(request):
    return {"cart_count": Cart(request.session).count(), "show_outbox": settings.DEBUG}

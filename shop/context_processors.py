from shop.cart import Cart


def site(request):
    return {"cart_count": Cart(request.session).count()}

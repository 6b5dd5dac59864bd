from shop.cart import Cart


def cart(request):
    return {"cart_count": Cart(request.session).count()}

"""The pages a customer clicks through.

Views stay thin: they read with the ORM or shop/selectors.py, check input with shop/forms.py,
and write only through shop/services.py (which asks for background work itself). Nothing here
talks to Celery or the broker.
"""

from datetime import timedelta
from decimal import Decimal

from django.contrib import messages
from django.http import HttpResponsePermanentRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from media_jobs.selectors import attach_pictures
from shop import selectors, services
from shop.cart import Cart, CartError
from shop.forms import AddToCartForm, CheckoutForm, UpdateQuantityForm
from shop.models import Order, Product
from shop.templatetags.money import money


def _active_product(product_id):
    return get_object_or_404(Product, pk=product_id, is_active=True)


def _total(items):
    return sum((product.price * quantity for product, quantity in items), Decimal("0.00"))


def _form_error(form):
    """The first error of a quantity form, as one sentence for a message box."""
    for errors in form.errors.values():
        return errors[0]
    return "Please check your input."


@require_safe
def catalog(request):
    products = attach_pictures(Product.objects.filter(is_active=True))
    return render(request, "shop/catalog.html", {"products": products})


@require_safe
def product(request, slug):
    product = get_object_or_404(Product, slug=slug, is_active=True)
    return render(request, "shop/product.html", _product_context(request, product))


def _product_context(request, product, form=None):
    return {
        "product": product,
        "form": form or AddToCartForm(),
        "in_cart": Cart(request.session).quantity_of(product),
    }


@require_POST
def cart_add(request, product_id):
    product = _active_product(product_id)
    form = AddToCartForm(request.POST)
    if not form.is_valid():
        return render(request, "shop/product.html", _product_context(request, product, form))
    quantity = form.cleaned_data["quantity"]
    try:
        Cart(request.session).add(product, quantity)
    except CartError as exc:
        messages.error(request, str(exc))
        return redirect(product)
    messages.success(request, f"Added {quantity} x {product.name} to your cart.")
    return redirect("shop:cart")


@never_cache
@require_safe
def cart_detail(request):
    cart = Cart(request.session)
    items = cart.items()
    tell_about_price_changes(request, cart, items)
    attach_pictures(product for product, _ in items)
    lines = [
        {
            "product": product,
            "quantity": quantity,
            "subtotal": product.price * quantity,
            "form": UpdateQuantityForm(
                initial={"quantity": quantity}, auto_id=f"id_line{product.pk}_%s"
            ),
        }
        for product, quantity in items
    ]
    return render(request, "shop/cart.html", {"lines": lines, "total": _total(items)})


def tell_about_price_changes(request, cart, items):
    """A message for each line whose price changed since the customer last saw it; then the
    new prices count as seen."""
    for product, seen, now in cart.price_changes(items):
        direction = "went up" if now > seen else "went down"
        messages.warning(
            request,
            f"The price of {product.name} {direction} from {money(seen)} to {money(now)} "
            "since you added it.",
        )
    cart.mark_seen(items)


@require_POST
def cart_update(request, product_id):
    product = _active_product(product_id)
    form = UpdateQuantityForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"{product.name}: {_form_error(form)}")
        return redirect("shop:cart")
    try:
        Cart(request.session).set(product, form.cleaned_data["quantity"])
    except CartError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{product.name}: quantity updated.")
    return redirect("shop:cart")


@require_POST
def cart_remove(request, product_id):
    product = _active_product(product_id)
    Cart(request.session).remove(product)
    messages.success(request, f"Removed {product.name} from your cart.")
    return redirect("shop:cart")


@never_cache
@require_http_methods(["GET", "POST"])
def checkout(request):
    cart = Cart(request.session)
    items = cart.items()
    if not items:
        messages.info(request, "Your cart is empty: add something before checking out.")
        return redirect("shop:cart")

    if request.method == "POST" and cart.price_changes(items):
        # Never charge a price the customer has not seen: show the new ones, let them decide.
        tell_about_price_changes(request, cart, items)
        return redirect("shop:checkout")
    if request.method == "GET":
        tell_about_price_changes(request, cart, items)

    form = CheckoutForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            order = services.place_order(
                customer_name=form.cleaned_data["customer_name"],
                email=form.cleaned_data["email"],
                shipping_address=form.cleaned_data["shipping_address"],
                items=items,
            )
        except services.EmptyCartError:
            messages.info(request, "Your cart is empty: add something before checking out.")
            return redirect("shop:cart")
        cart.clear()
        messages.success(request, f"Thank you! Your order #{order.pk} is placed.")
        return redirect(order)

    context = {
        "form": form,
        "lines": [(p, q, p.price * q) for p, q in items],
        "total": _total(items),
    }
    return render(request, "shop/checkout.html", context)


@never_cache
@require_safe
def order_status(request, token):
    # The token is the only key to an order's page: never look an order up by its number.
    order = get_object_or_404(Order.objects.prefetch_related("lines"), token=token)
    jobs = selectors.jobs_for(order)
    waiting_for_jobs = any(not job.is_final for job in jobs)
    context = {
        "order": order,
        "lines": list(order.lines.all()),
        "jobs": jobs,
        "waiting_for_jobs": waiting_for_jobs,
        "refresh": refresh_seconds(order, waiting_for_jobs),
    }
    return render(request, "shop/order_status.html", context)


# The order page reloads itself while something is on its way: quickly while a job runs, more
# slowly while a fresh order waits for the warehouse, whose dispatch starts the shipping email.
JOB_REFRESH_SECONDS = 2
SHIPMENT_REFRESH_SECONDS = 10
SHIPMENT_WATCH = timedelta(hours=1)


def refresh_seconds(order, waiting_for_jobs):
    """How often the order page reloads itself, or None when nothing more is coming."""
    if waiting_for_jobs:
        return JOB_REFRESH_SECONDS
    if order.status == Order.Status.PLACED and timezone.now() - order.created_at < SHIPMENT_WATCH:
        return SHIPMENT_REFRESH_SECONDS
    return None


@require_safe
def favicon(request):
    # The file's name is looked up when asked for: in production it carries the hash
    # collectstatic gave it.
    return HttpResponsePermanentRedirect(static("shop/favicon.svg"))

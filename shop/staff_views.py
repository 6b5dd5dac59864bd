"""Staff pages of the shop: the orders waiting to be shipped."""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe

from shop import selectors, services
from shop.forms import ShipOrderForm
from shop.models import Order


@staff_member_required
@require_safe
def orders_to_ship(request):
    page = Paginator(Order.objects.prefetch_related("lines"), 25).get_page(request.GET.get("page"))
    rows = [
        {
            "order": order,
            "form": ShipOrderForm(auto_id=f"id_ship{order.pk}_%s"),
            "jobs": selectors.jobs_for(order),
        }
        for order in page
    ]
    return render(request, "shop/staff/orders.html", {"page": page, "rows": rows})


@staff_member_required
@require_POST
def ship_order(request, pk):
    order = get_object_or_404(Order, pk=pk)
    form = ShipOrderForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"Order #{order.pk}, {field.replace('_', ' ')}: {errors[0]}")
    elif services.ship_order(order, **form.cleaned_data):
        messages.success(request, f"Order #{order.pk} is shipped; its shipping email is queued.")
    else:
        messages.info(request, f"Order #{order.pk} had already been shipped.")
    return redirect("shop:orders_to_ship")

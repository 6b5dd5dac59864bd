"""The demo's supplier: the local supplier site (site.py) selling the demo catalog.

`demo_products()` is what the site sells when its control file has no products yet;
`seed_demo_supplier()` (called by seed_demo) follows those pages for the shop's products. Both
come from the shop's demo catalog, so every demo product has a page. The supplier's prices
differ from the shop's seeded ones here and there, so the first fetch has changes to show.
"""

from decimal import Decimal

from django.conf import settings
from django.utils.text import slugify

from suppliers.models import Supplier, SupplierListing

DEMO_SUPPLIER_NAME = "Demo Supplier (local site)"


def demo_products():
    """{sku: {"name", "price", "stock"}} for the local supplier site, from the demo catalog."""
    # Imported here: seed_demo imports this module, and this module needs its catalog.
    from demo.catalog import CATALOG

    products = {}
    for index, (name, _description, price) in enumerate(CATALOG):
        price = Decimal(price)
        if index % 3 == 0:
            price = (price * Decimal("1.05")).quantize(Decimal("0.01"))
        stock = (index * 7) % 23  # a few at zero: "Out of stock"
        products[slugify(name)] = {"name": name, "price": str(price), "stock": stock}
    return products


def seed_demo_supplier(products):
    """The demo supplier, following the page of each of `products` its site sells.

    Idempotent, like seed_demo: run again, it changes nothing. Returns the supplier.
    """
    supplier, _ = Supplier.objects.update_or_create(
        name=DEMO_SUPPLIER_NAME, defaults={"base_url": settings.SUPPLIER_SITE_URL}
    )
    sold = demo_products()
    for product in products:
        if product.slug in sold:
            SupplierListing.objects.get_or_create(
                supplier=supplier, product=product, defaults={"path": f"/products/{product.slug}"}
            )
    return supplier

"""The shopping cart: {product_id: quantity} in the session, nothing in the database.

The session is JSON, so the ids are kept as strings. Whatever is read back is checked again
(a product may have been deleted or hidden since it was added, a session may hold junk from an
older version): only active products with a quantity in 1..MAX_QUANTITY ever come out.

Prices are the catalog's, and they change under a cart (a supplier feed, staff): the cart also
keeps the price the customer last saw for each line, so that a change is shown to them before
they pay it, never applied silently (`price_changes`, `mark_seen`).
"""

from decimal import Decimal, InvalidOperation

from shop.models import MAX_QUANTITY, Product

SESSION_KEY = "cart"
SEEN_PRICES_KEY = "cart_seen_prices"


class CartError(ValueError):
    """A change the cart refuses; the message is meant for the customer."""


def _valid_quantity(value):
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_QUANTITY


class Cart:
    def __init__(self, session):
        self.session = session

    # --- reading ----------------------------------------------------------------------------

    def _lines(self):
        """The stored lines as {product_id: quantity}, without anything malformed."""
        raw = self.session.get(SESSION_KEY)
        if not isinstance(raw, dict):
            return {}
        lines = {}
        for key, quantity in raw.items():
            try:
                product_id = int(key)
            except (TypeError, ValueError):
                continue
            if _valid_quantity(quantity):
                lines[product_id] = quantity
        return lines

    def quantity_of(self, product):
        return self._lines().get(product.pk, 0)

    def items(self):
        """[(product, quantity), ...] in the order they were added, active products only."""
        lines = self._lines()
        if not lines:
            return []
        products = Product.objects.filter(pk__in=lines, is_active=True).in_bulk()
        if len(products) != len(lines):
            # Forget what can no longer be bought, so that count() agrees with the page.
            self._save({pk: qty for pk, qty in lines.items() if pk in products})
        return [(products[pk], qty) for pk, qty in lines.items() if pk in products]

    def price_changes(self, items=None):
        """[(product, price the customer last saw, price now)] for lines whose price changed."""
        seen = self._seen_prices()
        return [
            (product, seen[product.pk], product.price)
            for product, _ in (self.items() if items is None else items)
            if product.pk in seen and seen[product.pk] != product.price
        ]

    def mark_seen(self, items=None):
        """The customer has been shown these lines' current prices."""
        items = self.items() if items is None else items
        self.session[SEEN_PRICES_KEY] = {str(p.pk): str(p.price) for p, _ in items}

    def _seen_prices(self):
        raw = self.session.get(SEEN_PRICES_KEY)
        seen = {}
        for key, price in (raw if isinstance(raw, dict) else {}).items():
            try:
                seen[int(key)] = Decimal(price)
            except (TypeError, ValueError, InvalidOperation):
                continue
        return seen

    def count(self):
        """How many items the cart holds, all lines together."""
        return sum(self._lines().values())

    def total(self):
        return sum((product.price * qty for product, qty in self.items()), Decimal("0.00"))

    def __len__(self):
        return self.count()

    # --- writing ----------------------------------------------------------------------------

    def add(self, product, quantity=1):
        """Add `quantity` of `product`; a line never holds more than MAX_QUANTITY."""
        self._check(quantity)
        lines = self._lines()
        new_quantity = lines.get(product.pk, 0) + quantity
        if new_quantity > MAX_QUANTITY:
            raise CartError(
                f"You can have at most {MAX_QUANTITY} of {product.name} in your cart "
                f"(you already have {lines.get(product.pk, 0)})."
            )
        lines[product.pk] = new_quantity
        self._save(lines)
        # Seen on the product page just now; the other lines keep what was seen before.
        seen = {str(pk): str(price) for pk, price in self._seen_prices().items()}
        self.session[SEEN_PRICES_KEY] = {**seen, str(product.pk): str(product.price)}

    def set(self, product, quantity):
        self._check(quantity)
        lines = self._lines()
        lines[product.pk] = quantity
        self._save(lines)

    def remove(self, product):
        lines = self._lines()
        if lines.pop(product.pk, None) is not None:
            self._save(lines)

    def clear(self):
        self.session.pop(SESSION_KEY, None)
        self.session.pop(SEEN_PRICES_KEY, None)

    def _check(self, quantity):
        if not _valid_quantity(quantity):
            raise CartError(f"The quantity must be a whole number from 1 to {MAX_QUANTITY}.")

    def _save(self, lines):
        # A new dict every time: assigning marks the session as modified.
        self.session[SESSION_KEY] = {str(pk): qty for pk, qty in lines.items()}

"""Reading a supplier's product page: pure functions, no HTTP, no database, no Celery.

A supplier's page is someone else's HTML that changes without notice. The parser looks for
exactly what it knows (schema.org's `itemprop="price"`, the stock count in `data-quantity`) and
refuses anything else with a ParseError that says what was missing, rather than guessing a
price from whatever number is on the page: a wrong price published in the shop is worse than
a price left as it was.

The page the parser understands (the local supplier site's layout "v1"):

    <article class="product" data-sku="blue-mug">
      <h1 itemprop="name">Blue Mug</h1>
      <p class="price">$<span itemprop="price" content="12.50">12.50</span></p>
      <p class="stock" data-quantity="7">7 in stock</p>
    </article>
"""

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from bs4 import BeautifulSoup

CENT = Decimal("0.01")
# Product.price is DecimalField(max_digits=10, decimal_places=2).
MAX_PRICE = Decimal("99999999.99")
MAX_STOCK = 10_000_000


class ParseError(ValueError):
    """The page is not a product page we can read: its message says what was missing."""


@dataclass(frozen=True)
class PageListing:
    """What a supplier's product page says: its price and how many it has in stock."""

    price: Decimal
    stock: int


def parse_product_page(html):
    """The price and stock on a product page (`html`: str or bytes); ParseError if absent."""
    # Python's own html.parser: no C library to install, and it never raises on bad markup.
    soup = BeautifulSoup(html, "html.parser")
    price_tag = soup.find(attrs={"itemprop": "price"})
    if price_tag is None:
        raise ParseError(
            'no price on the page (expected an element with itemprop="price"): '
            "has the page layout changed?"
        )
    stock_tag = soup.find(attrs={"data-quantity": True})
    if stock_tag is None:
        raise ParseError(
            "no stock on the page (expected an element with a data-quantity attribute): "
            "has the page layout changed?"
        )
    # schema.org puts the machine-readable value in `content`; the text is for people.
    raw_price = price_tag.get("content") or price_tag.get_text()
    return PageListing(price=parse_price(raw_price), stock=parse_stock(stock_tag["data-quantity"]))


def parse_price(text):
    """A price such as "12.50" (schema.org: a dot, no currency sign, no thousands separator)."""
    text = str(text).strip()
    try:
        price = Decimal(text)
    except InvalidOperation:
        raise ParseError(f"the price {text[:40]!r} is not a number") from None
    if not price.is_finite() or price <= 0 or price > MAX_PRICE:
        raise ParseError(f"the price {text[:40]!r} is not a price we can sell at")
    if price != price.quantize(CENT):
        raise ParseError(f"the price {text[:40]!r} has more than two decimals")
    return price.quantize(CENT)


def parse_stock(text):
    """A stock count such as "7": a whole number, zero or more."""
    text = str(text).strip()
    if not text.isascii() or not text.isdigit() or int(text) > MAX_STOCK:
        raise ParseError(f"the stock {text[:40]!r} is not a whole number of units")
    return int(text)

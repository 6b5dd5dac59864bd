"""`{{ amount|money }}`: one way to show a price, on the shop's pages and in its emails."""

from decimal import Decimal, InvalidOperation

from django import template

register = template.Library()

CURRENCY = "$"


@register.filter
def money(amount):
    """12.5 -> "$12.50", 1234.5 -> "$1,234.50"; what is not a number is shown as it is."""
    try:
        return f"{CURRENCY}{Decimal(str(amount)).quantize(Decimal('0.01')):,}"
    except (InvalidOperation, ValueError):
        return amount

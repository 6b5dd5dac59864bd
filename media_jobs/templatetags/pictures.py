from django import template

from media_jobs import selectors

register = template.Library()


@register.simple_tag
def product_picture(product):
    """{% product_picture product as picture %}: the Picture the shop shows, or None."""
    return selectors.picture_for(product)

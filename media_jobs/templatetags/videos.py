from django import template

from media_jobs import selectors

register = template.Library()


@register.simple_tag
def product_video(product):
    """{% product_video product as video %}: the ProductVideo the shop shows, or None."""
    return selectors.video_for(product)

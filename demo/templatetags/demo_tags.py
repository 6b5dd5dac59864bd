"""The supplier site's knobs, shown on the staff suppliers page when the demo is installed.

suppliers/templates/suppliers/suppliers.html includes demo/_supplier_site.html only then, so the
suppliers app itself knows nothing of the demo.
"""

from django import template
from django.conf import settings

from demo import supplier_site
from demo.forms import SiteControlsForm

register = template.Library()


@register.inclusion_tag("demo/_supplier_site_panel.html", takes_context=True)
def supplier_site_panel(context):
    controls = supplier_site.read_controls(settings.SUPPLIER_SITE_CONTROL)
    return {
        "site_controls": controls,
        "site_form": SiteControlsForm(initial=controls),
        "csrf_token": context.get("csrf_token"),
    }

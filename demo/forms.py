from django import forms

from demo.supplier_site import FAIL_STATUSES, LAYOUTS


class SinkControlsForm(forms.Form):
    latency = forms.FloatField(min_value=0, max_value=10, help_text="seconds before each answer")
    fail_rate = forms.FloatField(min_value=0, max_value=1, help_text="share answered 451, 0 to 1")


class FloodForm(forms.Form):
    count = forms.IntegerField(min_value=1, max_value=20000, initial=3000)
    seconds_each = forms.FloatField(min_value=0, max_value=1, initial=0.02)


class SiteControlsForm(forms.Form):
    """The local supplier site's knobs: watch retries, dead letters and drift."""

    layout = forms.ChoiceField(
        choices=[(layout, layout) for layout in LAYOUTS],
        help_text="v2 is a redesign the parser does not know: every page fails clearly",
    )
    latency = forms.FloatField(min_value=0, max_value=60, help_text="seconds per page")
    fail_next = forms.IntegerField(
        min_value=0, max_value=1000, help_text="the next N pages answer with the status below"
    )
    fail_status = forms.TypedChoiceField(
        coerce=int, choices=[(status, status) for status in FAIL_STATUSES]
    )
    drift = forms.FloatField(
        min_value=0, max_value=0.5, help_text="prices wander by up to this share (0.05: 5%)"
    )

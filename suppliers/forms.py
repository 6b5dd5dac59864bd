from django import forms

from suppliers.site import FAIL_STATUSES, LAYOUTS


class SiteControlsForm(forms.Form):
    """The local supplier site's knobs (demo only): watch retries, dead letters and drift."""

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

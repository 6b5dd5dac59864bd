from django import forms


class SinkControlsForm(forms.Form):
    latency = forms.FloatField(min_value=0, max_value=10, help_text="seconds before each answer")
    fail_rate = forms.FloatField(min_value=0, max_value=1, help_text="share answered 451, 0 to 1")


class FloodForm(forms.Form):
    count = forms.IntegerField(min_value=1, max_value=20000, initial=3000)
    seconds_each = forms.FloatField(min_value=0, max_value=1, initial=0.02)

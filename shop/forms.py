"""What the shop's pages accept. Every field is checked here before a view acts on it."""

from datetime import timedelta

from django import forms
from django.utils import timezone

from shop.models import MAX_QUANTITY


def quantity_field():
    return forms.IntegerField(
        min_value=1,
        max_value=MAX_QUANTITY,
        initial=1,
        error_messages={
            "required": "Enter a quantity.",
            "invalid": f"The quantity must be a whole number from 1 to {MAX_QUANTITY}.",
            "min_value": "The quantity must be at least 1.",
            "max_value": f"The quantity can be at most {MAX_QUANTITY}.",
        },
        widget=forms.NumberInput(attrs={"class": "qty"}),
    )


class AddToCartForm(forms.Form):
    quantity = quantity_field()


class UpdateQuantityForm(forms.Form):
    quantity = quantity_field()


class CheckoutForm(forms.Form):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    # Same limits as the Order model's columns; CharField strips surrounding whitespace, so a
    # field of blanks counts as missing.
    customer_name = forms.CharField(
        label="Name",
        max_length=100,
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    email = forms.EmailField(
        label="Email",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    shipping_address = forms.CharField(
        label="Shipping address",
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "street-address"}),
    )


CARRIERS = [
    ("DemoPost", "DemoPost"),
    ("Parcel Express", "Parcel Express"),
    ("Freight Co", "Freight Co"),
]


class ShipOrderForm(forms.Form):
    carrier = forms.ChoiceField(choices=CARRIERS)
    tracking_number = forms.RegexField(
        regex=r"^[A-Za-z0-9-]{4,40}$",
        strip=True,
        error_messages={"invalid": "Use 4 to 40 letters, digits or dashes."},
    )


class BulkShipForm(forms.Form):
    carrier = forms.ChoiceField(choices=CARRIERS)


# One year per report (a leap year included): the chart keeps one bar per day readable.
MAX_REPORT_DAYS = 366


def date_input():
    # The browser's date picker sends and expects ISO dates (2026-11-24).
    return forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"})


class SalesReportForm(forms.Form):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    date_from = forms.DateField(
        label="From",
        widget=date_input(),
        initial=lambda: timezone.localdate() - timedelta(days=29),
        error_messages={"invalid": "Enter a date, like 2026-11-24."},
    )
    date_to = forms.DateField(
        label="To",
        widget=date_input(),
        initial=timezone.localdate,
        error_messages={"invalid": "Enter a date, like 2026-11-24."},
    )

    def clean(self):
        cleaned = super().clean()
        date_from, date_to = cleaned.get("date_from"), cleaned.get("date_to")
        if date_from is None or date_to is None:
            return cleaned  # the field errors say what is wrong
        if date_to > timezone.localdate():
            self.add_error("date_to", "The report cannot end in the future.")
        elif date_from > date_to:
            self.add_error("date_to", "The end date must be on or after the start date.")
        elif (date_to - date_from).days + 1 > MAX_REPORT_DAYS:
            raise forms.ValidationError(f"A report covers at most {MAX_REPORT_DAYS} days.")
        return cleaned

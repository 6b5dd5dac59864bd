"""What the newsletter pages accept: checked here, before a view acts on it."""

from django import forms

from notifications.models import Newsletter


class SubscribeForm(forms.Form):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    email = forms.EmailField(
        label="Your email address",
        max_length=254,
        error_messages={
            "required": "Enter your email address.",
            "invalid": "Enter a valid email address, like ada@example.com.",
            "max_length": "An email address has at most 254 characters.",
        },
        widget=forms.EmailInput(attrs={"autocomplete": "email", "placeholder": "ada@example.com"}),
    )

    def clean_email(self):
        # One mailbox, one subscriber: Ada@Example.com and ada@example.com are the same person
        # everywhere that matters.
        return self.cleaned_data["email"].lower()


class NewsletterForm(forms.ModelForm):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["subject"].error_messages["required"] = "Give the newsletter a subject."
        self.fields["body"].error_messages["required"] = "Write something to send."

    class Meta:
        model = Newsletter
        fields = ["subject", "body"]
        widgets = {"body": forms.Textarea(attrs={"rows": 12})}

from django import forms
from django.utils.translation import gettext_lazy as _


class RefundForm(forms.Form):
    amount = forms.CharField(label=_("Refund amount"), max_length=32)
    confirm_overrefund = forms.BooleanField(required=False, label=_("I confirm the overrefund"))
    # One token per opened form: a double submit reuses it and never refunds twice.
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=64)

from django import forms


class RefundForm(forms.Form):
    amount = forms.CharField(label="Refund amount", max_length=32)
    confirm_overrefund = forms.BooleanField(required=False, label="I confirm the overrefund")
    # One token per opened form: a double submit reuses it and never refunds twice.
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=64)

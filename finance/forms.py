"""The dashboard's selectors: business entity, currency and date range (GET), validated into a selectors.Scope."""

from datetime import timedelta

from django import forms
from django.utils import timezone

from billing.models import BusinessEntity
from billing.money import MoneyError, normalize_currency

DEFAULT_DAYS = 30
MAX_RANGE_DAYS = 400


class DashboardForm(forms.Form):
    entity = forms.ModelChoiceField(label="Business entity", queryset=BusinessEntity.objects.order_by("name", "id"), required=False,
                                    empty_label=None)
    currency = forms.CharField(label="Currency", max_length=3, required=False)
    start = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean_currency(self):
        value = self.cleaned_data["currency"]
        if not value:
            return ""
        try:
            return normalize_currency(value)
        except MoneyError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        today = timezone.localdate()
        data["end"] = data.get("end") or today
        data["start"] = data.get("start") or data["end"] - timedelta(days=DEFAULT_DAYS - 1)
        if data["start"] > data["end"]:
            raise forms.ValidationError(f"The range ends ({data['end']}) before it starts ({data['start']}).")
        if (data["end"] - data["start"]).days >= MAX_RANGE_DAYS:
            raise forms.ValidationError(f"Show at most {MAX_RANGE_DAYS} days at once.")
        data["entity"] = data.get("entity") or self.fields["entity"].queryset.first()
        return data

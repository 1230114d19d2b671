"""Admin for Stripe provider settings: write-only secrets, every SPEC §5 rule, webhook URL, test connection."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from providers.constants import WEBHOOK_EVENTS
from providers.models import DEFAULT_PAYOUT_DELAY_DAYS, MAX_PAYOUT_DELAY_DAYS, ProviderSetting
from providers.services import save_provider_setting, test_connection, validate_provider_setting


class WriteOnlySecretInput(forms.PasswordInput):
    """Never renders a value, not even masked: the HTML must not contain the secret."""

    def __init__(self, attrs=None):
        super().__init__(attrs={"autocomplete": "new-password", **(attrs or {})}, render_value=False)


class ProviderSettingForm(forms.ModelForm):
    secret_key = forms.CharField(required=False, strip=True, widget=WriteOnlySecretInput,
                                 help_text="sk_… or a restricted rk_… key. Leave empty to keep the stored key.")
    webhook_secret = forms.CharField(required=False, strip=True, widget=WriteOnlySecretInput,
                                     help_text="The endpoint's signing secret (whsec_…). Leave empty to keep the stored secret.")
    payout_delay_days = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_PAYOUT_DELAY_DAYS, label="Expected payout delay (days)",
        help_text=ProviderSetting._meta.get_field("payout_delay_days").help_text + f" Empty means {DEFAULT_PAYOUT_DELAY_DAYS}.")

    class Meta:
        model = ProviderSetting
        fields = ["name", "provider", "business_entities", "active", "publishable_key", "secret_key", "webhook_secret",
                  "method_card", "method_sepa_debit", "method_alipay", "enable_future_payments", "future_payments_active",
                  "future_payments_changeable", "payout_delay_days"]
        help_texts = {
            "method_alipay": "Alipay cannot save a payment method: the future-payments option is never offered for Alipay payments.",
            "method_card": "No method selected means card.",
            "method_sepa_debit": "Offered for EUR invoices only.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, last4 in (("secret_key", self.instance.secret_key_last4), ("webhook_secret", self.instance.webhook_secret_last4)):
            if self.instance.pk and last4:
                self.fields[name].help_text = f"Set, ends in …{last4}. " + self.fields[name].help_text

    def clean_payout_delay_days(self):
        value = self.cleaned_data.get("payout_delay_days")
        return DEFAULT_PAYOUT_DELAY_DAYS if value is None else value

    def _post_clean(self):
        super()._post_clean()
        if self.errors:
            return
        try:  # the rules live in the service; the form only shows its errors
            validate_provider_setting(self.instance, entity_ids=[e.pk for e in self.cleaned_data.get("business_entities", [])],
                                      secret_key=self.cleaned_data.get("secret_key", ""),
                                      webhook_secret=self.cleaned_data.get("webhook_secret", ""))
        except ValidationError as exc:
            self._update_errors(exc)


@admin.register(ProviderSetting)
class ProviderSettingAdmin(admin.ModelAdmin):
    form = ProviderSettingForm
    list_display = ("name", "provider", "mode", "active", "entities", "stripe_account_id", "methods")
    list_filter = ("provider", "active")
    search_fields = ("name", "stripe_account_id")
    actions = ["test_connection_action"]
    readonly_fields = ("mode", "stripe_account_id", "webhook_endpoint", "dashboard_instructions")
    fieldsets = (
        (None, {"fields": ("name", "provider", "business_entities", "active", "mode", "stripe_account_id")}),
        ("Keys", {"fields": ("publishable_key", "secret_key", "webhook_secret")}),
        ("Payment methods", {"fields": ("method_card", "method_sepa_debit", "method_alipay")}),
        ("Future payments", {"fields": ("enable_future_payments", "future_payments_active", "future_payments_changeable"),
                             "description": "Active and changeable apply only when future payments are enabled."}),
        ("Payouts", {"fields": ("payout_delay_days",)}),
        ("Stripe Dashboard", {"fields": ("webhook_endpoint", "dashboard_instructions")}),
    )

    class Media:
        js = ("providers/provider_setting_form.js",)

    def save_model(self, request, obj, form, change):
        save_provider_setting(obj, entity_ids=[e.pk for e in form.cleaned_data.get("business_entities", [])],
                              secret_key=form.cleaned_data.get("secret_key", ""),
                              webhook_secret=form.cleaned_data.get("webhook_secret", ""), user=request.user)

    def save_related(self, request, form, formsets, change):
        for formset in formsets:  # business entities were set by the service
            self.save_formset(request, form, formset, change=change)

    @admin.display(description="mode")
    def mode(self, obj):
        return obj.mode if obj.publishable_key else "-"

    @admin.display(description="business entities")
    def entities(self, obj):
        names = [entity.name for entity in obj.business_entities.all()]
        return ", ".join(names) or "default (all others)"

    @admin.display(description="methods")
    def methods(self, obj):
        return ", ".join(obj.payment_method_types)

    @admin.display(description="webhook endpoint URL")
    def webhook_endpoint(self, obj):
        if not obj.pk:
            return "Shown after saving."
        url = settings.SITE_URL + reverse("webhooks:stripe-webhook", args=[obj.webhook_id])
        return format_html('<input type="text" readonly value="{}" size="90" onclick="this.select()" aria-label="webhook endpoint URL">',
                           url)

    @admin.display(description="Stripe Dashboard settings")
    def dashboard_instructions(self, obj):
        events = format_html_join("", "<li><code>{}</code></li>", ((event,) for event in WEBHOOK_EVENTS))
        return format_html("In Developers → Webhooks → Add endpoint: paste the URL above, API version <code>{}</code>, "
                           "and select these events:<ul>{}</ul>", settings.STRIPE_API_VERSION, events)

    @admin.action(description="Test connection", permissions=["change"])
    def test_connection_action(self, request, queryset):
        for setting in queryset:
            report = test_connection(setting)
            self.message_user(request, report.message, messages.SUCCESS if report.ok else messages.ERROR)

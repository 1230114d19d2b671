"""Admin for payments: transactions per charge, disputes, attempts, Stripe customers and saved instruments, and the
invoice's payment actions (billing's admin does not import payments)."""

from django.contrib import admin, messages
from django.utils.html import format_html

from billing.admin import InvoiceAdmin
from billing.models import Invoice
from payments.models import Dispute, PaymentAttempt, PaymentInstrument, PaymentTransaction, StripeCustomer


class ReadOnly:
    """Records that only services write: shown, never added, changed or deleted in the admin (pages and inlines)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(ReadOnly, admin.ModelAdmin):
    pass


@admin.register(PaymentTransaction)
class PaymentTransactionAdmin(ReadOnlyAdmin):
    list_display = ("charge_id", "status", "amount", "currency", "method_type", "invoice", "payment_intent_id", "updated_at")
    list_filter = ("status", "method_type", "currency")
    search_fields = ("charge_id", "payment_intent_id", "invoice__number")


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdmin):
    list_display = ("dispute_id", "transaction", "amount", "currency", "reason", "status", "evidence_due_by", "funds_withdrawn",
                    "funds_reinstated")
    list_filter = ("status", "reason", "currency")
    search_fields = ("dispute_id", "transaction__charge_id")


@admin.register(PaymentAttempt)
class PaymentAttemptAdmin(ReadOnlyAdmin):
    list_display = ("invoice", "number", "source", "status", "amount", "currency", "method_type", "save_for_future",
                    "payment_intent_id", "created_at")
    list_filter = ("status", "source", "method_type")
    search_fields = ("invoice__number", "payment_intent_id")


@admin.register(StripeCustomer)
class StripeCustomerAdmin(ReadOnlyAdmin):
    list_display = ("stripe_customer_id", "account", "provider_setting", "created_at")
    search_fields = ("stripe_customer_id", "account__name")


@admin.register(PaymentInstrument)
class PaymentInstrumentAdmin(admin.ModelAdmin):
    """Staff deactivate instruments here (a customer's opt-out after opting in)."""

    list_display = ("__str__", "account", "provider_setting", "method_type", "active", "needs_attention", "attention_reason",
                    "activated_at")
    list_filter = ("active", "needs_attention", "method_type")
    search_fields = ("account__name", "stripe_payment_method_id")
    fields = ("account", "provider_setting", "stripe_payment_method_id", "method_type", "brand", "last4", "exp_month", "exp_year",
              "mandate_id", "active", "needs_attention", "attention_reason", "activated_at")
    readonly_fields = ("account", "provider_setting", "stripe_payment_method_id", "method_type", "brand", "last4", "exp_month",
                       "exp_year", "mandate_id", "activated_at")

    def has_add_permission(self, request):
        return False


# --- The invoice's payment actions ----------------------------------------------------------------------------------


class InvoiceWithPaymentsAdmin(InvoiceAdmin):
    """The invoice page with its payment link and the actions that ask Stripe for money."""

    actions = [*InvoiceAdmin.actions, "email_payment_link_action", "collect_off_session_action"]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "payment_link"]

    @admin.display(description="payment link")
    def payment_link(self, obj):
        from payments.selectors import payment_link_for

        if not obj or not obj.pk:
            return "-"
        link = payment_link_for(obj)
        return format_html('<a href="{0}" target="_blank" rel="noopener">{0}</a>', link) if link else "-"

    @admin.action(description="Email payment link", permissions=["change"])
    def email_payment_link_action(self, request, queryset):
        from payments.services.checkout import PaymentNotPossible
        from payments.services.collection import send_payment_link

        for invoice in queryset:
            try:
                send_payment_link(invoice)
                self.message_user(request, f"Payment link for {invoice.number} sent to {invoice.account.email}.", messages.SUCCESS)
            except PaymentNotPossible as exc:
                self.message_user(request, f"{invoice.number}: {exc}", messages.ERROR)

    @admin.action(description="Collect now (off-session, saved payment method)", permissions=["change"])
    def collect_off_session_action(self, request, queryset):
        from payments.services.checkout import PaymentNotPossible
        from payments.services.collection import collect_invoice_off_session

        for invoice in queryset:
            try:
                outcome = collect_invoice_off_session(invoice)
            except PaymentNotPossible as exc:
                outcome = str(exc)
            self.message_user(request, f"{invoice.number}: {outcome.replace('_', ' ')}.")


admin.site.unregister(Invoice)
admin.site.register(Invoice, InvoiceWithPaymentsAdmin)

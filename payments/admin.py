"""Admin for payments: transactions per charge, attempts, Stripe customers and saved instruments."""

from django.contrib import admin

from payments.models import PaymentAttempt, PaymentInstrument, PaymentTransaction, StripeCustomer


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
    list_display = ("charge_id", "status", "amount", "currency", "method_type", "invoice", "payment_intent_id", "dispute_status",
                    "updated_at")
    list_filter = ("status", "method_type", "currency")
    search_fields = ("charge_id", "payment_intent_id", "invoice__number")


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

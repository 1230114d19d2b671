from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from billing.admin_money import FormattedAmounts, money_column
from billing.exports import Column, ExportMixin, amount_column
from refunds.models import RefundRequest


@admin.register(RefundRequest)
class RefundRequestAdmin(ExportMixin, FormattedAmounts, admin.ModelAdmin):
    list_display = ("id", "created_at", "charge_id", "amount_display", "source", "status", "stripe_refund_id", "requested_by")
    list_filter = ("status", "source", "currency")
    search_fields = ("charge_id", "stripe_refund_id", "idempotency_key")
    readonly_fields = [field.name for field in RefundRequest._meta.fields]
    amount_display = money_column("amount", description=_("amount"))
    export_columns = [Column("id", "id"), Column("created at", "created_at"), Column("charge", "charge_id"), amount_column(),
                      Column("currency", "currency"), Column("source", "source"), Column("status", "status"),
                      Column("stripe refund", "stripe_refund_id"), Column("requested by", "requested_by__username"),
                      Column("balance", "balance_id"), Column("failure reason", "failure_reason"), Column("applied at", "applied_at")]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

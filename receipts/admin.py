"""Admin: receipts (read-only, PDF download for staff with view permission, on the invoice page too) and the
per-entity number prefixes."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from billing.admin import INVOICE_PAGE_INLINES, ReadOnly
from billing.money import format_amount
from receipts.models import Receipt, ReceiptSequence
from receipts.views import pdf_response


def pdf_link(receipt: Receipt) -> str:
    return format_html('<a href="{}">{}.pdf</a>', reverse("admin:receipts_receipt_pdf", args=[receipt.pk]), receipt.number)


@admin.register(Receipt)
class ReceiptAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("number", "kind", "invoice", "account", "amount_display", "money_moved_at", "email_status", "download")
    list_filter = ("kind", "business_entity", "currency")
    search_fields = ("number", "invoice__number", "account__name", "stripe_reference")
    list_select_related = ("invoice", "account", "email")
    exclude = ("pdf",)
    readonly_fields = ("download",)

    @admin.display(description="amount")
    def amount_display(self, obj):
        return format_amount(obj.amount, obj.currency)

    @admin.display(description="email")
    def email_status(self, obj):
        email = getattr(obj, "email", None)
        if email is None or not email.recipient:
            return "no address"
        if email.sent_at:
            return f"sent {email.sent_at:%Y-%m-%d %H:%M}"
        return f"not sent ({email.attempts} attempts{': ' + email.last_error[:80] if email.last_error else ''})"

    @admin.display(description="PDF")
    def download(self, obj):
        return pdf_link(obj)

    def get_urls(self):
        return [path("<int:receipt_id>/pdf/", self.admin_site.admin_view(self.pdf_view), name="receipts_receipt_pdf"),
                *super().get_urls()]

    def pdf_view(self, request, receipt_id: int):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return pdf_response(get_object_or_404(Receipt.objects.select_related("business_entity", "invoice"), pk=receipt_id))


class InvoiceReceiptsInline(ReadOnly, admin.TabularInline):
    model = Receipt
    fk_name = "invoice"
    extra = 0
    fields = ("number", "kind", "amount", "currency", "money_moved_at", "download")
    readonly_fields = fields
    verbose_name_plural = "receipts"

    @admin.display(description="PDF")
    def download(self, obj):
        return pdf_link(obj)


INVOICE_PAGE_INLINES.append(InvoiceReceiptsInline)


@admin.register(ReceiptSequence)
class ReceiptSequenceAdmin(admin.ModelAdmin):
    list_display = ("business_entity", "prefix", "last_number")
    readonly_fields = ("last_number",)

    def get_readonly_fields(self, request, obj=None):
        # The prefix is part of every number already handed out: fixed once the first receipt exists.
        return ("business_entity", "prefix", "last_number") if obj and obj.last_number else ("last_number",)

    def has_delete_permission(self, request, obj=None):
        return False

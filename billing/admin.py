"""Admin for the books: entities, accounts, invoices with their balances, balances, payment entries."""

from django.contrib import admin, messages
from django.utils.html import format_html

from billing import services
from billing.constants import PaymentEntryStatus
from billing.models import Account, Balance, BusinessEntity, Invoice, PaymentEntry
from billing.money import format_amount
from billing.selectors import open_amount

# Read-only sections that apps above billing add to the invoice page (receipts, reminder history) without billing
# importing them: they append their inline classes here from their own admin modules.
INVOICE_PAGE_INLINES: list = []

BOOK_FIELDS = ("type", "amount", "currency", "transaction_number", "provider_setting", "date", "split_from", "refunds_balance",
               "stripe_refund_id", "is_overrefund", "status", "locked", "lock_reason")


@admin.register(BusinessEntity)
class BusinessEntityAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "display_name", "default_currency", "support_email")
    prepopulated_fields = {"slug": ("name",)}
    search_fields = ("name", "slug")


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("name", "email", "language", "business_entity")
    list_filter = ("business_entity", "language")
    search_fields = ("name", "email")
    actions = ["auto_assign_action"]

    @admin.action(description="Assign open balances automatically (oldest first)", permissions=["change"])
    def auto_assign_action(self, request, queryset):
        for account in queryset:
            for currency in account.balances.values_list("currency", flat=True).distinct():
                count = services.auto_assign(account=account, currency=currency)
                self.message_user(request, f"{account}: {count} assignment(s) in {currency}.")


class BalanceInline(admin.TabularInline):
    model = Balance
    fk_name = "invoice"
    extra = 0
    can_delete = False
    fields = ("date", "type", "amount", "currency", "status", "transaction_number", "locked", "lock_reason")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = ("number", "kind", "account", "amount_display", "open_amount_display", "status", "due_date")
    list_filter = ("status", "kind", "currency", "business_entity")
    search_fields = ("number", "account__name", "payment_reference")
    readonly_fields = ("status", "finalized_at", "cancelled_at", "open_amount_display", "payment_link")
    inlines = [BalanceInline]
    actions = ["finalize_action", "cancel_action", "email_payment_link_action", "collect_off_session_action"]

    def get_inlines(self, request, obj):
        return [*self.inlines, *INVOICE_PAGE_INLINES] if obj else self.inlines

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj and obj.status != "draft":
            fields += ["account", "business_entity", "kind", "amount", "currency"]
        return fields

    @admin.display(description="amount")
    def amount_display(self, obj):
        return format_amount(obj.amount, obj.currency)

    @admin.display(description="open amount")
    def open_amount_display(self, obj):
        return format_amount(open_amount(obj), obj.currency) if obj.pk else "-"

    @admin.display(description="payment link")
    def payment_link(self, obj):
        if not obj or not obj.pk:
            return "-"
        try:
            from payments.selectors import payment_link_for
        except ImportError:
            return "-"
        link = payment_link_for(obj)
        return format_html('<a href="{0}" target="_blank" rel="noopener">{0}</a>', link) if link else "-"

    @admin.action(description="Finalize selected drafts", permissions=["change"])
    def finalize_action(self, request, queryset):
        self._run(request, queryset, services.finalize_invoice, "finalized")

    @admin.action(description="Cancel selected invoices", permissions=["change"])
    def cancel_action(self, request, queryset):
        self._run(request, queryset, services.cancel_invoice, "cancelled")

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

    def _run(self, request, queryset, service, verb):
        for invoice in queryset:
            try:
                service(invoice)
                self.message_user(request, f"{invoice.number} {verb}.", messages.SUCCESS)
            except services.BillingError as exc:
                self.message_user(request, str(exc), messages.ERROR)


@admin.register(Balance)
class BalanceAdmin(admin.ModelAdmin):
    change_form_template = "admin/billing/balance/change_form.html"
    list_display = ("id", "date", "account", "type", "amount", "currency", "status", "invoice", "transaction_number", "locked",
                    "lock_reason")
    list_filter = ("type", "locked", "status", "currency", "is_overrefund")
    search_fields = ("transaction_number", "stripe_refund_id", "account__name", "invoice__number")
    list_select_related = ("account", "invoice")
    raw_id_fields = ("account", "invoice", "split_from", "refunds_balance")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        if obj.locked:  # a locked balance belongs to the refund or dispute that locked it
            return [field.name for field in Balance._meta.fields]
        return BOOK_FIELDS + ("account",)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and (obj.locked or obj.transaction_number):
            return False
        return super().has_delete_permission(request, obj)


@admin.register(PaymentEntry)
class PaymentEntryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "transaction_number", "amount", "currency", "status", "last_error")
    list_filter = ("status", "kind", "currency")
    search_fields = ("transaction_number", "stripe_refund_id")
    readonly_fields = ("provider", "kind", "provider_setting", "transaction_number", "stripe_refund_id", "amount", "currency",
                       "date", "last_error", "raw", "resolved_balance", "resolved_at", "status")
    actions = ["resolve_action"]

    @admin.action(description="Resolve into an unlocked payment balance (on the entry's account / invoice)", permissions=["change"])
    def resolve_action(self, request, queryset):
        for entry in queryset.filter(status=PaymentEntryStatus.OPEN):
            try:
                balance = services.resolve_payment_entry(entry, user=request.user)
                self.message_user(request, f"Entry {entry.transaction_number} resolved into balance {balance.pk}.", messages.SUCCESS)
            except services.BillingError as exc:
                self.message_user(request, str(exc), messages.ERROR)

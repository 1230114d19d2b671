"""Admin for payments: transactions per charge, attempts, Stripe customers and saved instruments, the
invoice's payment actions (billing's admin does not import payments), and payouts with their lines, Stripe's fees and
CSV exports for finance. Disputes are listed and answered in disputes/admin.py (their actions send receipts)."""

from datetime import date

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from billing.admin import InvoiceAdmin, ReadOnly
from billing.admin_money import MoneyOnViewPages, money_column
from billing.exports import Column, ExportMixin, amount_column, csv_chunks
from billing.models import Invoice
from payments import exports
from payments.constants import PayoutStatus
from payments.models import (
    PaymentAttempt,
    PaymentInstrument,
    PaymentTransaction,
    Payout,
    PayoutLine,
    StripeCustomer,
    StripeFee,
)
from payments.reconciliation import money_text
from payments.services.payouts import PayoutError, rematch_payout


class ReadOnlyAdmin(MoneyOnViewPages, ReadOnly, admin.ModelAdmin):
    """View-only pages of records that services write, their amounts in their currency's decimals."""


@admin.register(PaymentTransaction)
class PaymentTransactionAdmin(ReadOnlyAdmin):
    list_display = ("charge_id", "status", "amount_display", "method_type", "invoice", "payment_intent_id", "updated_at")
    list_filter = ("status", "method_type", "currency")
    search_fields = ("charge_id", "payment_intent_id", "invoice__number")
    amount_display = money_column("amount")


@admin.register(PaymentAttempt)
class PaymentAttemptAdmin(ReadOnlyAdmin):
    list_display = ("invoice", "number", "source", "status", "amount_display", "method_type", "save_for_future",
                    "payment_intent_id", "created_at")
    list_filter = ("status", "source", "method_type")
    search_fields = ("invoice__number", "payment_intent_id")
    amount_display = money_column("amount")


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
                send_payment_link(invoice, user=request.user)
                self.message_user(request, f"Payment link for {invoice.number} sent to {invoice.account.email}.", messages.SUCCESS)
            except PaymentNotPossible as exc:
                self.message_user(request, f"{invoice.number}: {exc}", messages.ERROR)

    @admin.action(description="Collect now (off-session, saved payment method)", permissions=["change"])
    def collect_off_session_action(self, request, queryset):
        from payments.services.checkout import PaymentNotPossible
        from payments.services.collection import collect_invoice_off_session

        for invoice in queryset:
            try:
                outcome = collect_invoice_off_session(invoice, user=request.user)
            except PaymentNotPossible as exc:
                outcome = str(exc)
            self.message_user(request, f"{invoice.number}: {outcome.replace('_', ' ')}.")


admin.site.unregister(Invoice)
admin.site.register(Invoice, InvoiceWithPaymentsAdmin)


# --- Payouts --------------------------------------------------------------------------------------

STATUS_COLOURS = {PayoutStatus.RECONCILED: "#1b7f3b", PayoutStatus.MISMATCHED: "#b42318", PayoutStatus.PENDING: "#6b7280",
                  PayoutStatus.NOT_ITEMISABLE: "#8a6d00", PayoutStatus.FAILED: "#b42318"}
LINES_ON_PAGE = 500  # the payout page shows the unmatched lines first; the line list pages through all of them
DIFFERENCES_ON_PAGE = 200


def _csv_response(rows, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(csv_chunks(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _balance_links(ids) -> str:
    return format_html_join(" ", '<a href="{}">balance {}</a>', ((reverse("admin:billing_balance_change", args=[i]), i) for i in ids))


def _entry_links(ids) -> str:
    return format_html_join(" ", '<a href="{}">entry {}</a>', ((reverse("admin:billing_paymententry_change", args=[i]), i)
                                                                 for i in ids))


def books_links(line: PayoutLine) -> str:
    """Links to what a line matched: balances, payment entries, the charge's transaction, the refund request."""
    parts = [_balance_links(line.balance_ids or []), _entry_links(line.payment_entry_ids or [])]
    if line.transaction_id:
        parts.append(format_html('<a href="{}">charge {}</a>', reverse("admin:payments_paymenttransaction_change",
                                                                        args=[line.transaction_id]), line.charge_id))
    if line.kind == "refund" and line.source_id:
        parts.append(format_html('<a href="{}?stripe_refund_id={}">refund request</a>',
                                 reverse("admin:refunds_refundrequest_changelist"), line.source_id))
    return format_html_join(" · ", "{}", ((part,) for part in parts if part)) or "-"


@admin.register(Payout)
class PayoutAdmin(ExportMixin, ReadOnlyAdmin):
    """What reached the bank, line by line. Finance reads it every morning: mismatched payouts name each difference."""

    change_list_template = "admin/payments/payout/change_list.html"
    list_display = ("stripe_payout_id", "status_badge", "arrival_date", "amount_display", "lines", "differences_summary",
                    "provider_setting", "automatic")
    list_filter = ("status", "provider_setting", "currency", "automatic")
    date_hierarchy = "arrival_date"
    search_fields = ("stripe_payout_id",)
    list_select_related = ("provider_setting",)
    actions = ["export_csv_action", "rematch_action"]
    # The list's export: one row per payout (the action and the date-range export add every line of each payout).
    export_columns = [Column("payout", "stripe_payout_id"), Column("setting", "provider_setting__name"), Column("status", "status"),
                      Column("arrival date", "arrival_date"), amount_column(), Column("currency", "currency"),
                      Column("stripe status", "stripe_status"), Column("automatic", "automatic"), Column("lines", "line_count"),
                      amount_column("charges gross", "charges_gross"), amount_column("fees", "fees_total"),
                      amount_column("refunds", "refunds_total"), amount_column("disputes", "disputes_total"),
                      amount_column("lines net", "lines_net"), Column("reconciled at", "reconciled_at")]
    fieldsets = (
        (None, {"fields": ("stripe_payout_id", "provider_setting", "status_badge", "amount_display", "arrival_date", "automatic",
                           "stripe_status", "stripe_reconciliation_status", "stripe_created", "reconciled_at", "last_error",
                           "failure_code", "failure_message", "csv_link")}),
        ("What the lines add up to", {"fields": ("totals",)}),
        ("Differences", {"fields": ("differences_table",)}),
        ("Lines and the books they matched", {"fields": ("lines_table",)}),
    )
    readonly_fields = ("stripe_payout_id", "provider_setting", "status_badge", "amount_display", "arrival_date", "automatic",
                       "stripe_status", "stripe_reconciliation_status", "stripe_created", "reconciled_at", "last_error", "failure_code",
                       "failure_message", "csv_link", "totals", "differences_table", "lines_table")

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return format_html('<strong style="color: {}">{}</strong>', STATUS_COLOURS.get(obj.status, "inherit"), obj.get_status_display())

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj):
        return money_text(obj.amount, obj.currency)

    @admin.display(description="lines", ordering="line_count")
    def lines(self, obj):
        return obj.line_count if obj.reconciled_at else "-"

    @admin.display(description="differences")
    def differences_summary(self, obj):
        if not obj.differences:
            return "-"
        first = obj.differences[0].get("sentence", "")
        return f"{len(obj.differences)}: {first}" + (" …" if len(obj.differences) > 1 else "")

    @admin.display(description="CSV")
    def csv_link(self, obj):
        return format_html('<a href="{}">Download this payout and its lines (CSV)</a>', reverse("admin:payments_payout_csv", args=[obj.pk]))

    @admin.display(description="totals")
    def totals(self, obj):
        if obj.reconciled_at is None:
            return "Not itemised yet."
        rows = [("charges (gross)", obj.charges_gross), ("− Stripe fees", obj.fees_total), ("− refunds", obj.refunds_total),
                ("− disputes", obj.disputes_total), ("+ other", obj.other_total), ("= lines' net", obj.lines_net),
                ("payout", obj.amount)]
        return format_html('<table>{}</table>', format_html_join("", "<tr><td>{}</td><td style='text-align:right'>{}</td></tr>",
                                                                 ((label, money_text(value, obj.currency)) for label, value in rows)))

    @admin.display(description="differences")
    def differences_table(self, obj):
        if not obj.differences:
            return "None." if obj.reconciled_at else "-"
        more = len(obj.differences) - DIFFERENCES_ON_PAGE
        return format_html(
            "<table><tr><th>kind</th><th>object</th><th>Stripe</th><th>books</th><th>what it means</th></tr>{}</table>{}",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", (
                (item.get("kind", ""), item.get("object_id", ""), item.get("expected", ""), item.get("actual", ""),
                 item.get("sentence", "")) for item in obj.differences[:DIFFERENCES_ON_PAGE])),
            format_html("<p>… and {} more: the CSV has every one.</p>", more) if more > 0 else "")

    @admin.display(description="lines")
    def lines_table(self, obj):
        lines = list(PayoutLine.objects.filter(payout=obj).order_by("matched", "id")[:LINES_ON_PAGE])
        if not lines:
            return "-"
        total = len(lines) if len(lines) < LINES_ON_PAGE else PayoutLine.objects.filter(payout=obj).count()
        all_lines = format_html('<p><a href="{}?payout__id__exact={}">All {} balance transactions</a> (unmatched first below)</p>',
                                reverse("admin:payments_payoutline_changelist"), obj.pk, total)
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td style='text-align:right'>{}</td>"
                                    "<td style='text-align:right'>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", (
            (line.balance_transaction_id, line.get_kind_display(), line.source_id or "-", money_text(line.gross, line.currency),
             money_text(line.fee, line.currency), "✓" if line.matched else "✗", books_links(line), line.note) for line in lines))
        return format_html("{}<table><tr><th>balance transaction</th><th>kind</th><th>source</th><th>gross</th><th>fee</th>"
                           "<th>matched</th><th>books</th><th>note</th></tr>{}</table>", all_lines, rows)

    def get_urls(self):
        custom = [
            path("<int:payout_id>/csv/", self.admin_site.admin_view(self.payout_csv_view), name="payments_payout_csv"),
            path("export/", self.admin_site.admin_view(self.export_view), name="payments_payout_export"),
        ]
        return custom + super().get_urls()

    def payout_csv_view(self, request, payout_id: int):
        if not self.has_view_permission(request):
            raise PermissionDenied
        payout = Payout.objects.select_related("provider_setting").filter(pk=payout_id).first()
        if payout is None:
            raise Http404("No such payout.")
        return _csv_response(exports.payout_rows([payout]), f"payout-{payout.stripe_payout_id}.csv")

    def export_view(self, request):
        """A date range of payouts (by arrival date) and their lines, as CSV; without a valid range, the form."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        error, values = "", {"arrival_from": request.GET.get("arrival_from", ""), "arrival_to": request.GET.get("arrival_to", "")}
        if values["arrival_from"] or values["arrival_to"]:
            try:
                first, last = (date.fromisoformat(values[name]) for name in ("arrival_from", "arrival_to"))
                payouts = exports.payouts_arriving(self.get_queryset(request), first, last)
            except ValueError as exc:
                error = str(exc) if isinstance(exc, exports.ExportRangeError) else \
                    "Give both dates as YYYY-MM-DD, for example 2026-11-01 and 2026-11-30."
            else:
                return _csv_response(exports.payout_rows(payouts.iterator(chunk_size=200)), f"payouts-{first}-to-{last}.csv")
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": "Export payouts (CSV)",
                   "error": error, **values}
        return TemplateResponse(request, "admin/payments/payout/export.html", context, status=400 if error else 200)

    @admin.action(description="Export selected payouts with their lines (CSV)", permissions=["view"])
    def export_csv_action(self, request, queryset):
        payouts = queryset.select_related("provider_setting").order_by("arrival_date", "id")
        return _csv_response(exports.payout_rows(payouts.iterator(chunk_size=200)), "payouts.csv")

    # Matching again reads the books and rewrites only the payout's own reconciliation: finance may run it after
    # correcting the books.
    @admin.action(description="Match again against the books", permissions=["view"])
    def rematch_action(self, request, queryset):
        for payout in queryset:
            try:
                payout = rematch_payout(payout)
            except PayoutError as exc:
                self.message_user(request, str(exc), messages.WARNING)
                continue
            self.message_user(request, f"{payout.stripe_payout_id}: {payout.get_status_display().lower()}"
                                       f"{f', {payout.difference_count} difference(s)' if payout.differences else ''}.",
                              messages.SUCCESS if payout.status == PayoutStatus.RECONCILED else messages.WARNING)


@admin.register(PayoutLine)
class PayoutLineAdmin(ReadOnlyAdmin):
    list_display = ("balance_transaction_id", "payout", "kind", "type", "source_id", "gross_display", "fee_display", "net_display",
                    "matched", "books", "note")
    gross_display, fee_display, net_display = money_column("gross"), money_column("fee"), money_column("net")
    list_filter = ("matched", "kind", "currency")
    search_fields = ("balance_transaction_id", "source_id", "charge_id", "payout__stripe_payout_id")
    list_select_related = ("payout",)
    readonly_fields = ("payout", "balance_transaction_id", "type", "reporting_category", "kind", "gross", "fee", "net", "currency",
                       "exchange_rate", "source_id", "source_amount", "source_currency", "charge_id", "description", "stripe_created",
                       "available_on", "fee_details", "matched", "note", "books")
    fields = readonly_fields

    @admin.display(description="books")
    def books(self, obj):
        return books_links(obj)


@admin.register(StripeFee)
class StripeFeeAdmin(ReadOnlyAdmin):
    list_display = ("stripe_created", "fee_type", "amount_display", "charge_id", "description", "payout")
    list_filter = ("fee_type", "currency")
    amount_display = money_column("amount")
    date_hierarchy = "stripe_created"
    search_fields = ("charge_id", "balance_transaction_id", "payout__stripe_payout_id")
    list_select_related = ("payout",)

"""Admin for the books: entities, accounts, invoices with their balances, balances, payment entries.

The books are read here and changed only through pages and actions that call the ledger (billing.ledger): a balance
is never edited as a raw form; re-linking it is an assignment with its checks.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from billing import ledger
from billing.admin_money import FormattedAmounts, money, money_column
from billing.constants import BalanceType, PaymentEntryStatus
from billing.exports import Column, ExportMixin, amount_column
from billing.models import Account, AuditEntry, Balance, BusinessEntity, Invoice, PaymentEntry
from billing.money import format_amount
from billing.selectors import open_amount

# Read-only sections that apps above billing add to the invoice page (receipts, reminder history) without billing
# importing them: they append their inline classes here from their own admin modules.
INVOICE_PAGE_INLINES: list = []


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

    @admin.action(description=_("Assign open balances automatically (oldest first)"), permissions=["change"])
    def auto_assign_action(self, request, queryset):
        for account in queryset:
            for currency in account.balances.values_list("currency", flat=True).distinct():
                count = ledger.auto_assign(account=account, currency=currency, user=request.user)
                self.message_user(request, gettext("%(account)s: %(count)s assignment(s) in %(currency)s.")
                                  % {"account": account, "count": count, "currency": currency})


# --- Links, dates and the audit trail on the pages of the books -----------------------------------


def _link(url_name: str, obj, text=None) -> str:
    if obj is None:
        return "-"
    return format_html('<a href="{}">{}</a>', reverse(url_name, args=[obj.pk]), obj if text is None else text)


class ReadOnly:
    """Records that only services write: shown, never added, changed or deleted in the admin (pages and inlines)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AuditColumns:
    """Who and how much, as the audit trail shows them on its list and on the invoice and balance pages."""

    @admin.display(description=_("user"), ordering="user__username")
    def user_display(self, obj):
        return obj.user or gettext("system")

    @admin.display(description=_("before"))
    def before_display(self, obj):
        return money(obj.amount_before, obj.currency)

    @admin.display(description=_("after"))
    def after_display(self, obj):
        return money(obj.amount_after, obj.currency)


class AuditTrailInline(ReadOnly, AuditColumns, admin.TabularInline):
    """The audit entries of the page's invoice or balance, newest first, read-only (the trail is never edited)."""

    model = AuditEntry
    extra = 0
    max_num = 0
    can_delete = False
    verbose_name = _("audit entry")
    verbose_name_plural = _("audit trail")
    fields = ("created_at", "user_display", "action", "object_label", "before_display", "after_display", "detail")
    readonly_fields = fields
    ordering = ("-created_at", "-id")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")


class InvoiceAuditInline(AuditTrailInline):
    fk_name = "invoice"


class BalanceAuditInline(AuditTrailInline):
    fk_name = "balance"


class BalanceInline(admin.TabularInline):
    model = Balance
    fk_name = "invoice"
    extra = 0
    can_delete = False
    fields = ("date", "type", "amount_display", "status", "transaction_number", "locked", "lock_reason")
    readonly_fields = fields
    amount_display = money_column("amount", description=_("amount"))
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Invoice)
class InvoiceAdmin(ExportMixin, FormattedAmounts, admin.ModelAdmin):
    list_display = ("number", "kind", "account_link", "amount_display", "open_amount_display", "status", "due_date")
    list_filter = ("status", "kind", "currency", "business_entity")
    search_fields = ("number", "account__name", "payment_reference")
    list_select_related = ("account",)
    readonly_fields = ("status", "finalized_at", "cancelled_at", "open_amount_display")
    inlines = [BalanceInline, InvoiceAuditInline]

    class Media:
        css = {"all": ("billing/admin.css",)}

    actions = ["finalize_action", "cancel_action"]
    export_columns = [Column("number", "number"), Column("kind", "kind"), Column("account", "account__name"),
                      Column("business entity", "business_entity__name"), amount_column(), Column("currency", "currency"),
                      Column("status", "status"), Column("due date", "due_date"), Column("payment reference", "payment_reference"),
                      Column("finalized at", "finalized_at"), Column("created at", "created_at")]

    def get_inlines(self, request, obj):
        return [*self.inlines, *INVOICE_PAGE_INLINES] if obj else self.inlines

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj and obj.status != "draft":
            fields += ["account", "business_entity", "kind", "amount", "currency"]
        return fields

    amount_display = money_column("amount", description=_("amount"))

    @admin.display(description=_("account"), ordering="account__name")
    def account_link(self, obj):
        return _link("admin:billing_account_change", obj.account)

    @admin.display(description=_("open amount"))
    def open_amount_display(self, obj):
        return money(open_amount(obj), obj.currency) if obj.pk else "-"

    @admin.action(description=_("Finalize selected drafts"), permissions=["change"])
    def finalize_action(self, request, queryset):
        self._run(request, queryset, ledger.finalize_invoice, gettext("%(number)s finalized."))

    @admin.action(description=_("Cancel selected invoices"), permissions=["change"])
    def cancel_action(self, request, queryset):
        self._run(request, queryset, ledger.cancel_invoice, gettext("%(number)s cancelled."))

    def _run(self, request, queryset, service, done: str):
        for invoice in queryset:
            try:
                service(invoice)
                self.message_user(request, done % {"number": invoice.number}, messages.SUCCESS)
            except ledger.BillingError as exc:
                self.message_user(request, str(exc), messages.ERROR)


class AssignForm(forms.Form):
    document = forms.CharField(label=_("Invoice or credit note number"), max_length=64)
    amount = forms.DecimalField(label=_("Amount (empty: as much as fits)"), required=False, max_digits=18, decimal_places=3,
                                min_value=0)


class ResolveEntryForm(forms.Form):
    invoice = forms.CharField(label=_("Invoice number (empty: the entry's own)"), max_length=64, required=False)
    account = forms.ModelChoiceField(label=_("Account (when no invoice)"), queryset=Account.objects.all(), required=False)


class CloseEntryForm(forms.Form):
    note = forms.CharField(label=_("How it was dealt with"), max_length=500, widget=forms.Textarea(attrs={"rows": 3}))


def _book_page(model_admin, request, obj, form, title: str, submit: str):
    context = {**model_admin.admin_site.each_context(request), "opts": model_admin.model._meta, "original": obj, "form": form,
               "title": title, "submit": submit, "has_view_permission": True}
    return render(request, "admin/billing/book_action.html", context)


class WrittenByTheLedger:
    """An admin of rows only the ledger writes: every field read-only, no add, no delete (changes go through pages
    and actions that call the ledger)."""

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class OverrefundFilter(admin.BooleanFieldListFilter):
    """"By is overrefund" reads badly: the filter is titled by what it finds."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = _("overrefund")


class LockedFilter(admin.BooleanFieldListFilter):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = _("locked")


@admin.register(Balance)
class BalanceAdmin(ExportMixin, FormattedAmounts, WrittenByTheLedger, admin.ModelAdmin):
    """Read-only: balances are written by the ledger. Assigning, re-linking and unassigning go through its
    assignment service (same account and currency, never over-assigning, the invoice's status recomputed).

    The list fits a 1280 px screen with the navigation and filters open: the date and id share a column, the lock
    and its reason one, a long Stripe transaction id is shortened (in full on hover and on the balance's page)."""

    change_form_template = "admin/billing/balance/change_form.html"
    list_display = ("balance_display", "account_link", "type_display", "amount_display", "invoice_link", "lock_display")
    list_display_links = ("balance_display",)
    list_filter = ("type", ("locked", LockedFilter), "status", "currency", ("is_overrefund", OverrefundFilter), "account__business_entity")
    search_fields = ("transaction_number", "stripe_refund_id", "account__name", "invoice__number")
    list_select_related = ("account", "invoice")
    inlines = [BalanceAuditInline]
    export_columns = [Column("id", "id"), Column("date", "date"), Column("account", "account__name"),
                      Column("business entity", "account__business_entity__name"), Column("type", "type"), amount_column(),
                      Column("currency", "currency"), Column("status", "status"), Column("invoice", "invoice__number"),
                      Column("transaction", "transaction_number"), Column("locked", "locked"), Column("lock reason", "lock_reason"),
                      Column("overrefund", "is_overrefund"), Column("stripe refund", "stripe_refund_id"),
                      Column("dispute", "dispute_id"), Column("split from", "split_from_id"), Column("note", "note")]

    class Media:
        css = {"all": ("billing/admin.css",)}

    amount_display = money_column("amount", description=_("amount"))

    @admin.display(description=_("balance"), ordering="date")
    def balance_display(self, obj):
        moment = timezone.localtime(obj.date)
        return format_html('<span title="{}">{}</span><br><small>#{}</small>', moment.strftime("%Y-%m-%d %H:%M"),
                           moment.strftime("%Y-%m-%d"), obj.pk)

    @admin.display(description=_("account"), ordering="account__name")
    def account_link(self, obj):
        return _link("admin:billing_account_change", obj.account)

    @admin.display(description=_("type"), ordering="type")
    def type_display(self, obj):
        return format_html("{}<br><small>{}</small>", obj.get_type_display(), obj.get_status_display())

    @admin.display(description=_("invoice"), ordering="invoice__number")
    def invoice_link(self, obj):
        number = obj.transaction_number or "-"
        short = number if len(number) <= 14 else f"{number[:12]}…"
        return format_html('{}<br><small title="{}">{}</small>',
                           _link("admin:billing_invoice_change", obj.invoice, obj.invoice.number if obj.invoice else None), number, short)

    @admin.display(description=_("lock"), ordering="locked")
    def lock_display(self, obj):
        return gettext("Locked: %(reason)s") % {"reason": obj.lock_reason} if obj.locked else "-"

    def get_urls(self):
        view = self.admin_site.admin_view
        return [path("<int:balance_id>/assign/", view(self.assign_view), name="billing_balance_assign"),
                path("<int:balance_id>/unassign/", view(self.unassign_view), name="billing_balance_unassign"),
                *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        balance = self.get_object(request, object_id)
        extra = {"can_relink": balance is not None and self._may_relink(request, balance)}
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def _may_relink(self, request, balance: Balance) -> bool:
        movable = balance.type == BalanceType.REFUND or (balance.type == BalanceType.PAYMENT and not balance.locked)
        return movable and self.has_change_permission(request, balance)

    def assign_view(self, request, balance_id):
        balance = get_object_or_404(Balance.objects.select_related("account", "invoice"), pk=balance_id)
        if not self._may_relink(request, balance):
            raise PermissionDenied
        form = AssignForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            document = Invoice.objects.filter(number=form.cleaned_data["document"].strip()).first()
            if document is None:
                form.add_error("document", "No invoice or credit note has this number.")
            else:
                try:
                    moved = ledger.relink_balance(balance, document=document, amount=form.cleaned_data["amount"], user=request.user)
                except ledger.BillingError as exc:
                    form.add_error(None, str(exc))
                else:
                    self.message_user(request, gettext("%(amount)s assigned to %(document)s.") % {
                        "amount": format_amount(abs(moved.amount), moved.currency), "document": document.number}, messages.SUCCESS)
                    return redirect(reverse("admin:billing_balance_change", args=[moved.pk]))
        amount = format_amount(abs(balance.amount), balance.currency)
        if balance.invoice_id:
            title, submit = gettext("Move balance of %(amount)s") % {"amount": amount}, gettext("Move balance")
        else:
            title, submit = gettext("Assign balance of %(amount)s") % {"amount": amount}, gettext("Assign balance")
        return _book_page(self, request, balance, form, title, submit)

    def unassign_view(self, request, balance_id):
        balance = get_object_or_404(Balance, pk=balance_id)
        if request.method != "POST" or not self._may_relink(request, balance):
            raise PermissionDenied
        try:
            ledger.unassign_balance(balance, user=request.user)
            self.message_user(request, gettext("The balance is no longer assigned; its document's open amount grew back."),
                              messages.SUCCESS)
        except ledger.BillingError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        return redirect(reverse("admin:billing_balance_change", args=[balance.pk]))


@admin.register(PaymentEntry)
class PaymentEntryAdmin(ExportMixin, FormattedAmounts, WrittenByTheLedger, admin.ModelAdmin):
    """Read-only: finance resolves an entry of money received into balances, or closes another kind with a note, both
    through the ledger."""

    change_form_template = "admin/billing/paymententry/change_form.html"
    list_display = ("created_at", "kind", "transaction_number", "amount_display", "status", "last_error")
    list_filter = ("status", "kind", "currency")
    search_fields = ("transaction_number", "stripe_refund_id")
    actions = ["resolve_action"]
    # Not the entry's raw Stripe payload: an export carries the books' facts only.
    export_columns = [Column("id", "id"), Column("created at", "created_at"), Column("kind", "kind"),
                      Column("transaction", "transaction_number"), Column("stripe refund", "stripe_refund_id"), amount_column(),
                      Column("currency", "currency"), Column("status", "status"), Column("payment status", "payment_status"),
                      Column("date", "date"), Column("account", "account__name"), Column("invoice", "invoice__number"),
                      Column("dispute", "dispute_id"), Column("last error", "last_error"), Column("resolved at", "resolved_at"),
                      Column("resolved balance", "resolved_balance_id")]

    class Media:
        css = {"all": ("billing/admin.css",)}

    amount_display = money_column("amount", description=_("amount"))

    def get_urls(self):
        view = self.admin_site.admin_view
        return [path("<int:entry_id>/resolve/", view(self.resolve_view), name="billing_paymententry_resolve"),
                path("<int:entry_id>/close/", view(self.close_view), name="billing_paymententry_close"),
                *super().get_urls()]

    def _entry_for_change(self, request, entry_id) -> PaymentEntry:
        entry = get_object_or_404(PaymentEntry, pk=entry_id)
        if not self.has_change_permission(request, entry):
            raise PermissionDenied
        return entry

    @admin.action(description=_("Resolve into an unlocked payment balance (on the entry's account / invoice)"), permissions=["change"])
    def resolve_action(self, request, queryset):
        for entry in queryset.filter(status=PaymentEntryStatus.OPEN):
            try:
                balance = ledger.resolve_payment_entry(entry, user=request.user)
                message = gettext("Entry %(entry)s resolved into a payment balance of %(amount)s (balance %(id)s).")
                self.message_user(request, message % {"entry": entry.transaction_number, "amount": money(balance.amount, balance.currency),
                                                      "id": balance.pk}, messages.SUCCESS)
            except ledger.BillingError as exc:
                self.message_user(request, f"Entry {entry.transaction_number}: {exc}", messages.ERROR)

    def resolve_view(self, request, entry_id):
        entry = self._entry_for_change(request, entry_id)
        form = ResolveEntryForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            number = form.cleaned_data["invoice"].strip()
            invoice = Invoice.objects.filter(number=number).first() if number else None
            if number and invoice is None:
                form.add_error("invoice", "No invoice has this number.")
            else:
                try:
                    balance = ledger.resolve_payment_entry(entry, invoice=invoice, account=form.cleaned_data["account"], user=request.user)
                except ledger.BillingError as exc:
                    form.add_error(None, str(exc))
                else:
                    self.message_user(request, gettext("Entry resolved into a payment balance of %(amount)s.")
                                      % {"amount": money(balance.amount, balance.currency)}, messages.SUCCESS)
                    return redirect(reverse("admin:billing_balance_change", args=[balance.pk]))
        title = gettext("Resolve entry of %(amount)s") % {"amount": money(abs(entry.amount), entry.currency)}
        return _book_page(self, request, entry, form, title, gettext("Resolve into a payment balance"))

    def close_view(self, request, entry_id):
        entry = self._entry_for_change(request, entry_id)
        form = CloseEntryForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                ledger.close_entry(entry, note=form.cleaned_data["note"], user=request.user)
            except ledger.BillingError as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, gettext("Entry closed."), messages.SUCCESS)
                return redirect(reverse("admin:billing_paymententry_change", args=[entry.pk]))
        return _book_page(self, request, entry, form, gettext("Close entry"), gettext("Close entry"))


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnly, AuditColumns, ExportMixin, admin.ModelAdmin):
    """The audit trail, read-only: services write it (billing.audit), nobody edits or deletes it here."""

    list_display = ("created_at", "user_display", "action", "object_display", "invoice_link", "before_display", "after_display",
                    "detail")
    list_filter = ("action", ("user", admin.RelatedOnlyFieldListFilter), ("created_at", admin.DateFieldListFilter))
    date_hierarchy = "created_at"
    search_fields = ("object_label", "object_id", "detail", "user__username")
    list_select_related = ("user", "invoice")
    readonly_fields = [field.name for field in AuditEntry._meta.fields]
    export_columns = [Column("time", "created_at"), Column("user", "user__username"), Column("action", "action"),
                      Column("object type", "object_type"), Column("object id", "object_id"), Column("object", "object_label"),
                      Column("invoice", "invoice__number"), Column("balance", "balance_id"),
                      amount_column("amount before", "amount_before"), amount_column("amount after", "amount_after"),
                      Column("currency", "currency"), Column("detail", "detail")]

    class Media:
        css = {"all": ("billing/admin.css",)}


    @admin.display(description=_("object"), ordering="object_label")
    def object_display(self, obj):
        if obj.balance_id:  # by id: the balance may be gone (the trail keeps no constraint on it), the label stays
            return format_html('<a href="{}">{}</a>', reverse("admin:billing_balance_change", args=[obj.balance_id]), obj.object_label)
        return obj.object_label

    @admin.display(description=_("invoice"))
    def invoice_link(self, obj):
        return _link("admin:billing_invoice_change", obj.invoice, obj.invoice.number if obj.invoice else None)



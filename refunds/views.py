"""The Refund page of a payment balance: amount, preview of the resulting balances, confirm."""

import uuid

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext

from billing.models import Balance
from billing.money import format_amount, quantize
from refunds.forms import RefundForm
from refunds.selectors import preview_rows, refund_preview, refundable_amount
from refunds.services import (
    OverrefundNotConfirmed,
    RefundError,
    check_refund_amount,
    check_refundable_balance,
    parse_refund_amount,
    refund_payment_balance,
)


def refund_page_title(balance: Balance) -> str:
    """Named by what a clerk knows, the invoice ("Refund payment of DEMO-1001 — 119.00 EUR"); by the charge only when
    the payment is on no invoice."""
    amount = format_amount(abs(balance.amount), balance.currency)
    if balance.invoice_id:
        return gettext("Refund payment of %(invoice)s — %(amount)s") % {"invoice": balance.invoice.number, "amount": amount}
    return gettext("Refund payment %(charge)s — %(amount)s") % {"charge": balance.transaction_number, "amount": amount}


@staff_member_required
@permission_required("refunds.add_refundrequest", raise_exception=True)
def refund_balance(request, balance_id):
    balance = get_object_or_404(Balance.objects.select_related("provider_setting", "account", "invoice"), pk=balance_id)
    balance_url = reverse("admin:billing_balance_change", args=[balance.pk])
    context = {**admin.site.each_context(request), "balance": balance, "balance_url": balance_url,
               "title": refund_page_title(balance), "opts": Balance._meta, "has_view_permission": True,
               "balance_amount": format_amount(balance.amount, balance.currency)}
    try:
        check_refundable_balance(balance)
    except RefundError as exc:
        messages.error(request, str(exc))
        return redirect(balance_url)
    refundable = refundable_amount(provider_setting=balance.provider_setting, charge_id=balance.transaction_number)
    context["refundable"] = format_amount(refundable, balance.currency)
    if request.method == "POST":
        form = RefundForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                amount = parse_refund_amount(data["amount"], balance.currency)
                if "confirm" in request.POST:
                    result = refund_payment_balance(balance, amount=amount, requested_by=request.user,
                                                    confirm_overrefund=data["confirm_overrefund"],
                                                    idempotency_key=data["idempotency_key"])
                    _tell_what_happened(request, result, balance)
                    return redirect(balance_url)
                # More than Stripe can still refund is refused at the preview: no overrefund can cover it.
                check_refund_amount(balance, amount, confirm_overrefund=True)
                _show_preview(context, balance, amount)
            except OverrefundNotConfirmed as exc:
                form.add_error("confirm_overrefund", str(exc))
                _show_preview(context, balance, amount)
            except RefundError as exc:
                form.add_error("amount", str(exc))
    else:
        # In the currency's decimals ("119.00", "5000"), as the clerk would type it.
        initial = quantize(min(refundable, -balance.amount), balance.currency)
        form = RefundForm(initial={"amount": str(initial), "idempotency_key": uuid.uuid4().hex})
    context["form"] = form
    return render(request, "refunds/refund_balance.html", context)


def _show_preview(context: dict, balance: Balance, amount) -> None:
    """The refund's plan (which balances are split and locked) and, when the balances do not cover the amount, the
    overrefund that needs its confirmation; also shown again beside that error."""
    plan = refund_preview(balance, amount=amount)
    context.update(plan=plan, rows=preview_rows(plan), amount=format_amount(amount, balance.currency),
                   overrefund=format_amount(plan.overrefund, balance.currency) if plan.overrefund else "")


def _tell_what_happened(request, result, balance: Balance) -> None:
    """One message per refund: a resubmitted form (same idempotency key) says the refund was made already."""
    refund = result.request
    amount = format_amount(refund.amount, refund.currency)
    if result.already_requested:
        messages.info(request, gettext("This refund of %(amount)s was already requested (%(when)s); nothing was refunded again.")
                      % {"amount": amount, "when": refund.created_at.strftime("%Y-%m-%d %H:%M")})
    else:
        messages.success(request, gettext("Refunded %(amount)s through Stripe.") % {"amount": amount})

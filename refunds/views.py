"""The Refund page of a payment balance: amount, preview of the resulting balances, confirm."""

import uuid

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from billing.models import Balance
from billing.money import format_amount
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


@staff_member_required
@permission_required("refunds.add_refundrequest", raise_exception=True)
def refund_balance(request, balance_id):
    balance = get_object_or_404(Balance.objects.select_related("provider_setting", "account", "invoice"), pk=balance_id)
    balance_url = reverse("admin:billing_balance_change", args=[balance.pk])
    context = {**admin.site.each_context(request), "balance": balance, "balance_url": balance_url,
               "title": f"Refund payment {balance.transaction_number}", "opts": Balance._meta, "has_view_permission": True,
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
                # More than Stripe can still refund is refused at the preview: no overrefund can cover it.
                check_refund_amount(balance, amount, confirm_overrefund=True)
                plan = refund_preview(balance, amount=amount)
                context.update(plan=plan, rows=preview_rows(plan), amount=format_amount(amount, balance.currency))
                if "confirm" in request.POST:
                    refund_payment_balance(balance, amount=amount, requested_by=request.user,
                                           confirm_overrefund=data["confirm_overrefund"], idempotency_key=data["idempotency_key"])
                    messages.success(request, f"Refunded {format_amount(amount, balance.currency)} through Stripe.")
                    return redirect(balance_url)
            except OverrefundNotConfirmed as exc:
                form.add_error("confirm_overrefund", str(exc))
            except RefundError as exc:
                form.add_error("amount", str(exc))
    else:
        form = RefundForm(initial={"amount": str(min(refundable, -balance.amount)), "idempotency_key": uuid.uuid4().hex})
    context["form"] = form
    return render(request, "refunds/refund_balance.html", context)

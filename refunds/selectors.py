"""Reads for refunds: what is still refundable on a charge, and the refund plan (used by preview and apply)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Sum

from billing.constants import BalanceStatus, BalanceType
from billing.ledger.sql import read_row
from billing.models import Balance
from payments.selectors import transaction_for_charge
from refunds.models import RefundRequest, RefundStatus

REFUNDABLE_PREFIXES = ("ch_", "py_")


@dataclass(frozen=True)
class PlanBalance:
    """What a refund plan needs of a payment balance: three columns, not a model (a payment may be split into thousands)."""

    pk: int
    amount: Decimal
    invoice_id: int | None


def plan_balances(queryset) -> list[PlanBalance]:
    """The queryset's balances in its order (oldest first: charge_payment_balances orders by date and id)."""
    return [PlanBalance(*row) for row in queryset.values_list("pk", "amount", "invoice_id")]


@dataclass
class PlanStep:
    """Refund `refund_amount` of `balance`; when smaller than the balance, the balance is split."""

    balance: PlanBalance
    refund_amount: Decimal

    @property
    def splits(self) -> bool:
        return self.refund_amount < -self.balance.amount


@dataclass
class RefundPlan:
    amount: Decimal
    currency: str
    steps: list[PlanStep] = field(default_factory=list)
    overrefund: Decimal = Decimal("0")

    def resulting_balances(self) -> list[dict]:
        """What the books will show afterwards, for the preview (payment and refund rows)."""
        rows = []
        for step in self.steps:
            available = -step.balance.amount
            if step.splits:
                rows.append({"type": "payment", "amount": -(available - step.refund_amount), "locked": False,
                             "invoice": step.balance.invoice_id, "note": "remains"})
            rows.append({"type": "payment", "amount": -step.refund_amount, "locked": True, "invoice": step.balance.invoice_id,
                         "note": "split off and refunded" if step.splits else "refunded"})
            rows.append({"type": "refund", "amount": step.refund_amount, "locked": True, "invoice": None, "note": ""})
        if self.overrefund:
            rows.append({"type": "payment", "amount": -self.overrefund, "locked": True, "invoice": None, "note": "overrefund"})
            rows.append({"type": "refund", "amount": self.overrefund, "locked": True, "invoice": None, "note": "overrefund"})
        return rows


def refund_request_of_stripe_refund(refund_id: str) -> RefundRequest | None:
    """The request a Stripe refund id was recorded on (unique): every refund event asks, as one prepared statement."""
    return read_row(RefundRequest, key="stripe_refund_id", value=refund_id)


def charge_payment_balances(*, provider_setting, charge_id: str, available_only: bool = True):
    queryset = Balance.objects.filter(type=BalanceType.PAYMENT, provider_setting=provider_setting, transaction_number=charge_id)
    if available_only:
        queryset = queryset.filter(locked=False, status=BalanceStatus.CONFIRMED)
    return queryset.order_by("date", "id")


def available_payment_total(*, provider_setting, charge_id: str) -> Decimal:
    """What the available (unlocked, confirmed) payment balances of the charge hold, as a positive amount."""
    total = charge_payment_balances(provider_setting=provider_setting, charge_id=charge_id).aggregate(total=Sum("amount"))["total"]
    return -(total or Decimal("0"))


def plan_refund(balances: list[PlanBalance], *, amount: Decimal, currency: str, first_balance_id: int | None = None) -> RefundPlan:
    """SPEC §8 rules 1-3 and 6, a pure function: the initiating balance first, the others oldest first (as given), split
    the last, overrefund the rest. `balances` are the charge's available payment balances (unlocked, confirmed).
    Only the last step can split: every step before it takes a whole balance."""
    ordered = sorted(balances, key=lambda b: b.pk != first_balance_id)  # stable: the others stay oldest first
    plan = RefundPlan(amount=amount, currency=currency)
    remaining = amount
    for balance in ordered:
        if remaining <= 0:
            break
        take = min(-balance.amount, remaining)
        plan.steps.append(PlanStep(balance=balance, refund_amount=take))
        remaining -= take
    plan.overrefund = max(remaining, Decimal("0"))
    return plan


def plan_for_ledger(rows: list[tuple[int, Decimal, int | None]], *, amount: Decimal, currency: str,
                    first_balance_id: int | None = None) -> RefundPlan:
    """The plan from the rows the ledger has locked (its refund planner hook, registered in RefundsConfig.ready())."""
    return plan_refund([PlanBalance(*row) for row in rows], amount=amount, currency=currency, first_balance_id=first_balance_id)


def refund_plan(*, provider_setting, charge_id: str, amount: Decimal, currency: str, first_balance: Balance | None = None) -> RefundPlan:
    """The plan over the charge's available balances as they are now (the preview; applying locks them first)."""
    balances = plan_balances(charge_payment_balances(provider_setting=provider_setting, charge_id=charge_id))
    return plan_refund(balances, amount=amount, currency=currency, first_balance_id=first_balance.pk if first_balance else None)


def charge_total(*, provider_setting, charge_id: str) -> Decimal:
    """The charge's amount: from its transaction, else from every payment balance booked for it."""
    tx = transaction_for_charge(charge_id)
    if tx is not None and tx.amount:
        return tx.amount
    total = charge_payment_balances(provider_setting=provider_setting, charge_id=charge_id, available_only=False).filter(
        is_overrefund=False).aggregate(total=Sum("amount"))["total"]
    return -(total or Decimal("0"))


def refunded_amount(*, charge_id: str) -> Decimal:
    """Refunds requested or made on the charge that did not fail (failed refunds gave the money back); a pending
    request counts, since Stripe may be refunding it right now."""
    total = RefundRequest.objects.filter(charge_id=charge_id).exclude(
        status__in=[RefundStatus.FAILED, RefundStatus.CANCELED]).aggregate(total=Sum("amount"))["total"]
    return total or Decimal("0")


def refundable_amount(*, provider_setting, charge_id: str) -> Decimal:
    return max(charge_total(provider_setting=provider_setting, charge_id=charge_id) - refunded_amount(charge_id=charge_id), Decimal("0"))


def refund_preview(balance: Balance, *, amount: Decimal) -> RefundPlan:
    return refund_plan(provider_setting=balance.provider_setting, charge_id=balance.transaction_number, amount=amount,
                       currency=balance.currency, first_balance=balance)


def preview_rows(plan: RefundPlan) -> list[dict]:
    """The plan's resulting balances as the refund page shows them: formatted amounts, invoice numbers."""
    from billing.models import Invoice
    from billing.money import format_amount

    rows = plan.resulting_balances()
    numbers = dict(Invoice.objects.filter(pk__in={row["invoice"] for row in rows if row["invoice"]}).values_list("pk", "number"))
    return [{**row, "amount": format_amount(row["amount"], plan.currency), "invoice": numbers.get(row["invoice"], "")} for row in rows]


def can_refund(balance: Balance) -> bool:
    return (balance.type == BalanceType.PAYMENT and not balance.locked and balance.status == BalanceStatus.CONFIRMED
            and balance.provider_setting_id is not None and balance.transaction_number.startswith(REFUNDABLE_PREFIXES))

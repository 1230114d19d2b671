"""Disputes (chargebacks): lock the charge's balances, book the money taken back, reverse it if won.

The dispute's facts (funds withdrawn, funds reinstated) only ever become true, and the adjustment
balances are reconciled to those facts under the charge's row lock, so the dispute events give the
same books in any order and with any duplicates.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from billing.constants import BalanceType, LockReason
from billing.models import Balance
from billing.money import MoneyError, from_minor_units
from billing.services import create_balance, lock_balances
from payments.constants import TransactionStatus
from payments.models import PaymentTransaction
from payments.selectors import lock_transaction
from payments.services.transactions import stripe_time

WITHDRAWN_EVENTS = {"charge.dispute.funds_withdrawn"}
REINSTATED_EVENTS = {"charge.dispute.funds_reinstated"}


def apply_dispute(setting, dispute: dict, *, event_type: str) -> PaymentTransaction | None:
    """Apply one dispute event to the books. The charge's payment must have been synced first."""
    charge_id = dispute.get("charge") if isinstance(dispute.get("charge"), str) else (dispute.get("charge") or {}).get("id")
    with transaction.atomic():
        tx = lock_transaction(charge_id or "")
        if tx is None:
            return None
        status = dispute.get("status") or ""
        tx.dispute_id = dispute.get("id") or tx.dispute_id
        tx.dispute_status = status or tx.dispute_status
        try:
            tx.dispute_amount = from_minor_units(int(dispute.get("amount") or 0), dispute.get("currency") or tx.currency)
        except MoneyError:
            pass
        # Facts only become true; "lost" implies the funds were withdrawn, "won" that they came back.
        withdrawn = event_type in WITHDRAWN_EVENTS or status == "lost" or event_type in REINSTATED_EVENTS or status == "won"
        tx.dispute_funds_withdrawn = tx.dispute_funds_withdrawn or withdrawn
        tx.dispute_funds_reinstated = tx.dispute_funds_reinstated or event_type in REINSTATED_EVENTS or status == "won"
        if tx.status != TransactionStatus.FAILED:
            tx.status = TransactionStatus.DISPUTED
        tx.save()

        charge_balances = Balance.objects.filter(provider_setting=setting, transaction_number=tx.charge_id, locked=False)
        lock_balances(list(charge_balances), reason=LockReason.DISPUTED)
        _reconcile_adjustments(setting, tx, dispute)
        return tx


def _reconcile_adjustments(setting, tx: PaymentTransaction, dispute: dict) -> None:
    if not tx.dispute_id or not tx.dispute_amount or tx.invoice_id is None:
        return
    adjustments = list(Balance.objects.select_for_update().filter(type=BalanceType.ADJUSTMENT, provider_setting=setting,
                                                                  transaction_number=tx.dispute_id))
    withdrawal = [b for b in adjustments if b.amount > 0]
    reversal = [b for b in adjustments if b.amount < 0]
    date = stripe_time(dispute.get("created")) or timezone.now()
    common = {"account": tx.invoice.account, "type": BalanceType.ADJUSTMENT, "currency": tx.invoice.currency,
              "invoice": tx.invoice, "transaction_number": tx.dispute_id, "provider_setting": setting, "date": date}
    if tx.dispute_funds_withdrawn and not withdrawal:
        create_balance(amount=tx.dispute_amount, note="Dispute: funds withdrawn", **common)
        withdrawal = [True]
    if tx.dispute_funds_reinstated and withdrawal and not reversal:
        create_balance(amount=-tx.dispute_amount, note="Dispute: funds reinstated", **common)

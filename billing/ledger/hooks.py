"""What the ledger needs from the apps above it, plugged in by them at start-up (their AppConfig.ready()), so that
billing imports none of them: whether a provider setting serves an invoice (providers, SPEC §7 Tenancy), how a refund
is planned (refunds, SPEC §8), and the lock of a charge's payment transaction, first in the lock order (payments)."""

from __future__ import annotations

from collections.abc import Callable

from billing.models import Invoice

# serves_invoice(setting id, invoice) -> may money of that setting be booked on the invoice? (entity and mode)
_serves_invoice: Callable[[int | None, Invoice], bool] | None = None
# refund_planner(available balances as (id, amount, invoice id), *, amount, currency, first_balance_id) -> plan
_refund_planner: Callable | None = None
# lock_charge(charge id): row-lock the charge's payment transaction (inside a transaction)
_lock_charge: Callable[[str], object] | None = None


def register_charge_lock(lock: Callable[[str], object]) -> None:
    global _lock_charge
    _lock_charge = lock


def lock_charge(charge_id: str) -> None:
    """Serialise with every event of the charge (a no-op when no payments app is installed)."""
    if _lock_charge is not None and charge_id:
        _lock_charge(charge_id)


def register_scope(check: Callable[[int | None, Invoice], bool]) -> None:
    global _serves_invoice
    _serves_invoice = check


def register_refund_planner(planner: Callable) -> None:
    global _refund_planner
    _refund_planner = planner


def serves_invoice(setting_id: int | None, invoice: Invoice) -> bool:
    """True when no provider app is installed (books kept by hand)."""
    return True if _serves_invoice is None or setting_id is None else _serves_invoice(setting_id, invoice)


def refund_planner() -> Callable:
    if _refund_planner is None:
        raise RuntimeError("No refund planner registered (the refunds app plugs it in at start-up).")
    return _refund_planner

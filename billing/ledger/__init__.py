"""The ledger: the only writer of the books — `Balance`, `PaymentEntry` and `Invoice.status` (SPEC §11).

Every other app and every admin page asks it; none of them constructs, saves, updates or deletes those rows
(tests/architecture/test_one_writer.py fails if one does). Modules, one job each:

    locks       the books' row locks, always in the documented order (the only place that takes them)
    sql         every hand-written SQL statement, each beside the ORM query it stands for
    invoices    status derived from the open amount; finalize, cancel
    balances    the one split, the one bulk lock, booking money received (surplus unlinked)
    payments    a charge's money: booked, held in an entry, confirmed, removed when the charge fails
    refunds     a refund plan applied; refunds of money held in an entry; failed refunds
    disputes    the disputed lock, withdrawals where the money is, their exact reversal
    assignment  balances and credit notes linked to documents, unassigned, re-linked
    entries     resolving entries into balances, closing them by hand
    checks      `check_books()`: every violation of the invariants
    hooks       what the apps above plug in (tenancy, the refund plan)

Names are re-exported here lazily (`from billing import ledger; ledger.assign_balance(...)`), so importing one
module does not import them all.
"""

from importlib import import_module

_EXPORTS = {
    "BillingError": "base",
    "BooksMoved": "locks",
    "recompute_invoice_status": "invoices", "recompute_invoices": "invoices", "finalize_invoice": "invoices",
    "cancel_invoice": "invoices",
    "create_balance": "balances", "split_balance": "balances", "book_payment": "balances",
    "NamedInvoice": "payments", "Booked": "payments", "book_charge_money": "payments", "confirm_charge_money": "payments",
    "remove_failed_charge_money": "payments",
    "book_refund": "refunds", "record_failed_refund": "refunds", "RefundBooking": "refunds",
    "set_disputed_lock": "disputes", "book_withdrawal": "disputes", "book_reinstatement": "disputes",
    "assign_balance": "assignment", "unassign_balance": "assignment", "relink_balance": "assignment",
    "assign_credit_note": "assignment", "auto_assign": "assignment",
    "resolve_payment_entry": "entries", "close_entry": "entries",
    "check_books": "checks", "Violation": "checks",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'billing.ledger' has no attribute {name!r}")
    value = getattr(import_module(f"billing.ledger.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])

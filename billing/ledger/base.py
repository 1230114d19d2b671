"""What every ledger module shares: the error type and the checks of an amount before it is booked."""

from __future__ import annotations

from decimal import Decimal

from billing.money import MoneyError, normalize_currency, validate_precision


class BillingError(Exception):
    """A change to the books was refused; the message is a sentence for the user."""


def checked_currency(currency: str) -> str:
    try:
        return normalize_currency(currency)
    except MoneyError as exc:
        raise BillingError(str(exc)) from None


def checked_amount(amount, currency: str) -> Decimal:
    try:
        return validate_precision(Decimal(amount), currency)
    except (MoneyError, ArithmeticError) as exc:
        raise BillingError(str(exc)) from None

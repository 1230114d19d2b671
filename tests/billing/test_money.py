"""The one conversion between Decimal major units and Stripe's integer minor units."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.money import (
    THREE_DECIMAL,
    ZERO_DECIMAL,
    MoneyError,
    check_minimum_charge,
    exponent,
    from_minor_units,
    normalize_currency,
    to_minor_units,
)

TWO_DECIMAL = ["EUR", "USD", "GBP", "CHF"]


@given(minor=st.integers(min_value=0, max_value=10**12), currency=st.sampled_from(sorted(ZERO_DECIMAL) + TWO_DECIMAL))
def test_round_trip_from_minor_units(minor, currency):
    assert to_minor_units(from_minor_units(minor, currency), currency) == minor


@given(minor=st.integers(min_value=0, max_value=10**11).map(lambda n: n * 10), currency=st.sampled_from(sorted(THREE_DECIMAL)))
def test_round_trip_three_decimal_currencies(minor, currency):
    assert to_minor_units(from_minor_units(minor, currency), currency) == minor


@given(amount=st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False))
def test_two_decimal_amounts_convert_exactly(amount):
    assert from_minor_units(to_minor_units(amount, "EUR"), "EUR") == amount


@given(amount=st.decimals(min_value=Decimal("0.001"), max_value=1000, places=3).filter(lambda d: d != d.quantize(Decimal("0.01"))))
def test_a_lost_fraction_is_an_error_never_a_rounding(amount):
    with pytest.raises(MoneyError, match="more decimals"):
        to_minor_units(amount, "EUR")


@pytest.mark.parametrize("amount, currency, minor", [
    ("100", "JPY", 100), ("100.00", "EUR", 10000), ("1.230", "KWD", 1230), ("5", "ISK", 500), ("1000", "HUF", 100000),
    ("12", "twd", 1200), ("123.45", "HUF", 12345), ("0.05", "TWD", 5), ("7", "UGX", 700),
])
def test_special_cases(amount, currency, minor):
    assert to_minor_units(Decimal(amount), currency) == minor


@pytest.mark.parametrize("amount, currency, message", [
    ("1.5", "JPY", "more decimals"), ("1.234", "KWD", "last digit must be 0"), ("3.335", "KWD", "last digit must be 0"),
    ("5.5", "ISK", "more decimals"), ("7.5", "UGX", "more decimals"), ("1.234", "HUF", "more decimals"), ("1", "XYZ", "Unknown currency"),
    ("1", "", "Unknown currency"),
])
def test_refused_conversions(amount, currency, message):
    with pytest.raises(MoneyError, match=message):
        to_minor_units(Decimal(amount), currency)


def test_stripe_amounts_the_books_can_and_cannot_take():
    from billing.money import bookable_amount

    assert bookable_amount(12345, "huf") == Decimal("123.45")  # HUF charges may have two decimals (SPEC §3)
    assert bookable_amount(700, "UGX") == Decimal("7")
    with pytest.raises(MoneyError, match="more decimals"):
        bookable_amount(750, "UGX")  # not a whole unit
    with pytest.raises(MoneyError, match="Unknown currency"):
        bookable_amount(100, "abc")


def test_payout_places():
    from billing.money import payout_places

    assert (payout_places("HUF"), payout_places("TWD"), payout_places("EUR"), payout_places("JPY")) == (0, 0, 2, 0)


def test_floats_are_refused():
    with pytest.raises(MoneyError, match="float"):
        to_minor_units(1.1, "EUR")


def test_exponents_and_normalisation():
    assert (exponent("jpy"), exponent("EUR"), exponent("BHD")) == (0, 2, 3)
    assert normalize_currency(" eur ") == "EUR"


def test_minimum_charge():
    check_minimum_charge(Decimal("0.50"), "EUR")
    with pytest.raises(MoneyError, match="minimum charge"):
        check_minimum_charge(Decimal("0.49"), "EUR")


@pytest.mark.parametrize("value", ["1e26", "-1e16", "NaN", "Infinity", "1e-30"])
def test_absurd_amounts_are_errors_not_crashes(value):
    with pytest.raises(MoneyError):
        to_minor_units(Decimal(value), "EUR")

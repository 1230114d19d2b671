"""Amounts and dates as a customer reads them, in their language: "€119.00" in English, "119,00 €" in German.

The one formatter for every customer page, email and receipt (CLDR's patterns through Babel), so a page never
switches between "€119.00" and "119.00 EUR". Staff pages and error messages keep billing.money.format_amount.
"""

import re
from copy import copy
from datetime import date
from decimal import Decimal
from functools import cache

from babel import Locale, UnknownLocaleError
from babel.dates import format_date as babel_format_date
from babel.numbers import NumberPattern

from billing.money import display_places, normalize_currency, quantize


@cache
def _locale(language: str) -> Locale:
    try:
        return Locale.parse((language or "en").replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


@cache
def _currency_pattern(language: str, places: int) -> NumberPattern:
    # The locale's own currency pattern, with this currency's number of decimals as a person uses them (ISK, HUF
    # and TWD in whole units, where CLDR would print two).
    pattern = copy(_locale(language).currency_formats["standard"])
    pattern.frac_prec = (places, places)
    return pattern


# CLDR's currency spacing, which Babel leaves out: a letter code never touches the digits ("CHF 5.00", not "CHF5.00").
_CODE_BEFORE_DIGIT = re.compile(r"([A-Z]{2,3})(?=[\d-])")


def format_money(amount: Decimal, currency: str, language: str = "en") -> str:
    code = normalize_currency(currency)
    text = _currency_pattern(language or "en", display_places(code)).apply(
        quantize(Decimal(amount), code), _locale(language), currency=code, currency_digits=False)
    return _CODE_BEFORE_DIGIT.sub("\\1\u00a0", text)


def format_day(day: date, language: str = "en") -> str:
    """A date as a customer reads it: "31 January 2027" / "31. Januar 2027"."""
    return babel_format_date(day, format="long", locale=_locale(language))

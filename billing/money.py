"""Money: Decimal major units plus an ISO 4217 currency, and the one conversion to Stripe's minor units.

Stripe's currency notes (SPEC §3): zero-decimal currencies are sent as whole units; three-decimal currencies
are sent in thousandths but the last digit must be 0; ISK and UGX are whole units that Stripe expects
multiplied by 100; HUF and TWD take two decimals in charges and refunds, whole units only in payouts.
"""

from decimal import ROUND_DOWN, Decimal, InvalidOperation

ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF VND VUV XAF XOF XPF".split())
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())
# Whole units, sent to Stripe multiplied by 100 (Stripe's "special cases").
WHOLE_UNITS_SENT_TIMES_100 = frozenset("ISK UGX".split())
# Two decimals in charges and refunds, whole units only in payouts.
WHOLE_UNIT_PAYOUTS = frozenset("HUF TWD".split())

# Stripe's minimum charge amounts in major units (https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts).
MINIMUM_CHARGE = {
    "USD": Decimal("0.50"), "EUR": Decimal("0.50"), "GBP": Decimal("0.30"), "CHF": Decimal("0.50"),
    "AUD": Decimal("0.50"), "CAD": Decimal("0.50"), "DKK": Decimal("2.50"), "NOK": Decimal("3.00"),
    "SEK": Decimal("3.00"), "PLN": Decimal("2.00"), "CZK": Decimal("15.00"), "HUF": Decimal("175.00"),
    "JPY": Decimal("50"), "HKD": Decimal("4.00"), "MXN": Decimal("10"), "SGD": Decimal("0.50"),
    "NZD": Decimal("0.50"), "BGN": Decimal("1.00"), "RON": Decimal("2.00"), "INR": Decimal("0.50"),
    "THB": Decimal("10"), "AED": Decimal("2.00"), "BRL": Decimal("0.50"), "MYR": Decimal("2"),
}

# ISO 4217 codes Stripe can settle; used to reject unknown currencies with a clear error.
KNOWN_CURRENCIES = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BWP BYN BZD
    CAD CDF CHF CLP CNY COP CRC CVE CZK DJF DKK DOP DZD EGP ETB EUR FJD FKP GBP GEL GIP GMD GNF GTQ
    GYD HKD HNL HTG HUF IDR ILS INR ISK JMD JOD JPY KES KGS KHR KMF KRW KWD KYD KZT LAK LBP LKR LRD
    LSL MAD MDL MGA MKD MMK MNT MOP MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK
    PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SEK SGD SHP SLE SOS SRD STD SZL THB TJS TND TOP
    TRY TTD TWD TZS UAH UGX USD UYU UZS VND VUV WST XAF XCD XOF XPF YER ZAR ZMW""".split()
)


# The books store 18 digits with 3 decimals.
MAX_AMOUNT = Decimal(10) ** 15


class MoneyError(ValueError):
    """An amount or currency that cannot be represented exactly; the message is for the user."""


def normalize_currency(currency: str) -> str:
    code = (currency or "").strip().upper()
    if code not in KNOWN_CURRENCIES:
        raise MoneyError(f"Unknown currency {currency!r}.")
    return code


def exponent(currency: str) -> int:
    """Decimal places of the currency as Stripe counts them in the amount it expects."""
    code = normalize_currency(currency)
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def display_places(currency: str) -> int:
    """Decimal places an amount of the currency may have in the books and in a charge or refund."""
    code = normalize_currency(currency)
    if code in WHOLE_UNITS_SENT_TIMES_100:
        return 0
    return exponent(code)


def payout_places(currency: str) -> int:
    """Decimal places of a payout amount (HUF and TWD pay out whole units only)."""
    code = normalize_currency(currency)
    return 0 if code in WHOLE_UNIT_PAYOUTS else display_places(code)


def to_decimal(value) -> Decimal:
    if isinstance(value, float):
        raise MoneyError("Amounts must not be floats.")
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise MoneyError(f"{value!r} is not an amount.") from None
    if not amount.is_finite():
        raise MoneyError(f"{value!r} is not an amount.")
    if abs(amount) >= MAX_AMOUNT:
        raise MoneyError(f"{value} is too large an amount.")
    return amount


def validate_precision(amount: Decimal, currency: str, *, places: int | None = None) -> Decimal:
    """Raise if `amount` has more decimals than the currency allows; return it quantized."""
    places = display_places(currency) if places is None else places
    quantum = Decimal(1).scaleb(-places)
    amount = to_decimal(amount)
    if amount != amount.quantize(quantum, rounding=ROUND_DOWN):
        raise MoneyError(f"{amount} has more decimals than {normalize_currency(currency)} allows ({places}).")
    return amount.quantize(quantum)


def to_minor_units(amount, currency: str) -> int:
    """Decimal major units -> Stripe integer amount. Never rounds: a lost fraction is an error."""
    code = normalize_currency(currency)
    value = validate_precision(to_decimal(amount), code)
    minor = value.scaleb(exponent(code))
    if minor != minor.to_integral_value():  # unreachable after validate_precision, kept as a guard
        raise MoneyError(f"{value} {code} cannot be expressed in minor units.")
    minor_int = int(minor)
    if code in THREE_DECIMAL and minor_int % 10 != 0:
        raise MoneyError(f"Stripe accepts {code} amounts only in steps of 0.010 {code} (the last digit must be 0), "
                         f"so {value} {code} cannot be sent.")
    return minor_int


def from_minor_units(minor: int, currency: str) -> Decimal:
    """Stripe integer amount -> Decimal major units, as Stripe reports it (for ISK and UGX an amount that is not a
    whole unit keeps its fraction: validate_precision then says the books cannot take it)."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise MoneyError(f"Stripe amount {minor!r} is not an integer.")
    code = normalize_currency(currency)
    return Decimal(minor).scaleb(-exponent(code)).quantize(Decimal(1).scaleb(-exponent(code)))


def bookable_amount(minor: int, currency: str) -> Decimal:
    """A Stripe amount the books can take, or MoneyError with the reason (unknown currency, a fraction the currency
    does not have, more than the books hold)."""
    return validate_precision(from_minor_units(minor, currency), currency)


def check_minimum_charge(amount: Decimal, currency: str) -> None:
    code = normalize_currency(currency)
    minimum = MINIMUM_CHARGE.get(code)
    if minimum is not None and amount < minimum:
        raise MoneyError(f"{format_amount(amount, code)} is below Stripe's minimum charge of {format_amount(minimum, code)}.")


def quantize(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-display_places(currency)))


def format_amount(amount: Decimal, currency: str) -> str:
    """Plain, locale-neutral format used in messages: '100.00 EUR'."""
    code = normalize_currency(currency)
    return f"{quantize(Decimal(amount), code)} {code}"

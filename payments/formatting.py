"""Amounts as a customer reads them: "100,00 €" in German, "€100.00" in English."""

from decimal import Decimal

from billing.money import display_places

SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "CHF": "CHF"}


def format_money(amount: Decimal, currency: str, language: str = "en") -> str:
    places = display_places(currency)
    number = f"{Decimal(amount):,.{places}f}"  # 1,234.50
    symbol = SYMBOLS.get(currency, currency)
    if language.startswith("de"):
        number = number.replace(",", "\u2009").replace(".", ",").replace("\u2009", ".")  # 1.234,50
        return f"{number}\u00a0{symbol}"
    if len(symbol) > 1:
        return f"{symbol}\u00a0{number}"
    return f"{symbol}{number}"

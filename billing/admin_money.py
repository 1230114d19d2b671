"""Amounts in the admin as a ledger shows them: in their currency's decimals (119.00 EUR, 5000 JPY, 3.500 KWD).

The books store three decimals for every currency (billing.models.MONEY); Django's admin would show them all
("-119.000"). Every admin list, page and message formats amounts with `billing.money.format_amount` through these
helpers instead.
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from billing.money import MoneyError, format_amount


def money(amount: Decimal | None, currency: str) -> str:
    """'-119.00 EUR'; '-' when there is no amount; the raw value when the currency is unknown to the books (an entry
    Stripe reported in a currency we cannot take keeps its minor units, currency XXX)."""
    if amount is None:
        return "-"
    try:
        return format_amount(amount, currency)
    except MoneyError:
        return f"{amount} {currency}".strip()


def money_column(field: str = "amount", *, currency_field: str = "currency", description=None):
    """A list/page column showing `field` in its row's currency, sortable by the field. Its CSS class is
    `field-<field>_display`. Works as a ModelAdmin attribute (called as a method) and as a plain callable."""

    def display(*args):
        obj = args[-1]  # (model_admin, obj) as an admin's attribute, (obj) as a callable
        return money(getattr(obj, field), getattr(obj, currency_field))

    display.__name__ = f"{field}_display"
    return admin.display(description=description or _(field.replace("_", " ")), ordering=field)(display)


class FormattedAmounts:
    """A ModelAdmin mixin: read-only money fields on the change page shown in their currency's decimals.

    Names in `money_fields` that are read-only are replaced on the page by their `<name>_display` column, which the
    admin class defines (e.g. `amount_display = money_column("amount")`)."""

    money_fields: tuple[str, ...] = ("amount",)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return fields + [f"{name}_display" for name in self.money_fields if name in fields and f"{name}_display" not in fields]

    def get_fields(self, request, obj=None):
        readonly = set(super().get_readonly_fields(request, obj))
        shown = []
        for name in super().get_fields(request, obj):
            if name.endswith("_display") and name.removesuffix("_display") in self.money_fields:
                continue  # placed where its field was, below
            shown.append(f"{name}_display" if name in self.money_fields and name in readonly else name)
        return shown


class MoneyOnViewPages:
    """A ModelAdmin mixin for records nobody edits in the admin (view-only pages): every money field of the model (the
    books' three-decimal DecimalField beside a currency) is shown on the page in its currency's decimals, in place, by
    a `<field>_display` column made here unless the admin defines its own. `source_*` amounts are in `source_currency`."""

    def money_fields(self) -> dict[str, str]:
        from billing.models import MONEY

        names = {field.name for field in self.model._meta.concrete_fields}
        found = {}
        for field in self.model._meta.concrete_fields:
            shape = (getattr(field, "max_digits", None), getattr(field, "decimal_places", None))
            if shape == (MONEY["max_digits"], MONEY["decimal_places"]):
                currency = "source_currency" if field.name.startswith("source_") else "currency"
                if currency in names:
                    found[field.name] = currency
        return found

    def __getattr__(self, name):
        if name.endswith("_display"):
            currency = self.money_fields().get(name.removesuffix("_display"))
            if currency is not None:
                return money_column(name.removesuffix("_display"), currency_field=currency)
        raise AttributeError(name)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return fields + [f"{name}_display" for name in self.money_fields() if f"{name}_display" not in fields]

    def get_fields(self, request, obj=None):
        money = self.money_fields()
        shown = []
        for name in super().get_fields(request, obj):
            name = f"{name}_display" if name in money else name
            if name not in shown:
                shown.append(name)
        return shown

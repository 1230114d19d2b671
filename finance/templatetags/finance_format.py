"""`{{ amount|amount:currency }}`: an amount with its currency's decimal places (JPY 0, EUR 2, KWD 3), as billing.money
formats it everywhere else in the admin."""

from django import template

from billing.admin_money import money

register = template.Library()


@register.filter
def amount(value, currency) -> str:
    return money(value, currency)


@register.filter
def seconds(value) -> str:
    """A lag in seconds, to a tenth; '-' when nothing was processed."""
    return "-" if value is None else f"{value:.1f} s"

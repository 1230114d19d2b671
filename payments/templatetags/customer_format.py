"""`{% money amount currency %}` and `{{ day|customer_date }}`: the customer's formats in the active language (the
page's, or the account's inside an email or receipt), through payments.formatting."""

from django import template
from django.utils.translation import get_language

from payments.formatting import format_day, format_money

register = template.Library()


@register.simple_tag
def money(amount, currency) -> str:
    return format_money(amount, currency, get_language() or "en")


@register.filter
def customer_date(day) -> str:
    if day is None:
        return ""
    if hasattr(day, "date") and callable(day.date):  # an aware datetime: the day it was in the site's time zone
        from django.utils import timezone

        day = timezone.localtime(day).date() if timezone.is_aware(day) else day.date()
    return format_day(day, get_language() or "en")

from django import template
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext

from refunds.selectors import can_refund

register = template.Library()


@register.simple_tag(takes_context=True)
def refund_button(context, balance):
    """The Refund button: only for finance users, only on unlocked confirmed Stripe payment balances. Styled as the
    page's primary action (billing/admin.css), not like History."""
    user = context["request"].user
    if not user.has_perm("refunds.add_refundrequest") or not can_refund(balance):
        return ""
    return format_html('<li><a href="{}" class="refund-button">{}</a></li>', reverse("refunds:refund-balance", args=[balance.pk]),
                       gettext("Refund"))

"""Reads of payments: transactions per charge, saved instruments."""

from payments.models import PaymentInstrument, PaymentTransaction


def transaction_for_charge(charge_id: str) -> PaymentTransaction | None:
    return PaymentTransaction.objects.filter(charge_id=charge_id).first()


def active_instrument(*, account, provider_setting) -> PaymentInstrument | None:
    """The most recently saved active instrument of the account for this setting."""
    return (
        PaymentInstrument.objects.filter(account=account, provider_setting=provider_setting, active=True)
        .order_by("-activated_at", "-id")
        .first()
    )


def payment_link_for(invoice) -> str:
    """The absolute payment link of an invoice (signed, expiring)."""
    from django.conf import settings
    from django.urls import reverse

    from payments.tokens import make_token

    return settings.SITE_URL + reverse("payments:pay", args=[make_token(invoice.pk)])


def save_method_link_for(invoice) -> str:
    from django.conf import settings
    from django.urls import reverse

    from payments.tokens import SAVE_METHOD, make_token

    return settings.SITE_URL + reverse("payments:save-method", args=[make_token(invoice.pk, purpose=SAVE_METHOD)])

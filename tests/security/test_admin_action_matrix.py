"""Every admin action × every kind of user: offered only to who may run it, and without effect for everyone else.

Who may (the rule): superusers everything; the Finance group resolves payment entries (it has
change_paymententry) and nothing else here; staff without permissions and anonymous users nothing.
An action Django does not offer to a user is refused when posted anyway ("No action selected").
"""

import json
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.test import Client
from django.urls import reverse

from billing.constants import InvoiceStatus
from billing.models import Balance, Invoice
from payments.models import Payout
from payments.services.payouts import fetch_and_reconcile
from tests.factories import (
    AccountFactory,
    BalanceFactory,
    InvoiceFactory,
    PaymentEntryFactory,
    ProviderSettingFactory,
)
from tests.helpers import booked_charges
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db

KINDS = ["anonymous", "staff", "finance", "superuser"]


def client_for(kind: str) -> Client:
    client = Client()
    if kind != "anonymous":
        user = User.objects.create_user(f"{kind}-user", password="pw-123456", is_staff=True, is_superuser=kind == "superuser")
        if kind == "finance":
            user.groups.add(Group.objects.get(name="Finance"))
        client.force_login(user)
    return client


def _finalize(setting, fake_stripe):
    invoice = InvoiceFactory(status=InvoiceStatus.DRAFT)
    return "admin:billing_invoice_changelist", invoice.pk, lambda response, stripe_calls: Invoice.objects.get(pk=invoice.pk).status == "open"


def _cancel(setting, fake_stripe):
    invoice = InvoiceFactory()
    return "admin:billing_invoice_changelist", invoice.pk, lambda response, stripe_calls: Invoice.objects.get(pk=invoice.pk).status == "cancelled"


def _email_link(setting, fake_stripe):
    invoice = InvoiceFactory()
    sent_before = len(mail.outbox)
    return "admin:billing_invoice_changelist", invoice.pk, lambda response, stripe_calls: len(mail.outbox) > sent_before


def _collect(setting, fake_stripe):
    invoice = InvoiceFactory()  # no saved instrument: the action runs, answers "no instrument" and charges nothing
    return "admin:billing_invoice_changelist", invoice.pk, lambda response, stripe_calls: f"{invoice.number}: no instrument" in response


def _auto_assign(setting, fake_stripe):
    account = AccountFactory()
    InvoiceFactory(account=account, business_entity=account.business_entity, amount=Decimal("30.00"))
    unassigned = BalanceFactory(invoice=None, account=account, amount=Decimal("-30.00"))
    return "admin:billing_account_changelist", account.pk, lambda response, stripe_calls: Balance.objects.get(pk=unassigned.pk).invoice_id is not None


def _resolve(setting, fake_stripe):
    invoice = InvoiceFactory()
    entry = PaymentEntryFactory(provider_setting=setting, invoice=invoice, account=invoice.account, amount=Decimal("-10.00"))
    return "admin:billing_paymententry_changelist", entry.pk, lambda response, stripe_calls: type(entry).objects.get(pk=entry.pk).status == "resolved"


def _test_connection(setting, fake_stripe):
    return "admin:providers_providersetting_changelist", setting.pk, lambda response, stripe_calls: stripe_calls > 0


def _replay(setting, fake_stripe):
    event = WebhookEvent.objects.create(provider_setting=setting, stripe_event_id="evt_matrix", type="charge.succeeded",
                                        payload=json.dumps({"id": "evt_matrix", "type": "charge.succeeded"}), status="failed")
    return "admin:webhooks_webhookevent_changelist", event.pk, lambda response, stripe_calls: WebhookEvent.objects.get(pk=event.pk).status == "received"


def _export_payouts(setting, fake_stripe):
    booked_charges(fake_stripe, setting, 1)
    payout = fetch_and_reconcile(setting, fake_stripe.run_payout()["id"])
    return "admin:payments_payout_changelist", payout.pk, lambda response, stripe_calls: f"line,{payout.stripe_payout_id}" in response


def _rematch_payout(setting, fake_stripe):
    booked_charges(fake_stripe, setting, 1)
    payout = fetch_and_reconcile(setting, fake_stripe.run_payout()["id"])
    before = payout.reconciled_at
    return "admin:payments_payout_changelist", payout.pk, lambda response, stripe_calls: Payout.objects.get(pk=payout.pk).reconciled_at != before


ACTIONS = {
    "finalize_action": (_finalize, {"superuser"}),
    "cancel_action": (_cancel, {"superuser"}),
    "email_payment_link_action": (_email_link, {"superuser"}),
    "collect_off_session_action": (_collect, {"superuser"}),
    "auto_assign_action": (_auto_assign, {"superuser"}),
    "resolve_action": (_resolve, {"superuser", "finance"}),
    "test_connection_action": (_test_connection, {"superuser"}),
    "replay": (_replay, {"superuser"}),
    "export_csv_action": (_export_payouts, {"superuser", "finance"}),
    "rematch_action": (_rematch_payout, {"superuser", "finance"}),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_admin_action(kind, action, fake_stripe, celery_conf):
    setting = ProviderSettingFactory()
    make, allowed = ACTIONS[action]
    changelist_name, object_id, effect = make(setting, fake_stripe)
    changelist = reverse(changelist_name)
    client = client_for(kind)
    stripe_calls_before = len(fake_stripe.requests)

    page = client.get(changelist)
    offered = page.status_code == 200 and f'value="{action}"' in page.content.decode()
    assert offered == (kind in allowed), (kind, action, page.status_code)

    response = client.post(changelist, {"action": action, "_selected_action": [object_id]}, follow=True)
    assert response.status_code in (200, 403), (kind, action, response.status_code)
    body = b"".join(response.streaming_content) if response.streaming else response.content  # CSV exports are streamed
    happened = effect(body.decode(), len(fake_stripe.requests) - stripe_calls_before)
    assert happened == (kind in allowed), (kind, action, "allowed but without effect" if kind in allowed else "refused but it happened")
    if kind not in allowed:
        assert len(fake_stripe.requests) == stripe_calls_before, (kind, action, "a refused action called Stripe")

"""Property test of the books (SPEC §11): random histories of payments, SEPA successes and failures, our and Dashboard
refunds, disputes (several per charge, partial, withdrawn, reinstated, won, lost, inquiries), credit assignments and
entry resolution, with Stripe's events delivered late, out of order and more than once — and `check_books()` finds
nothing wrong after every single step.

Everything goes through the product's doors: the fake Stripe at the HTTP boundary, the signed webhook endpoint, the
refund service, the ledger's assignment and resolution services.
"""

import os
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import ledger
from billing.constants import MONEY_RECEIVED_KINDS, BalanceStatus, BalanceType, PaymentEntryStatus
from billing.models import Balance, PaymentEntry
from providers.stripe import gateway
from refunds.services import RefundError, refund_payment_balance
from tests.factories import AccountFactory, CreditNoteFactory, InvoiceFactory
from tests.helpers import deliver

pytestmark = [pytest.mark.django_db, pytest.mark.services]

ACTIONS = ["card", "card_overpaid", "card_partial", "sepa_ok", "sepa_fail", "unmatched", "other_currency", "our_refund",
           "our_refund", "dashboard_refund", "dashboard_refund", "dispute_lost", "dispute_won", "dispute_open", "inquiry",
           "assign_credit", "auto_assign", "resolve_entry", "deliver", "deliver", "deliver_all", "deliver_all"]


class World:
    def __init__(self, setting, fake_stripe, client, capture):
        self.setting, self.fake, self.client, self.capture = setting, fake_stripe, client, capture
        account = AccountFactory()
        self.invoices = [InvoiceFactory(account=account, business_entity=account.business_entity, amount=Decimal("100.00"))
                         for _ in range(3)]
        self.credit = CreditNoteFactory(account=account, business_entity=account.business_entity, amount=Decimal("-30.00"))
        self.charges: list[str] = []
        self.delivered = 0
        self.seen = len(fake_stripe.events)

    def pending_events(self):
        return self.fake.events_of()[self.seen:]

    def pay(self, invoice, *, amount=None, method="pm_card_visa", currency=None, metadata=True):
        key = f"prop-{invoice.pk}-{len(self.charges)}-{method}"
        meta = {"invoice_id": invoice.pk, "provider_setting_id": self.setting.pk} if metadata else {}
        try:
            intent = gateway.create_payment_intent(
                self.setting, amount=amount or invoice.amount, currency=currency or invoice.currency, idempotency_key=key,
                payment_method_types=["sepa_debit" if "sepa" in method else "card"], metadata=meta, payment_method=method, confirm=True)
        except gateway.PaymentDeclined as exc:
            intent = exc.payment_intent
        if intent and intent.get("latest_charge"):
            self.charges.append(intent["latest_charge"])
            return intent["latest_charge"]
        return None

    def deliver(self, events):
        for event in events:
            deliver(self.client, self.setting, event, self.capture)


def run_step(world: World, action: str, data) -> None:
    invoice = data.draw(st.sampled_from(world.invoices), label="invoice")
    charge = data.draw(st.sampled_from(world.charges), label="charge") if world.charges else None
    if action in ("card", "card_overpaid", "card_partial"):
        amount = {"card": None, "card_overpaid": Decimal("150.00"), "card_partial": Decimal("40.00")}[action]
        world.pay(invoice, amount=amount)
    elif action in ("sepa_ok", "sepa_fail"):
        debit = world.pay(invoice, method="pm_sepa_debit")
        if debit and data.draw(st.booleans(), label="settled now"):
            world.fake.settle_charge(debit, succeed=action == "sepa_ok")
    elif action == "unmatched":
        world.pay(invoice, metadata=False)
    elif action == "other_currency":
        world.pay(invoice, currency="USD")
    elif action == "our_refund" and charge:
        balance = Balance.objects.filter(transaction_number=charge, type=BalanceType.PAYMENT, locked=False,
                                         status=BalanceStatus.CONFIRMED).order_by("id").first()
        if balance is not None:
            amount = data.draw(st.sampled_from(["10.00", "25.00", "100.00", "150.00"]), label="refund amount")
            try:
                refund_payment_balance(balance, amount=amount, confirm_overrefund=data.draw(st.booleans(), label="confirm"))
            except RefundError:
                pass  # more than is refundable, an overrefund not confirmed: refused, nothing written
    elif action == "dashboard_refund" and charge:
        stripe_charge = world.fake.objects.get(charge, {})
        left = stripe_charge.get("amount", 0) - stripe_charge.get("amount_refunded", 0)
        if stripe_charge.get("status") == "succeeded" and left > 0:
            world.fake.create_dashboard_refund(charge, min(left, data.draw(st.sampled_from([1000, 2500, 10000]), label="dashboard")))
    elif action.startswith("dispute") or action == "inquiry":
        if charge and world.fake.objects.get(charge, {}).get("status") == "succeeded":
            amount = data.draw(st.sampled_from([None, 3000]), label="disputed amount")
            outcome = {"dispute_lost": "lost", "dispute_won": "won", "dispute_open": None, "inquiry": "closed"}[action]
            world.fake.dispute_charge(charge, outcome=outcome, amount=amount, inquiry=action == "inquiry")
    elif action == "assign_credit":
        try:
            ledger.assign_credit_note(world.credit, invoice=invoice)
        except ledger.BillingError:
            pass
    elif action == "auto_assign":
        ledger.auto_assign(account=invoice.account, currency="EUR")
    elif action == "resolve_entry":
        entry = PaymentEntry.objects.filter(kind__in=MONEY_RECEIVED_KINDS, status=PaymentEntryStatus.OPEN, parent=None,
                                            transaction_number__in=world.charges).first()
        if entry is not None:
            try:
                ledger.resolve_payment_entry(entry, account=invoice.account)
            except ledger.BillingError:
                pass
    elif action == "deliver":
        events = world.pending_events()
        if events:
            picks = data.draw(st.lists(st.sampled_from(events), max_size=6), label="events, any order, duplicates")
            world.deliver(picks)
    elif action == "deliver_all":
        events = world.pending_events()
        world.deliver(data.draw(st.permutations(events), label="all so far, any order"))


@settings(max_examples=int(os.environ.get("BOOKS_PROPERTY_EXAMPLES", "25")), deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_history_leaves_sound_books_after_every_step(data, setting, fake_stripe, client, django_capture_on_commit_callbacks):
    fake_stripe.reset()
    savepoint = transaction.savepoint()  # each history starts from the same books (hypothesis replays what fails)
    try:
        world = World(setting, fake_stripe, client, django_capture_on_commit_callbacks)
        for step in range(data.draw(st.integers(min_value=3, max_value=14), label="steps")):
            action = data.draw(st.sampled_from(ACTIONS), label=f"step {step}")
            run_step(world, action, data)
            assert ledger.check_books() == [], f"after {action}"
        # Stripe's whole story, every event at least once and in a random order: still sound.
        events = world.pending_events()
        world.deliver(data.draw(st.permutations(events), label="the rest, any order") + events)
        assert ledger.check_books() == []
    finally:
        transaction.savepoint_rollback(savepoint)

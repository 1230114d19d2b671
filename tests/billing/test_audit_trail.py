"""The audit trail (SPEC §13): each action on money writes exactly one entry with who, what and the amounts, in the
transaction of the change (a refused or rolled-back change leaves none), never a secret; read-only in the admin and
shown on the invoice and balance pages."""

from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.db import transaction
from django.urls import reverse

from billing import ledger
from billing.constants import AuditAction, PaymentEntryStatus
from billing.models import AuditEntry, Balance
from payments.services.collection import collect_invoice_off_session, send_payment_link
from providers.models import ProviderSetting
from refunds.services import RefundError, refund_payment_balance
from tests.factories import (
    TEST_SECRET_KEY,
    TEST_WEBHOOK_SECRET,
    AccountFactory,
    BalanceFactory,
    InvoiceFactory,
    PaymentEntryFactory,
    ProviderSettingFactory,
)
from tests.payments.test_future_payments import pay_on_page
from webhooks.models import EventStatus, WebhookEvent
from webhooks.services import replay_events

pytestmark = pytest.mark.django_db


@pytest.fixture
def clerk():
    return User.objects.create_user("clerk", password="pw-clerk-123", is_staff=True)


def only_entry(action) -> AuditEntry:
    entries = list(AuditEntry.objects.all())
    assert [entry.action for entry in entries] == [action], entries
    return entries[0]


# --- Each action writes one entry -------------------------------------------------------------------


def test_a_refund_writes_who_asked_and_the_refundable_amount_before_and_after(stripe_charge, payment_balances, fake_stripe, clerk):
    balance, = payment_balances(stripe_charge(Decimal("100.00")), "-100")
    refund_payment_balance(balance, amount=Decimal("25.00"), requested_by=clerk, idempotency_key="audit-1")
    entry = only_entry(AuditAction.REFUND_REQUESTED)
    assert (entry.user, entry.amount_before, entry.amount_after, entry.currency) == (clerk, Decimal("100"), Decimal("75"), "EUR")
    assert entry.balance_id == balance.pk and entry.invoice_id == balance.invoice_id
    assert "25.00 EUR" in entry.detail and entry.object_type == "refunds.RefundRequest"
    # The same form submitted again refunds nothing and writes nothing.
    refund_payment_balance(balance, amount=Decimal("25.00"), requested_by=clerk, idempotency_key="audit-1")
    assert AuditEntry.objects.count() == 1


def test_a_confirmed_overrefund_is_its_own_entry(stripe_charge, payment_balances, fake_stripe, clerk):
    available, locked = payment_balances(stripe_charge(Decimal("100.00")), "-60", "-40")
    Balance.objects.filter(pk=locked.pk).update(locked=True, lock_reason="Refund via payment provider")
    refund_payment_balance(available, amount=Decimal("100.00"), requested_by=clerk, confirm_overrefund=True, idempotency_key="o-1")
    entries = {entry.action: entry for entry in AuditEntry.objects.all()}
    assert sorted(entries) == sorted([AuditAction.REFUND_REQUESTED, AuditAction.OVERREFUND_CONFIRMED])
    overrefund = entries[AuditAction.OVERREFUND_CONFIRMED]
    assert (overrefund.user, overrefund.amount_before, overrefund.amount_after) == (clerk, Decimal("60"), Decimal("100"))
    assert "40.00 EUR" in overrefund.detail


def test_a_refused_refund_leaves_no_entry(stripe_charge, payment_balances, fake_stripe, clerk):
    balance, = payment_balances(stripe_charge(Decimal("100.00")), "-100")
    with pytest.raises(RefundError):
        refund_payment_balance(balance, amount=Decimal("150.00"), requested_by=clerk)
    assert not AuditEntry.objects.exists()


def test_assigning_a_balance_records_the_documents_open_amount(clerk):
    invoice = InvoiceFactory(amount=Decimal("100.00"))
    balance = BalanceFactory(invoice=None, account=invoice.account, amount=Decimal("-40.00"))
    ledger.assign_balance(balance, document=invoice, user=clerk)
    entry = only_entry(AuditAction.BALANCE_ASSIGNED)
    assert (entry.user, entry.invoice, entry.balance_id) == (clerk, invoice, balance.pk)
    assert (entry.amount_before, entry.amount_after, entry.currency) == (Decimal("100"), Decimal("60"), "EUR")


def test_relinking_is_one_entry_naming_both_documents(clerk):
    first = InvoiceFactory(amount=Decimal("100.00"))
    second = InvoiceFactory(account=first.account, amount=Decimal("50.00"))
    balance = BalanceFactory(invoice=first, amount=Decimal("-30.00"))
    ledger.relink_balance(balance, document=second, user=clerk)
    entry = only_entry(AuditAction.BALANCE_RELINKED)
    assert entry.invoice == second and (entry.amount_before, entry.amount_after) == (Decimal("50"), Decimal("20"))
    assert first.number in entry.detail and second.number in entry.detail


def test_a_refused_or_rolled_back_assignment_leaves_no_entry(clerk):
    invoice = InvoiceFactory(amount=Decimal("100.00"))
    dollars = BalanceFactory(invoice=None, account=invoice.account, amount=Decimal("-40.00"), currency="USD")
    with pytest.raises(ledger.BillingError):
        ledger.assign_balance(dollars, document=invoice, user=clerk)
    balance = BalanceFactory(invoice=None, account=invoice.account, amount=Decimal("-40.00"))
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        ledger.assign_balance(balance, document=invoice, user=clerk)
        assert AuditEntry.objects.count() == 1  # written with the change ...
        1 / 0
    assert not AuditEntry.objects.exists()  # ... and gone with it
    assert Balance.objects.get(pk=balance.pk).invoice_id is None


def test_unassigning_is_recorded_with_the_open_amount_growing_back(clerk):
    invoice = InvoiceFactory(amount=Decimal("100.00"))
    balance = BalanceFactory(invoice=invoice, amount=Decimal("-100.00"))
    ledger.unassign_balance(balance, user=clerk)
    entry = only_entry(AuditAction.BALANCE_UNASSIGNED)
    assert (entry.amount_before, entry.amount_after) == (Decimal("0"), Decimal("100"))


def test_resolving_and_closing_entries(clerk):
    account = AccountFactory()
    entry = PaymentEntryFactory(account=account, amount=Decimal("-80.00"))
    balance = ledger.resolve_payment_entry(entry, user=clerk)
    resolved = only_entry(AuditAction.ENTRY_RESOLVED)
    assert (resolved.user, resolved.balance_id, resolved.amount_before, resolved.amount_after) == (clerk, balance.pk, Decimal("-80"),
                                                                                                   Decimal("-80"))
    assert resolved.object_type == "billing.PaymentEntry" and resolved.object_id == str(entry.pk)
    AuditEntry.objects.all().delete()
    other = PaymentEntryFactory(kind="other", transaction_number="bank-statement-7", amount=Decimal("10.00"))
    ledger.close_entry(other, note="Paid back by bank transfer", user=clerk)
    closed = only_entry(AuditAction.ENTRY_CLOSED)
    assert "Paid back by bank transfer" in closed.detail and closed.user == clerk and closed.amount_before == Decimal("10")
    assert type(other).objects.get(pk=other.pk).status == PaymentEntryStatus.RESOLVED


def test_replaying_events_writes_one_entry_per_event(clerk):
    setting = ProviderSettingFactory()
    events = [WebhookEvent.objects.create(provider_setting=setting, stripe_event_id=f"evt_audit_{n}", type="charge.succeeded",
                                          payload="{}", status=EventStatus.FAILED) for n in range(2)]
    with transaction.atomic():  # no broker needed: the enqueueing runs on commit, which this test never reaches
        assert replay_events([event.pk for event in events], user=clerk) == 2
        entries = list(AuditEntry.objects.order_by("object_id"))
        assert [(e.action, e.user, e.object_id) for e in entries] == [(AuditAction.EVENT_REPLAYED, clerk, str(event.pk)) for event in events]
        assert all("failed" in e.detail for e in entries)
        transaction.set_rollback(True)


def test_emailing_a_payment_link(settings, clerk):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    ProviderSettingFactory()
    invoice = InvoiceFactory(amount=Decimal("119.00"))
    send_payment_link(invoice, user=clerk)
    entry = only_entry(AuditAction.PAYMENT_LINK_EMAILED)
    assert (entry.invoice, entry.user, entry.amount_after, entry.currency) == (invoice, clerk, Decimal("119"), "EUR")
    assert invoice.account.email in entry.detail and len(mail.outbox) == 1


def test_an_off_session_attempt_is_recorded_with_its_outcome(client, fake_stripe, django_capture_on_commit_callbacks):
    from tests.helpers import deliver

    setting = ProviderSettingFactory(method_card=True, enable_future_payments=True, future_payments_active=True,
                                     future_payments_changeable=True)
    first = InvoiceFactory()
    pay_on_page(client, setting, first, "pm_card_visa")
    for event in fake_stripe.events_of():
        deliver(client, setting, event, django_capture_on_commit_callbacks)
    AuditEntry.objects.all().delete()
    due = InvoiceFactory(account=first.account, due_date=date.today(), amount=Decimal("42.00"))
    assert collect_invoice_off_session(due) == "succeeded"
    entry = only_entry(AuditAction.OFF_SESSION_ATTEMPTED)
    assert (entry.invoice, entry.user, entry.amount_before) == (due, None, Decimal("42"))  # the scheduled task: the system
    assert "42.00 EUR" in entry.detail and "succeeded" in entry.detail


def test_a_provider_setting_change_names_the_fields_and_never_a_secret(admin_client):
    setting = ProviderSettingFactory(name="Main")
    form = {"name": "Main account", "provider": "stripe", "active": "on", "publishable_key": setting.publishable_key,
            "secret_key": "sk_test_NEWsecret0123456789abcdef", "webhook_secret": "", "method_card": "on", "payout_delay_days": "7"}
    response = admin_client.post(reverse("admin:providers_providersetting_change", args=[setting.pk]), form)
    assert response.status_code == 302, response.content.decode()[-2000:]
    entry = only_entry(AuditAction.PROVIDER_SETTING_CHANGED)
    assert entry.user.is_superuser and entry.object_label == "Main account"
    assert "name" in entry.detail and "secret key replaced" in entry.detail and "webhook" not in entry.detail
    stored = ProviderSetting.objects.get(pk=setting.pk)
    text = " ".join(str(value) for value in AuditEntry.objects.values_list().get())
    for secret in ("sk_test_NEWsecret0123456789abcdef", TEST_SECRET_KEY, TEST_WEBHOOK_SECRET, stored.secret_key_encrypted,
                   stored.webhook_secret_encrypted, stored.secret_key_last4):
        assert secret not in text
    # Saving without a change writes nothing.
    form["secret_key"] = ""
    admin_client.post(reverse("admin:providers_providersetting_change", args=[setting.pk]), form)
    assert AuditEntry.objects.count() == 1


# --- The trail in the admin ----------------------------------------------------------------------


def test_invoice_and_balance_pages_show_their_entries(finance_client, stripe_charge, payment_balances, fake_stripe):
    balance, = payment_balances(stripe_charge(Decimal("100.00")), "-100")
    clerk = User.objects.get(username="fin")
    refund_payment_balance(balance, amount=Decimal("25.00"), requested_by=clerk, idempotency_key="pages-1")
    for url in (reverse("admin:billing_invoice_change", args=[balance.invoice_id]),
                reverse("admin:billing_balance_change", args=[balance.pk])):
        page = finance_client.get(url).content.decode()
        assert "Audit trail" in page and "Refund requested" in page, url
        assert "100.00 EUR" in page and "75.00 EUR" in page and "fin" in page


def test_the_audit_list_filters_and_refuses_add_change_delete(finance_client, admin_client, clerk):
    invoice = InvoiceFactory(amount=Decimal("100.00"))
    balance = BalanceFactory(invoice=None, account=invoice.account, amount=Decimal("-40.00"))
    ledger.assign_balance(balance, document=invoice, user=clerk)
    entry = AuditEntry.objects.get()
    changelist = reverse("admin:billing_auditentry_changelist")
    page = finance_client.get(changelist, {"action__exact": "balance_assigned"}).content.decode()
    assert "Balance assigned" in page and "-100.00" not in page and "60.00 EUR" in page and invoice.number in page
    assert "By action" in page and "By user" in page and "By time" in page
    assert "No audit entries" not in finance_client.get(changelist, {"user__id__exact": clerk.pk}).content.decode()
    assert entry.detail not in finance_client.get(changelist, {"action__exact": "refund_requested"}).content.decode()
    # Nobody edits the trail, not even a superuser.
    assert admin_client.get(reverse("admin:billing_auditentry_add")).status_code == 403
    change = reverse("admin:billing_auditentry_change", args=[entry.pk])
    assert admin_client.get(change).status_code == 200
    admin_client.post(change, {"detail": "rewritten"})
    assert admin_client.post(reverse("admin:billing_auditentry_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.get().detail == entry.detail


def test_the_audit_trail_exports_its_current_filter_as_csv_and_xlsx(finance_client, clerk):
    import csv
    import io

    from openpyxl import load_workbook

    invoice = InvoiceFactory(amount=Decimal("100.00"))
    balance = BalanceFactory(invoice=None, account=invoice.account, amount=Decimal("-40.00"))
    ledger.assign_balance(balance, document=invoice, user=clerk)
    balance.refresh_from_db()
    ledger.unassign_balance(balance, user=clerk)
    changelist = reverse("admin:billing_auditentry_changelist")
    assert 'id="export-csv"' in finance_client.get(changelist).content.decode()
    response = finance_client.get(changelist + "export/csv/", {"action__exact": "balance_assigned"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(row["action"], row["user"], row["invoice"], row["amount before"], row["amount after"], row["currency"])
            for row in rows] == [("balance_assigned", clerk.username, invoice.number, "100.00", "60.00", "EUR")]
    workbook = finance_client.get(changelist + "export/xlsx/")
    sheet = load_workbook(io.BytesIO(b"".join(workbook.streaming_content)), read_only=True).active
    assert len(list(sheet.iter_rows(values_only=True))) == 1 + 2  # header, the assignment and the unassignment

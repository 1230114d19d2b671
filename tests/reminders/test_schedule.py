"""Reminders: each open invoice's due step once, in the entity's own calendar (frozen clocks across month ends and time
zones), never for invoices nobody needs reminding of; text and HTML with the payment link (SPEC §14)."""

import threading
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core import mail
from django.db import connection

from billing.constants import BalanceStatus, InvoiceStatus
from payments.constants import AttemptStatus
from payments.models import PaymentAttempt
from reminders.models import Reminder, ReminderSchedule, ReminderStep
from reminders.services import send_due_reminders
from tests.factories import AccountFactory, BalanceFactory, BusinessEntityFactory, CreditNoteFactory, InvoiceFactory, ProviderSettingFactory

pytestmark = pytest.mark.django_db

UTC = ZoneInfo("UTC")


@pytest.fixture(autouse=True)
def locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.REMINDER_MAX_LATENESS_DAYS = 3


def schedule_for(entity, *days, time_zone="Europe/Berlin"):
    schedule = ReminderSchedule.objects.create(business_entity=entity, time_zone=time_zone)
    for day in days:
        ReminderStep.objects.create(schedule=schedule, days_from_due=day)
    return schedule


def run_at(moment: datetime) -> dict:
    with time_machine.travel(moment, tick=False):
        return send_due_reminders()


def sent_steps(invoice) -> list[int]:
    return sorted(Reminder.objects.filter(invoice=invoice, sent_at__isnull=False).values_list("days_from_due", flat=True))


def test_the_whole_schedule_over_a_month_end_sends_each_step_once_on_its_day():
    entity = BusinessEntityFactory()
    schedule_for(entity, -3, 1, 7, 14)
    invoice = InvoiceFactory(account=AccountFactory(business_entity=entity), due_date=date(2027, 1, 30))
    sent_on = {}
    day = date(2027, 1, 20)
    while day <= date(2027, 2, 28):  # beat runs every hour; three runs a day stand for them (Berlin morning, noon, night)
        for hour in (5, 11, 22):
            before = set(sent_steps(invoice))
            run_at(datetime(day.year, day.month, day.day, hour, 5, tzinfo=UTC))
            for step in set(sent_steps(invoice)) - before:
                sent_on[step] = day
        day += timedelta(days=1)
    # -3: Jan 27; +1: Jan 31; +7: Feb 6; +14: Feb 13 (across the month end), each exactly once.
    assert sent_on == {-3: date(2027, 1, 27), 1: date(2027, 1, 31), 7: date(2027, 2, 6), 14: date(2027, 2, 13)}
    assert len(mail.outbox) == 4 and Reminder.objects.count() == 4


@pytest.mark.parametrize("time_zone, sent_at_2330_utc", [("Europe/Berlin", True), ("America/New_York", False), ("UTC", False)])
def test_a_step_is_due_from_midnight_in_the_entitys_time_zone(time_zone, sent_at_2330_utc):
    entity = BusinessEntityFactory()
    schedule_for(entity, 1, time_zone=time_zone)
    invoice = InvoiceFactory(account=AccountFactory(business_entity=entity), due_date=date(2027, 2, 28))
    # 23:30 UTC on Feb 28 is already March 1 in Berlin (the +1 step's day), still Feb 28 in New York and UTC.
    run_at(datetime(2027, 2, 28, 23, 30, tzinfo=UTC))
    assert sent_steps(invoice) == ([1] if sent_at_2330_utc else [])
    run_at(datetime(2027, 3, 1, 5, 0, tzinfo=UTC))  # March 1 everywhere (00:00 in New York)
    assert sent_steps(invoice) == [1]
    assert len(mail.outbox) == 1


@pytest.mark.parametrize("due, reminded_on", [(date(2027, 3, 1), date(2027, 2, 26)), (date(2028, 3, 1), date(2028, 2, 27))])
def test_days_before_the_due_date_count_back_across_february_leap_years_included(due, reminded_on):
    entity = BusinessEntityFactory()
    schedule_for(entity, -3, time_zone="UTC")
    invoice = InvoiceFactory(account=AccountFactory(business_entity=entity), due_date=due)
    run_at(datetime.combine(reminded_on - timedelta(days=1), datetime.max.time(), tzinfo=UTC) - timedelta(minutes=1))
    assert sent_steps(invoice) == []
    run_at(datetime.combine(reminded_on, datetime.min.time(), tzinfo=UTC) + timedelta(minutes=1))
    assert sent_steps(invoice) == [-3]


def test_never_for_paid_cancelled_draft_credit_notes_or_a_sepa_debit_in_flight(fake_stripe):
    entity = BusinessEntityFactory()
    schedule_for(entity, 1, time_zone="UTC")
    account = AccountFactory(business_entity=entity)
    due = date(2027, 5, 10)
    remindable = InvoiceFactory(account=account, due_date=due)
    paid = InvoiceFactory(account=account, due_date=due)
    BalanceFactory(invoice=paid, account=account, amount=-paid.amount)
    InvoiceFactory(account=account, due_date=due, status=InvoiceStatus.CANCELLED)
    InvoiceFactory(account=account, due_date=due, status=InvoiceStatus.DRAFT)
    CreditNoteFactory(account=account, due_date=due)
    # Part paid by a SEPA debit still pending: the invoice is open for the rest, but a debit is in flight.
    sepa = InvoiceFactory(account=account, due_date=due)
    BalanceFactory(invoice=sepa, amount=Decimal("-40.00"), status=BalanceStatus.PENDING)
    # A SEPA debit processing whose webhook has not arrived yet.
    processing = InvoiceFactory(account=account, due_date=due)
    PaymentAttempt.objects.create(invoice=processing, provider_setting=ProviderSettingFactory(), number=1, source="page",
                                  idempotency_key="pi-processing", amount=Decimal("100.00"), currency="EUR",
                                  status=AttemptStatus.PROCESSING)
    run_at(datetime(2027, 5, 11, 9, 0, tzinfo=UTC))
    assert list(Reminder.objects.values_list("invoice", flat=True)) == [remindable.pk]
    assert len(mail.outbox) == 1


def test_the_email_has_text_and_html_the_open_amount_and_the_payment_link_in_the_customers_language(settings):
    settings.SITE_URL = "https://billing.example.com"
    entity = BusinessEntityFactory(display_name="Acme GmbH", support_email="help@acme.example")
    schedule_for(entity, -3, 7, time_zone="Europe/Berlin")
    german = InvoiceFactory(account=AccountFactory(business_entity=entity, language="de", email="kunde@example.com"),
                            amount=Decimal("1234.50"), due_date=date(2027, 1, 31))
    english = InvoiceFactory(account=AccountFactory(business_entity=entity, language="en"), amount=Decimal("119.00"),
                             due_date=date(2027, 2, 3))
    run_at(datetime(2027, 1, 31, 10, 0, tzinfo=UTC))  # -3 for the English invoice; nothing for the German one yet
    run_at(datetime(2027, 2, 7, 10, 0, tzinfo=UTC))  # +7 for the German invoice
    by_to = {message.to[0]: message for message in mail.outbox}
    de = by_to["kunde@example.com"]
    assert de.subject == f"Acme GmbH: Rechnung {german.number} ist überfällig"
    assert "1.234,50\u00a0€" in de.body and "31. Januar 2027" in de.body and "https://billing.example.com/pay/" in de.body
    html = de.alternatives[0][0]
    assert "1.234,50\u00a0€" in html and 'href="https://billing.example.com/pay/' in html and de.reply_to == ["help@acme.example"]
    en = by_to[english.account.email]
    assert en.subject == f"Acme GmbH: invoice {english.number} is due soon"
    assert "€119.00" in en.body and "February 3, 2027" in en.body and "/pay/" in en.body


def test_a_changed_schedule_never_reaches_back_behind_a_step_already_sent():
    entity = BusinessEntityFactory()
    schedule = schedule_for(entity, 7, time_zone="UTC")
    invoice = InvoiceFactory(account=AccountFactory(business_entity=entity), due_date=date(2027, 6, 1))
    run_at(datetime(2027, 6, 8, 9, 0, tzinfo=UTC))
    ReminderStep.objects.create(schedule=schedule, days_from_due=6)  # an earlier step, added after +7 went out
    run_at(datetime(2027, 6, 8, 10, 0, tzinfo=UTC))
    ReminderStep.objects.filter(days_from_due=7).delete()  # now +6 is the latest due step
    run_at(datetime(2027, 6, 9, 9, 0, tzinfo=UTC))
    assert sent_steps(invoice) == [7] and len(mail.outbox) == 1


def test_a_missed_step_is_not_sent_late_and_only_the_latest_due_step_goes_out():
    entity = BusinessEntityFactory()
    schedule_for(entity, 1, 7, 14, time_zone="UTC")
    old = InvoiceFactory(account=AccountFactory(business_entity=entity), due_date=date(2027, 1, 1))
    recent = InvoiceFactory(account=AccountFactory(business_entity=entity), due_date=date(2027, 1, 5))
    # Reminders switched on (or beat back) on Jan 20: the old invoice's +14 was Jan 15 (5 days ago: too late);
    # the recent one's +14 is Jan 19 (yesterday): only that step, not +1 and +7 too.
    run_at(datetime(2027, 1, 20, 9, 0, tzinfo=UTC))
    assert sent_steps(old) == [] and sent_steps(recent) == [14]


def test_a_mail_server_failure_is_retried_by_the_next_run_and_sent_once(settings):
    entity = BusinessEntityFactory()
    schedule_for(entity, 1, time_zone="UTC")
    invoice = InvoiceFactory(account=AccountFactory(business_entity=entity), due_date=date(2027, 4, 1))
    settings.EMAIL_BACKEND = "tests.reminders.test_schedule.DownMailServer"
    assert run_at(datetime(2027, 4, 2, 9, 0, tzinfo=UTC)) == {"sent": 0, "not_sent": 1}
    reminder = Reminder.objects.get()
    assert reminder.sent_at is None and reminder.attempts == 1 and "Connection refused" in reminder.last_error
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert run_at(datetime(2027, 4, 2, 10, 0, tzinfo=UTC)) == {"sent": 1, "not_sent": 0}
    assert run_at(datetime(2027, 4, 2, 11, 0, tzinfo=UTC)) == {"sent": 0, "not_sent": 0}
    assert len(mail.outbox) == 1 and sent_steps(invoice) == [1]


class DownMailServer:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("Connection refused")


@pytest.mark.django_db(transaction=True)
def test_two_beat_runs_at_the_same_moment_send_each_step_once():
    entity = BusinessEntityFactory()
    schedule_for(entity, 1, time_zone="UTC")
    invoices = [InvoiceFactory(account=AccountFactory(business_entity=entity), due_date=date(2027, 8, 1)) for _ in range(5)]
    barrier = threading.Barrier(2)
    results = []

    def run():
        try:
            barrier.wait()
            results.append(send_due_reminders())
        finally:
            connection.close()

    with time_machine.travel(datetime(2027, 8, 2, 9, 0, tzinfo=UTC), tick=False):
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sum(result["sent"] for result in results) == 5
    assert len(mail.outbox) == 5 and all(sent_steps(invoice) == [1] for invoice in invoices)

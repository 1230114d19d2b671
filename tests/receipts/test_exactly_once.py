"""Numbers without gaps or doubles, and each receipt's email sent once, under concurrency, failures and sweeps."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from payments.constants import TransactionStatus
from payments.models import PaymentTransaction
from receipts import services, tasks
from receipts.models import Receipt, ReceiptEmail
from tests.factories import AccountFactory, BalanceFactory, BusinessEntityFactory, InvoiceFactory, ProviderSettingFactory


def confirmed_charge(invoice, setting, **fields) -> PaymentTransaction:
    """A charge the books confirmed (what sync_charge leaves after charge.succeeded)."""
    values = {"charge_id": f"ch_{invoice.pk}_{PaymentTransaction.objects.count()}", "provider_setting": setting, "invoice": invoice,
              "account": invoice.account, "amount": invoice.amount, "currency": invoice.currency, "method_type": "card",
              "status": TransactionStatus.SUCCEEDED, "charge_created": timezone.now(), "booked_at": timezone.now(), **fields}
    tx = PaymentTransaction.objects.create(**values)
    # ... and the payment balance the books hold for it (SPEC §11: a charge's balances hold its money).
    BalanceFactory(invoice=invoice, account=invoice.account, amount=-tx.amount, currency=tx.currency, provider_setting=setting,
                   transaction_number=tx.charge_id, charge=False)
    return tx


def at_once(count, work):
    barrier = threading.Barrier(count)
    results, errors = [], []

    def run(index):
        try:
            barrier.wait()
            results.append(work(index))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_receipts_of_one_entity_get_consecutive_numbers_and_one_charge_gets_one(fake_stripe):
    setting = ProviderSettingFactory()
    entity = BusinessEntityFactory(slug="acme")
    charges = [confirmed_charge(InvoiceFactory(account=AccountFactory(business_entity=entity)), setting) for _ in range(6)]
    # Six workers issue six receipts at once, and six more issue the first charge's receipt again.
    at_once(12, lambda index: services.issue_payment_receipt(transaction_id=charges[index % 6].pk if index < 6 else charges[0].pk))
    numbers = sorted(Receipt.objects.values_list("sequence_number", flat=True))
    assert numbers == [1, 2, 3, 4, 5, 6]
    assert sorted(Receipt.objects.values_list("number", flat=True)) == [f"ACME-{n:06d}" for n in range(1, 7)]
    assert entity.receipt_sequence.last_number == 6
    assert len(mail.outbox) == 6


@pytest.mark.django_db(transaction=True)
def test_one_email_is_sent_once_even_by_workers_racing_for_it(fake_stripe, settings):
    settings.EMAIL_BACKEND = "tests.receipts.test_exactly_once.SlowMailServer"
    SlowMailServer.sent = []
    receipt = services.issue_payment_receipt(transaction_id=confirmed_charge(InvoiceFactory(), ProviderSettingFactory()).pk)
    assert SlowMailServer.sent == [receipt.number]  # sent after the issuing commit (tasks are eager here)
    ReceiptEmail.objects.update(sent_at=None)  # as if the first send had been lost: it may be sent again, but once
    SlowMailServer.sent = []
    at_once(4, lambda index: services.send_receipt_email(email_id=receipt.email.pk))
    assert SlowMailServer.sent == [receipt.number]


class SlowMailServer:
    """A mail server that takes its time, so racing workers overlap while one of them is sending."""

    sent: list = []

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        import time

        time.sleep(0.3)
        SlowMailServer.sent += [message.subject.split("receipt ")[1].split(" ")[0] for message in messages]
        return len(messages)


class DownMailServer:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("Connection refused")


@pytest.mark.django_db
def test_a_mail_server_outage_leaves_the_email_for_the_beat_sweep_which_sends_it_once(fake_stripe, settings,
                                                                                     django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = "tests.receipts.test_exactly_once.DownMailServer"
    with django_capture_on_commit_callbacks(execute=True):
        receipt = services.issue_payment_receipt(transaction_id=confirmed_charge(InvoiceFactory(), ProviderSettingFactory()).pk)
    email = ReceiptEmail.objects.get()
    assert email.sent_at is None and email.attempts == 1 and "Connection refused" in email.last_error
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    ReceiptEmail.objects.update(created_at=timezone.now() - timedelta(minutes=5))
    assert tasks.sweep_receipts() == {"issued": 0, "sent": 1}
    assert tasks.sweep_receipts() == {"issued": 0, "sent": 0}
    assert len(mail.outbox) == 1 and receipt.number in mail.outbox[0].subject
    assert mail.outbox[0].extra_headers["Message-ID"] == f"<receipt.{receipt.number}@localhost>"


@pytest.mark.django_db
def test_the_sweep_issues_receipts_that_were_missed_but_not_for_old_payments(fake_stripe, settings, django_capture_on_commit_callbacks):
    setting = ProviderSettingFactory()
    missed = confirmed_charge(InvoiceFactory(amount=Decimal("50.00")), setting)
    old = confirmed_charge(InvoiceFactory(), setting)
    PaymentTransaction.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(days=settings.RECEIPT_SWEEP_DAYS + 1))
    pending = confirmed_charge(InvoiceFactory(), setting, status=TransactionStatus.PENDING)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.sweep_receipts() == {"issued": 1, "sent": 0}  # its email goes out on the issuing commit
    assert list(Receipt.objects.values_list("payment_transaction", flat=True)) == [missed.pk]
    assert len(mail.outbox) == 1 and pending.receipts.count() == 0


@pytest.mark.django_db
def test_a_broker_down_never_fails_the_webhook_the_sweep_issues_the_receipt_later(setting, pay, deliver_all, celery_conf,
                                                                                   django_capture_on_commit_callbacks):
    celery_conf(task_always_eager=False, broker_url="redis://127.0.0.1:1/0", broker_connection_retry=False,
                broker_connection_max_retries=0, broker_transport_options={"max_retries": 0, "socket_connect_timeout": 0.2})
    pay(InvoiceFactory())
    deliver_all()  # stored; the processing task cannot be published either: a worker's processing, in-process
    from webhooks.models import EventStatus, WebhookEvent
    from webhooks.services import process_event

    with django_capture_on_commit_callbacks(execute=True):
        for event_id in WebhookEvent.objects.order_by("id").values_list("id", flat=True):
            process_event(event_id)  # the receipt task cannot be published: logged, never an error of the event
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {EventStatus.PROCESSED}
    assert not Receipt.objects.exists()
    celery_conf(task_always_eager=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.sweep_receipts()["issued"] == 1
    assert len(mail.outbox) == 1


@pytest.mark.django_db(transaction=True)  # each event commits on its own, as in a worker
def test_a_batch_of_events_asks_for_its_receipts_in_one_task_and_every_charge_gets_one(setting, fake_stripe):
    """The batch task publishes the receipts its events asked for once, at its end; each confirmed charge gets its own."""
    from celery.signals import task_prerun

    started = []
    task_prerun.connect(lambda task=None, **kwargs: started.append(task.name), weak=False, dispatch_uid="count-receipt-tasks")
    import json

    from tests.helpers import make_charge, make_event
    from webhooks.models import WebhookEvent
    from webhooks.tasks import process_webhook_events

    invoices = [InvoiceFactory(amount=Decimal("100.00")) for _ in range(3)]
    events = [make_event("charge.succeeded", make_charge(metadata={"invoice_id": str(invoice.pk)})) for invoice in invoices]
    ids = [WebhookEvent.objects.create(provider_setting=setting, stripe_event_id=event["id"], type=event["type"],
                                       payload=json.dumps(event)).pk for event in events]  # stored, not yet processed
    try:
        process_webhook_events.apply(args=(ids,))
    finally:
        task_prerun.disconnect(dispatch_uid="count-receipt-tasks")
    assert sorted(Receipt.objects.values_list("invoice_id", flat=True)) == sorted(invoice.pk for invoice in invoices)
    assert started.count("receipts.tasks.issue_receipts") == 1
    assert "receipts.tasks.issue_payment_receipt" not in started

"""Test helpers: Stripe-shaped events and their signed delivery to the real webhook endpoint."""

from __future__ import annotations

import copy
import json
import secrets
import subprocess
import time

from django.urls import reverse

from tests.factories import TEST_WEBHOOK_SECRET
from tests.stripe_fake.server import TEMPLATES
from tests.stripe_fake.signing import sign_payload


def make_event(event_type: str, obj: dict, *, created: int | None = None, event_id: str | None = None,
               livemode: bool = False, api_version: str = "2026-10-28.endive") -> dict:
    event = copy.deepcopy(TEMPLATES["event"])
    event.update(id=event_id or f"evt_{secrets.token_hex(12)}", type=event_type, created=created or int(time.time()),
                 livemode=livemode, api_version=api_version, data={"object": copy.deepcopy(obj)})
    return event


def make_charge(*, amount: int = 10000, currency: str = "eur", status: str = "succeeded", metadata: dict | None = None,
                charge_id: str | None = None, created: int | None = None, payment_intent: str | None = None,
                method: str = "card", refunds: list | None = None) -> dict:
    charge = copy.deepcopy(TEMPLATES["charge"])
    details = {"type": method}
    details[method] = {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2034} if method == "card" else \
        {"last4": "3000", "mandate": "mandate_test"}
    charge.update(id=charge_id or f"ch_{secrets.token_hex(10)}", amount=amount, currency=currency, status=status,
                  metadata=metadata or {}, created=created or 1_700_000_000, payment_intent=payment_intent,
                  payment_method="pm_test", payment_method_details=details, livemode=False, amount_refunded=0, refunded=False,
                  captured=status != "failed", paid=status == "succeeded",
                  failure_message="Insufficient funds." if status == "failed" else None,
                  failure_code="insufficient_funds" if status == "failed" else None)
    charge.pop("refunds", None)
    if refunds is not None:
        charge["refunds"] = {"object": "list", "data": refunds, "has_more": False, "url": "/v1/refunds"}
    return charge


def post_event(client, setting, event: dict, *, secret: str = TEST_WEBHOOK_SECRET, timestamp: int | None = None,
               body: bytes | None = None, **extra):
    body = body if body is not None else json.dumps(event).encode()
    header = sign_payload(body, secret, timestamp=timestamp)
    return client.post(reverse("webhooks:stripe-webhook", args=[setting.webhook_id]), data=body,
                       content_type="application/json", HTTP_STRIPE_SIGNATURE=header, **extra)


def deliver(client, setting, event: dict, django_capture_on_commit_callbacks, **kwargs):
    """Post the event and run what the view enqueued (tasks are eager in tests)."""
    with django_capture_on_commit_callbacks(execute=True):
        response = post_event(client, setting, event, **kwargs)
    assert response.status_code == 200, response.content
    return response


def booked_charges(fake_stripe, setting, count: int, *, amount: int = 1000, currency: str = "eur", created: int | None = None) -> list[str]:
    """`count` succeeded charges at the fake Stripe, each booked as the webhook path books a payment (its
    PaymentTransaction and a confirmed payment balance on one account), written in bulk: a payout's worth of
    charges without a webhook each."""
    from datetime import UTC, datetime

    from django.utils import timezone

    from billing.constants import BalanceType
    from billing.models import Balance
    from billing.money import from_minor_units
    from payments.constants import TransactionStatus
    from payments.models import PaymentTransaction
    from tests.factories import AccountFactory

    account = AccountFactory()
    charges = [fake_stripe.add_charge(amount=amount, currency=currency, created=created) for _ in range(count)]
    money = from_minor_units(amount, currency.upper())
    PaymentTransaction.objects.bulk_create([PaymentTransaction(
        charge_id=charge["id"], provider_setting=setting, account=account, amount=money, currency=currency.upper(), method_type="card",
        status=TransactionStatus.SUCCEEDED, charge_created=datetime.fromtimestamp(charge["created"], tz=UTC),
        stripe_created=datetime.fromtimestamp(charge["created"], tz=UTC), booked_at=timezone.now()) for charge in charges])
    Balance.objects.bulk_create([Balance(
        account=account, type=BalanceType.PAYMENT, amount=-money, currency=currency.upper(), transaction_number=charge["id"],
        provider_setting=setting, date=datetime.fromtimestamp(charge["created"], tz=UTC)) for charge in charges])
    return [charge["id"] for charge in charges]


def run_at_once(*calls) -> list[Exception]:
    """Run each call on its own thread (and database connection), all released at the same instant, as concurrent
    workers would; returns the errors raised."""
    import threading

    from django.db import connection

    barrier = threading.Barrier(len(calls))
    errors = []

    def work(call):
        barrier.wait()
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def wait_until(condition, timeout: float, what: str):
    """The first truthy value of `condition()`, polled every 50 ms; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def stop_processes(*processes) -> None:
    """SIGTERM to all (a Celery worker finishes its task and acknowledges it), then wait; SIGKILL what is still alive
    after 30 s."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

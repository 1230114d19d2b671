"""Processing several events in one task (process_webhook_events): each event keeps its own outcome."""

from decimal import Decimal

import pytest

from billing.constants import InvoiceStatus
from billing.models import Balance
from tests.factories import InvoiceFactory, ProviderSettingFactory
from tests.helpers import make_charge, make_event
from webhooks import services, tasks
from webhooks.models import EventStatus, WebhookEvent

pytestmark = pytest.mark.django_db


def stored(setting, event) -> int:
    """In the test's transaction the on-commit enqueue never runs: the event waits in the inbox like in a burst."""
    event_id, created = services.store_event(setting, event)
    assert created
    return event_id


def missing_charge_event(charge_id: str) -> dict:
    return make_event("payment_intent.succeeded", {"id": f"pi_{charge_id}", "object": "payment_intent", "status": "succeeded",
                                                   "latest_charge": charge_id, "metadata": {}})


def test_a_batch_gives_every_event_its_own_outcome(setting, fake_stripe, settings):
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    invoices = [InvoiceFactory(amount="100.00", currency="EUR") for _ in range(3)]
    paid = [stored(setting, make_event("charge.succeeded", make_charge(metadata={"invoice_id": str(invoice.pk)}, created=1_700_000_000 + n)))
            for n, invoice in enumerate(invoices)]
    other_setting = ProviderSettingFactory()
    ignored = stored(setting, make_event("charge.succeeded", make_charge(metadata={"provider_setting_id": str(other_setting.pk)})))
    # Stripe refuses one charge for good (404) and fails once on another (500): the first fails at once,
    # the second continues alone in process_webhook_event and succeeds on its retry.
    fake_stripe.inject("GET", "/v1/charges/ch_gone", status=404, times=5,
                       body={"error": {"type": "invalid_request_error", "message": "No such charge"}})
    refused = stored(setting, missing_charge_event("ch_gone"))
    late_invoice = InvoiceFactory(amount="40.00", currency="EUR")
    flaky_charge = make_charge(amount=4000, metadata={"invoice_id": str(late_invoice.pk)})
    fake_stripe.objects[flaky_charge["id"]] = flaky_charge  # what GET /v1/charges/<id> answers
    fake_stripe.inject("GET", f"/v1/charges/{flaky_charge['id']}", status=500, times=1)
    flaky = stored(setting, missing_charge_event(flaky_charge["id"]))

    result = tasks.process_webhook_events.apply(args=[[*paid, ignored, refused, flaky]])

    assert result.successful(), result.traceback
    events = {event.pk: event for event in WebhookEvent.objects.all()}
    assert [(events[pk].status, events[pk].attempts) for pk in paid] == [(EventStatus.PROCESSED, 1)] * 3
    assert (events[ignored].status, events[ignored].attempts) == (EventStatus.IGNORED, 1)
    assert (events[refused].status, events[refused].attempts) == (EventStatus.FAILED, 1)
    assert "No such charge" in events[refused].last_error
    assert (events[flaky].status, events[flaky].attempts) == (EventStatus.PROCESSED, 2)  # failed once, retried alone
    assert sorted(Balance.objects.values_list("amount", flat=True)) == [Decimal("-100.00")] * 3 + [Decimal("-40.00")]
    for invoice in [*invoices, late_invoice]:
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PAID


def test_a_redelivered_batch_does_nothing_twice(setting):
    invoice = InvoiceFactory(amount="100.00", currency="EUR")
    event_id = stored(setting, make_event("charge.succeeded", make_charge(metadata={"invoice_id": str(invoice.pk)})))
    tasks.process_webhook_events.apply(args=[[event_id]])
    tasks.process_webhook_events.apply(args=[[event_id, event_id]])  # the same message again, an id twice
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts) == (EventStatus.PROCESSED, 1)
    assert Balance.objects.count() == 1


def test_a_batch_past_its_time_budget_hands_the_rest_to_new_tasks(setting, monkeypatch):
    monkeypatch.setattr(tasks, "BATCH_BUDGET_SECONDS", -1)  # already past the budget before the first event
    invoices = [InvoiceFactory(amount="100.00", currency="EUR") for _ in range(3)]
    ids = [stored(setting, make_event("charge.succeeded", make_charge(metadata={"invoice_id": str(invoice.pk)}))) for invoice in invoices]
    assert tasks.process_webhook_events.apply(args=[ids]).get() == 0  # this task processed none itself
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {EventStatus.PROCESSED}  # the new tasks did (in-process)
    assert Balance.objects.count() == 3


def test_finishing_a_batch_records_each_outcome_in_few_statements(setting, django_assert_max_num_queries):
    ids = [stored(setting, make_event("charge.succeeded", make_charge())) for _ in range(30)]
    outcomes = {event_id: (EventStatus.PROCESSED, "") for event_id in ids[:-2]}
    outcomes[ids[-2]] = (EventStatus.FAILED, "ValueError: bad")
    outcomes[ids[-1]] = (EventStatus.IGNORED, "")
    with django_assert_max_num_queries(3):
        services.finish_events(outcomes)
    rows = dict(WebhookEvent.objects.values_list("id", "status"))
    assert rows == {event_id: status for event_id, (status, _) in outcomes.items()}
    assert WebhookEvent.objects.get(pk=ids[-2]).last_error == "ValueError: bad"
    assert set(WebhookEvent.objects.values_list("attempts", flat=True)) == {1}


def test_requeue_publishes_batches(setting, settings, celery_conf):
    """With a real broker the requeue sends one task per WEBHOOK_TASK_BATCH_SIZE events."""
    import base64
    import json

    import redis

    from webhooks.lanes import lane_queue

    url = "redis://127.0.0.1:6379/14"
    client = redis.Redis.from_url(url)
    client.flushdb()
    celery_conf(task_always_eager=False, broker_url=url)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.WEBHOOK_TASK_BATCH_SIZE = 4
    ids = [stored(setting, make_event("charge.succeeded", make_charge())) for _ in range(10)]
    WebhookEvent.objects.update(received_at="2020-01-01T00:00:00Z")
    try:
        assert services.requeue_stale_events() == 10
        messages = [json.loads(message) for message in client.lrange(lane_queue(setting.pk), 0, -1)]
        assert client.llen("celery") == 0  # in the setting's lane, not the default queue
    finally:
        client.flushdb()
    assert {message["headers"]["task"] for message in messages} == {"webhooks.tasks.process_webhook_events"}
    batches = [json.loads(base64.b64decode(message["body"]))[0][0] for message in messages]
    assert sorted(map(len, batches)) == [2, 4, 4]
    assert sorted(event_id for batch in batches for event_id in batch) == sorted(ids)


def synchronous_commit() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_processing_commits_asynchronously_only_while_it_runs(settings):
    settings.WEBHOOK_ASYNC_COMMIT = True
    assert synchronous_commit() == "on"
    with services.replayable_commits():
        assert synchronous_commit() == "off"
    assert synchronous_commit() == "on"  # the next task on this connection waits for its flushes again
    with pytest.raises(ZeroDivisionError), services.replayable_commits():
        1 / 0
    assert synchronous_commit() == "on"


@pytest.mark.django_db(transaction=True)
def test_asynchronous_commit_can_be_turned_off_and_never_applies_inside_a_transaction(settings):
    from django.db import transaction

    settings.WEBHOOK_ASYNC_COMMIT = False
    with services.replayable_commits():
        assert synchronous_commit() == "on"
    settings.WEBHOOK_ASYNC_COMMIT = True
    with transaction.atomic(), services.replayable_commits():  # the caller's transaction keeps its durability
        assert synchronous_commit() == "on"


# --- One transaction per batch (services.process_together) ---------------------------------------------------------


def books_of(invoices) -> list:
    """What the books say about these invoices, comparable between two settings: balances and status per invoice."""
    rows = []
    for invoice in invoices:
        invoice.refresh_from_db()
        rows.append((invoice.status, sorted(Balance.objects.filter(invoice=invoice).values_list("type", "amount", "status", "locked"))))
    return rows


def the_mix(setting, invoices) -> list[int]:
    """Card, SEPA settled, SEPA failed, card refunded from the Dashboard (refunds embedded), in Stripe's order."""
    ids = []
    for index, invoice in enumerate(invoices):
        charge = make_charge(metadata={"invoice_id": str(invoice.pk)}, created=1_700_000_000 + index)
        kind = index % 4
        if kind == 0:
            ids.append(stored(setting, make_event("charge.succeeded", charge)))
        elif kind in (1, 2):
            ids.append(stored(setting, make_event("charge.pending", {**charge, "status": "pending"})))
            ids.append(stored(setting, make_event("charge.failed" if kind == 2 else "charge.succeeded",
                                                  {**charge, "status": "failed" if kind == 2 else "succeeded"})))
        else:
            refund = {"id": f"re_{charge['id']}", "object": "refund", "amount": 2500, "currency": "eur", "charge": charge["id"],
                      "status": "succeeded", "created": 1_700_000_500 + index, "metadata": {}}
            ids.append(stored(setting, make_event("charge.succeeded", charge)))
            ids.append(stored(setting, make_event("charge.refunded", {**charge, "refunds": {"object": "list", "data": [refund],
                                                                                         "has_more": False}})))
    return ids


def test_a_batch_in_one_transaction_books_exactly_what_event_by_event_books(fake_stripe):
    together_setting, alone_setting = ProviderSettingFactory(), ProviderSettingFactory()
    together_invoices = [InvoiceFactory(amount="100.00", currency="EUR") for _ in range(8)]
    alone_invoices = [InvoiceFactory(amount="100.00", currency="EUR") for _ in range(8)]
    together_ids = the_mix(together_setting, together_invoices)
    alone_ids = the_mix(alone_setting, alone_invoices)

    outcomes = services.process_together(services.claim_events(together_ids))
    for event_id in alone_ids:
        services.process_event(event_id)

    assert outcomes == {event_id: (EventStatus.PROCESSED, "") for event_id in together_ids}  # taken as one batch
    assert books_of(together_invoices) == books_of(alone_invoices)
    assert any(status == InvoiceStatus.PAID for status, _ in books_of(together_invoices))
    assert fake_stripe.count("GET", "/v1/") == 0


def test_a_batch_that_needs_stripe_keeps_nothing_and_is_redone_event_by_event_with_one_call(setting, fake_stripe):
    invoices = [InvoiceFactory(amount="100.00", currency="EUR") for _ in range(2)]
    charges = [make_charge(metadata={"invoice_id": str(invoice.pk)}) for invoice in invoices]
    refund = {"id": "re_listed", "object": "refund", "amount": 2500, "currency": "eur", "charge": charges[1]["id"],
              "status": "succeeded", "created": 1_700_000_500, "metadata": {}}
    fake_stripe.objects["re_listed"] = refund
    fake_stripe.refunds_by_charge.setdefault(charges[1]["id"], []).append("re_listed")
    not_embedded = {key: value for key, value in charges[1].items() if key != "refunds"}  # a newer API version: listed
    ids = [stored(setting, make_event("charge.succeeded", charges[0])), stored(setting, make_event("charge.succeeded", charges[1])),
           stored(setting, make_event("charge.refunded", not_embedded))]

    assert services.process_together(services.claim_events(ids)) is None
    assert Balance.objects.count() == 0  # the first two events' balances went with the batch's transaction
    assert fake_stripe.count("GET", "/v1/refunds") == 0  # refused before anything was sent

    assert tasks.process_webhook_events.apply(args=[ids]).successful()
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {EventStatus.PROCESSED}
    assert fake_stripe.count("GET", "/v1/refunds") == 1  # listed once, by the event on its own, outside any lock
    assert sorted(Balance.objects.values_list("amount", flat=True)) == [Decimal("-100.00"), Decimal("-75.00"), Decimal("-25.00"),
                                                                       Decimal("25.00")]


def test_an_error_in_a_batch_keeps_nothing_of_it_and_only_the_bad_event_fails(setting):
    invoices = [InvoiceFactory(amount="100.00", currency="EUR") for _ in range(2)]
    good = [stored(setting, make_event("charge.succeeded", make_charge(metadata={"invoice_id": str(invoice.pk)}))) for invoice in invoices]
    malformed = make_charge()
    del malformed["id"]
    bad = stored(setting, make_event("charge.succeeded", malformed))
    ids = [good[0], bad, good[1]]

    assert services.process_together(services.claim_events(ids)) is None
    assert Balance.objects.count() == 0
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {EventStatus.RECEIVED}  # no outcome kept either

    assert tasks.process_webhook_events.apply(args=[ids]).successful()
    statuses = dict(WebhookEvent.objects.values_list("id", "status"))
    assert [statuses[pk] for pk in ids] == [EventStatus.PROCESSED, EventStatus.FAILED, EventStatus.PROCESSED]
    assert Balance.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_batch_commits_its_outcomes_with_its_books_asynchronously_and_leaves_the_session_as_it_was(settings, celery_conf):
    from django.db import connection

    settings.WEBHOOK_ASYNC_COMMIT = True
    setting = ProviderSettingFactory()
    invoices = [InvoiceFactory(amount="100.00", currency="EUR") for _ in range(3)]
    # Stored as the view stores them, with no processing after the commit (in-process Celery would process them at once).
    settings.CELERY_TASK_ALWAYS_EAGER, settings.WEBHOOK_PUBLISH_IN_BACKGROUND = False, False
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens: the publish fails, the events wait in the inbox
    celery_conf(task_always_eager=False, broker_url=settings.CELERY_BROKER_URL)
    ids = [stored(setting, make_event("charge.succeeded", make_charge(metadata={"invoice_id": str(invoice.pk)}))) for invoice in invoices]
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {EventStatus.RECEIVED}
    statements = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        outcomes = services.process_together(services.claim_events(ids))

    assert outcomes == {event_id: (EventStatus.PROCESSED, "") for event_id in ids}
    # One SET LOCAL inside the transaction, instead of a SET and a RESET around it; the next transaction waits again.
    assert statements.count("SET LOCAL synchronous_commit TO off") == 1 and not any("RESET" in sql for sql in statements)
    assert synchronous_commit() == "on"
    events = WebhookEvent.objects.filter(pk__in=ids)
    assert {(event.status, event.attempts) for event in events} == {(EventStatus.PROCESSED, 1)}
    assert len({event.processed_at for event in events}) == 1  # recorded in the batch's transaction, with its books
    assert Balance.objects.count() == 3

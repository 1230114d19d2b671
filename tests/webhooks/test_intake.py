"""The signed webhook endpoint: every rejection, storing once, answering at once."""

import json
import time
import uuid

import pytest
from django.urls import reverse

from tests.factories import TEST_WEBHOOK_SECRET, ProviderSettingFactory
from tests.helpers import make_charge, make_event, post_event
from tests.stripe_fake.signing import sign_payload
from webhooks.models import EventStatus, WebhookEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def setting():
    return ProviderSettingFactory()


def url(setting):
    return reverse("webhooks:stripe-webhook", args=[setting.webhook_id])


def test_valid_event_is_stored_and_answered_200(client, setting, django_capture_on_commit_callbacks):
    event = make_event("customer.created", {"id": "cus_1", "object": "customer"})
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_event(client, setting, event)
    assert response.status_code == 200
    assert response.json()["reason"] == "stored"
    stored = WebhookEvent.objects.get()
    assert (stored.stripe_event_id, stored.type, stored.provider_setting) == (event["id"], "customer.created", setting)
    assert stored.stripe_account_id == setting.stripe_account_id
    assert stored.event == event and stored.payload == json.dumps(event)  # the signed bytes, as received
    assert len(callbacks) == 1  # the task is enqueued only after commit


def test_unknown_type_is_stored_as_ignored(client, setting, django_capture_on_commit_callbacks):
    event = make_event("customer.created", {"id": "cus_1", "object": "customer"})
    with django_capture_on_commit_callbacks(execute=True):
        post_event(client, setting, event)
    assert WebhookEvent.objects.get().status == EventStatus.IGNORED


def test_duplicate_delivery_answers_200_and_is_not_processed_again(client, setting, django_capture_on_commit_callbacks):
    event = make_event("customer.created", {"id": "cus_1", "object": "customer"})
    with django_capture_on_commit_callbacks(execute=True):
        post_event(client, setting, event)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_event(client, setting, event)
    assert response.status_code == 200
    assert response.json()["duplicate"] is True
    assert WebhookEvent.objects.count() == 1
    assert callbacks == []


def test_two_settings_on_one_stripe_account_store_an_event_once(client, django_capture_on_commit_callbacks):
    first = ProviderSettingFactory(stripe_account_id="acct_shared")
    second = ProviderSettingFactory(stripe_account_id="acct_shared")
    event = make_event("customer.created", {"id": "cus_1", "object": "customer"})
    assert post_event(client, first, event).status_code == 200
    assert post_event(client, second, event).json()["duplicate"] is True
    assert WebhookEvent.objects.count() == 1


@pytest.mark.parametrize(
    "mutate, status, reason",
    [
        (lambda h, b: {"HTTP_STRIPE_SIGNATURE": ""}, 400, "missing Stripe-Signature header"),
        (lambda h, b: {"HTTP_STRIPE_SIGNATURE": "garbage"}, 400, "no timestamp"),
        (lambda h, b: {"HTTP_STRIPE_SIGNATURE": h.replace("v1=", "v0=")}, 400, "no v1 signature"),
        (lambda h, b: {"HTTP_STRIPE_SIGNATURE": sign_payload(b, "whsec_wrong")}, 400, "does not match"),
        (lambda h, b: {"HTTP_STRIPE_SIGNATURE": sign_payload(b, TEST_WEBHOOK_SECRET, timestamp=int(time.time()) - 301)},
         400, "tolerance"),
    ],
)
def test_bad_signatures_are_rejected_and_nothing_is_stored(client, setting, mutate, status, reason):
    body = json.dumps(make_event("charge.succeeded", make_charge())).encode()
    header = sign_payload(body, TEST_WEBHOOK_SECRET)
    response = client.post(url(setting), data=body, content_type="application/json", **mutate(header, body))
    assert response.status_code == status
    assert reason in response.json()["reason"]
    assert not WebhookEvent.objects.exists()


def test_any_of_several_v1_signatures_is_accepted_during_secret_rolling(client, setting):
    body = json.dumps(make_event("customer.created", {"id": "cus_1", "object": "customer"})).encode()
    header = sign_payload(body, "whsec_old_secret", extra_secrets=[TEST_WEBHOOK_SECRET])
    assert client.post(url(setting), data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header).status_code == 200


def test_a_new_webhook_secret_takes_effect_at_once_and_the_old_one_stops_working(client, setting):
    """The view keeps keyed HMAC states per (setting, encrypted secret): saving a new secret must not leave the old one usable."""
    from providers.services import save_provider_setting

    first = make_event("customer.created", {"id": "cus_1", "object": "customer"})
    assert post_event(client, setting, first).status_code == 200  # warms the per-process caches with the old secret
    save_provider_setting(setting, entity_ids=[], webhook_secret="whsec_rotated_secret_for_tests_only")
    second = make_event("customer.created", {"id": "cus_2", "object": "customer"})
    assert post_event(client, setting, second).status_code == 400  # signed with the old secret
    assert post_event(client, setting, second, secret="whsec_rotated_secret_for_tests_only").status_code == 200


def test_undecryptable_webhook_secret_fails_closed_with_500(client, setting, settings):
    from cryptography.fernet import Fernet

    setting.webhook_secret_encrypted = Fernet(Fernet.generate_key()).encrypt(b"whsec_from_another_key").decode()
    setting.save()
    response = post_event(client, setting, make_event("customer.created", {"id": "cus_1", "object": "customer"}))
    assert response.status_code == 500
    assert not WebhookEvent.objects.exists()


def test_unknown_setting_is_404(client, setting):
    body = b"{}"
    response = client.post(reverse("webhooks:stripe-webhook", args=[uuid.uuid4()]), data=body, content_type="application/json",
                           HTTP_STRIPE_SIGNATURE=sign_payload(body, TEST_WEBHOOK_SECRET))
    assert response.status_code == 404


def test_body_over_one_mebibyte_is_413(client, setting):
    body = b'{"x": "' + b"a" * (1024 * 1024) + b'"}'
    response = client.post(url(setting), data=body, content_type="application/json",
                           HTTP_STRIPE_SIGNATURE=sign_payload(body, TEST_WEBHOOK_SECRET))
    assert response.status_code == 413
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe\xfa", b"[]", b'{"object": "event"}', b'{"id": 1, "type": "x"}'])
def test_non_json_or_non_event_bodies_are_400(client, setting, body):
    response = client.post(url(setting), data=body, content_type="application/json",
                           HTTP_STRIPE_SIGNATURE=sign_payload(body, TEST_WEBHOOK_SECRET))
    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()


def test_livemode_mismatch_is_400(client, setting):
    event = make_event("customer.created", {"id": "cus_1", "object": "customer"}, livemode=True)
    response = post_event(client, setting, event)
    assert response.status_code == 400
    assert "livemode" in response.json()["reason"]


def test_setting_without_webhook_secret_fails_closed_with_500(client):
    setting = ProviderSettingFactory(secrets__webhook_secret="")
    response = post_event(client, setting, make_event("customer.created", {"id": "cus_1", "object": "customer"}))
    assert response.status_code == 500
    assert "not configured" in response.json()["reason"]
    assert not WebhookEvent.objects.exists()


def test_inactive_setting_still_receives_events(client):
    setting = ProviderSettingFactory(active=False)
    assert post_event(client, setting, make_event("customer.created", {"id": "cus_1", "object": "customer"})).status_code == 200


def test_get_is_not_allowed(client, setting):
    assert client.get(url(setting)).status_code == 405


def test_view_makes_no_stripe_call_and_few_queries(client, setting, django_assert_max_num_queries, fake_stripe):
    event = make_event("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent", "latest_charge": "ch_x"})
    with django_assert_max_num_queries(4):
        assert post_event(client, setting, event).status_code == 200
    assert fake_stripe.requests == []


def test_broker_down_still_stores_and_answers_200(client, setting, django_capture_on_commit_callbacks, celery_conf):
    celery_conf(task_always_eager=False, broker_url="redis://127.0.0.1:6390/0")  # nothing listens there
    event = make_event("customer.created", {"id": "cus_1", "object": "customer"})
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        response = post_event(client, setting, event)
    assert response.status_code == 200
    assert time.monotonic() - started < 10
    assert WebhookEvent.objects.get().status == EventStatus.RECEIVED


def test_a_setting_with_stored_events_cannot_be_deleted(client, setting):
    """The inbox has no database foreign key to its setting (a lock per stored webhook); PROTECT keeps the link."""
    from django.db.models import ProtectedError

    assert post_event(client, setting, make_event("customer.created", {"id": "cus_1", "object": "customer"})).status_code == 200
    with pytest.raises(ProtectedError):
        setting.delete()
    assert WebhookEvent.objects.filter(provider_setting=setting).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_connection_that_died_is_replaced_without_failing_the_webhook(client, setting):
    """No health check per webhook: a dead connection (PostgreSQL restarted) fails the insert, which is retried
    once on a new connection, so Stripe still gets its 200 and the event is stored once."""
    from django.db import connection

    first = make_event("customer.created", {"id": "cus_1", "object": "customer"})
    assert post_event(client, setting, first).status_code == 200
    connection.ensure_connection()
    connection.connection.close()  # behind Django's back, as a server restart would
    second = make_event("customer.created", {"id": "cus_2", "object": "customer"})
    response = post_event(client, setting, second)
    assert response.status_code == 200 and response.json()["reason"] == "stored"
    assert sorted(WebhookEvent.objects.values_list("stripe_event_id", flat=True)) == sorted([first["id"], second["id"]])


@pytest.mark.django_db(transaction=True)
def test_a_database_that_stays_down_answers_503_so_stripe_retries(client, setting, settings):
    from django.db import connection

    post_event(client, setting, make_event("customer.created", {"id": "cus_1", "object": "customer"}))
    connection.ensure_connection()
    connection.connection.close()
    original = dict(connection.settings_dict)
    connection.settings_dict["PORT"] = "1"  # nothing listens there: the reconnect fails too
    try:
        response = post_event(client, setting, make_event("customer.created", {"id": "cus_2", "object": "customer"}))
    finally:
        connection.settings_dict.update(original)
        connection.close()
    assert response.status_code == 503
    assert WebhookEvent.objects.count() == 1

"""The Stripe gateway against the fake Stripe at the HTTP boundary."""

import logging
from decimal import Decimal

import pytest

from providers.stripe import gateway
from tests.factories import TEST_SECRET_KEY, ProviderSettingFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def setting(fake_stripe):
    return ProviderSettingFactory()


def create_pi(setting, key="pi-key-1", **extra):
    params = {"amount": Decimal("12.34"), "currency": "EUR", "idempotency_key": key, "payment_method_types": ["card"],
              "metadata": {"invoice_id": 1}, **extra}
    return gateway.create_payment_intent(setting, **params)


def test_objects_come_back_as_plain_dicts_in_minor_units(setting, fake_stripe):
    pi = create_pi(setting)
    assert type(pi) is dict and pi["amount"] == 1234 and pi["currency"] == "eur"
    assert pi["metadata"] == {"invoice_id": "1"}
    request = fake_stripe.requests[-1]
    assert request["api_key"] == TEST_SECRET_KEY and request["idempotency_key"] == "pi-key-1"
    assert request["stripe_version"] == "2026-10-28.endive"


def test_each_setting_uses_its_own_key(fake_stripe):
    first = ProviderSettingFactory(secrets__secret_key="sk_test_first1111")
    second = ProviderSettingFactory(secrets__secret_key="sk_test_second222")
    gateway.retrieve_account(first)
    gateway.retrieve_account(second)
    assert [r["api_key"] for r in fake_stripe.requests] == ["sk_test_first1111", "sk_test_second222"]


def test_money_moving_calls_require_an_idempotency_key(setting):
    with pytest.raises(ValueError, match="idempotency key"):
        create_pi(setting, key="")
    with pytest.raises(ValueError, match="idempotency key"):
        gateway.create_refund(setting, charge_id="ch_1", amount=Decimal("1"), currency="EUR", metadata={}, idempotency_key="")


def test_500_is_retried_with_the_same_idempotency_key_and_one_effect(setting, fake_stripe):
    fake_stripe.inject("POST", "/v1/payment_intents", status=500, times=1, after_processing=True)
    pi = create_pi(setting)
    keys = [r["idempotency_key"] for r in fake_stripe.requests if r["path"] == "/v1/payment_intents"]
    assert keys == ["pi-key-1", "pi-key-1"]
    assert [o for o in fake_stripe.objects.values() if o.get("object") == "payment_intent"] == [fake_stripe.objects[pi["id"]]]


def test_timeout_is_retried_then_reported_as_unknown_outcome(setting, fake_stripe, settings):
    settings.STRIPE_TIMEOUT_SECONDS = 0.3
    settings.STRIPE_MAX_NETWORK_RETRIES = 1
    fake_stripe.inject("POST", "/v1/payment_intents", delay=1.0, times=2)
    with pytest.raises(gateway.StripeUnavailable) as caught:
        create_pi(setting)
    assert caught.value.outcome_unknown
    keys = {r["idempotency_key"] for r in fake_stripe.requests if r["path"] == "/v1/payment_intents"}
    assert keys == {"pi-key-1"}


def test_persistent_5xx_becomes_stripe_unavailable(setting, fake_stripe):
    fake_stripe.inject("GET", "/v1/account", status=503, times=10)
    with pytest.raises(gateway.StripeUnavailable, match="server error"):
        gateway.retrieve_account(setting)


def test_decline_invalid_and_auth_errors_are_translated(setting, fake_stripe, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(gateway.PaymentDeclined) as declined:
        create_pi(setting, key="k2", payment_method="pm_card_chargeDeclined", confirm=True)
    assert declined.value.decline_code == "generic_decline" and declined.value.payment_intent["status"] == "requires_payment_method"
    with pytest.raises(gateway.PaymentDeclined) as auth:
        create_pi(setting, key="k3", payment_method="pm_card_authenticationRequired", confirm=True, off_session=True)
    assert auth.value.requires_authentication
    with pytest.raises(gateway.StripeRequestRefused, match="at least"):
        gateway.create_payment_intent(setting, amount=Decimal("0.10"), currency="EUR", idempotency_key="k4",
                                      payment_method_types=["card"], metadata={})
    bad = ProviderSettingFactory(secrets__secret_key="sk_test_invalidkey123456")
    with pytest.raises(gateway.StripeAuthenticationFailed):
        gateway.retrieve_account(bad)
    assert "sk_test_invalidkey123456" not in caplog.text and TEST_SECRET_KEY not in caplog.text


def test_refund_too_large_is_a_sentence(setting, fake_stripe):
    pi = create_pi(setting, payment_method="pm_card_visa", confirm=True)
    with pytest.raises(gateway.StripeRequestRefused, match="Stripe refused to refund 20.00 EUR"):
        gateway.create_refund(setting, charge_id=pi["latest_charge"], amount=Decimal("20"), currency="EUR", metadata={},
                              idempotency_key="r1")


def test_list_refunds_pages_through_everything(setting, fake_stripe):
    pi = create_pi(setting, payment_method="pm_card_visa", confirm=True)
    for index in range(3):
        gateway.create_refund(setting, charge_id=pi["latest_charge"], amount=Decimal("1"), currency="EUR",
                              metadata={"refund_request_id": index}, idempotency_key=f"r{index}")
    assert len(gateway.list_refunds(setting, charge_id=pi["latest_charge"])) == 3
    found = gateway.find_refund_by_metadata(setting, charge_id=pi["latest_charge"], key="refund_request_id", value="1")
    assert found["metadata"]["refund_request_id"] == "1"


def test_events_are_listed_for_the_last_days(setting, fake_stripe):
    create_pi(setting, payment_method="pm_card_visa", confirm=True)
    events = list(gateway.iter_events(setting, created_gte=0))
    assert {"charge.succeeded", "payment_intent.succeeded"} <= {e["type"] for e in events}


def test_events_of_more_than_twenty_types_are_asked_for_in_groups_of_twenty(setting, fake_stripe):
    from providers.constants import WEBHOOK_EVENTS

    assert len(WEBHOOK_EVENTS) > gateway.EVENT_TYPES_PER_REQUEST  # Stripe refuses more than 20 types per listing
    create_pi(setting, payment_method="pm_card_visa", confirm=True)
    events = list(gateway.iter_events(setting, created_gte=0, types=list(WEBHOOK_EVENTS)))
    assert {"charge.succeeded", "payment_intent.succeeded"} <= {e["type"] for e in events}
    listings = [r["params"]["types"] for r in fake_stripe.requests if r["path"] == "/v1/events"]
    assert [len(types) for types in listings] == [20, len(WEBHOOK_EVENTS) - 20]
    assert sorted(sum(listings, [])) == sorted(WEBHOOK_EVENTS)


def test_no_call_leaves_where_calls_are_refused_and_calls_work_again_after(setting, fake_stripe):
    with gateway.calls_refused("a batch holds its locks"):
        with pytest.raises(gateway.StripeCallRefused, match="a batch holds its locks"):
            gateway.retrieve_charge(setting, "ch_anything")
        with pytest.raises(gateway.StripeCallRefused):  # money-moving calls too, before any request
            gateway.create_refund(setting, charge_id="ch_anything", amount=Decimal("1.00"), currency="EUR", metadata={},
                                  idempotency_key="refund-refused")
    assert not issubclass(gateway.StripeCallRefused, gateway.StripeGatewayError)  # never mistaken for Stripe's answer
    assert fake_stripe.count("GET", "/v1/") == 0 and fake_stripe.count("POST", "/v1/") == 0
    gateway.retrieve_account(setting)  # outside the block: calls go out again
    assert fake_stripe.count("GET", "/v1/account") == 1

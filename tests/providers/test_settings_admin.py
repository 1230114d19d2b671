"""Provider settings: write-only secrets, every SPEC §5 rule, resolution, encryption at rest, rotation."""

import threading

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from payments.models import PaymentInstrument
from providers import services as provider_services
from providers.crypto import decrypt
from providers.models import ProviderSetting
from providers.selectors import NoProviderSetting, PaymentReferenceError, check_payment_reference, setting_for_invoice
from providers.services import save_provider_setting
from tests.factories import (
    TEST_SECRET_KEY,
    TEST_WEBHOOK_SECRET,
    AccountFactory,
    BusinessEntityFactory,
    InvoiceFactory,
    ProviderSettingFactory,
)

pytestmark = pytest.mark.django_db


def form_data(**overrides):
    data = {"name": "Stripe DE", "provider": "stripe", "active": "on", "publishable_key": "pk_test_abc123",
            "secret_key": "sk_test_newsecret9876", "webhook_secret": "whsec_newwebhook5432", "method_card": "on",
            "business_entities": []}
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def test_secrets_are_never_rendered_and_empty_keeps_them(admin_client):
    setting = ProviderSettingFactory()
    url = reverse("admin:providers_providersetting_change", args=[setting.pk])
    html = admin_client.get(url).content.decode()
    assert TEST_SECRET_KEY not in html and TEST_WEBHOOK_SECRET not in html
    assert setting.secret_key_encrypted not in html
    assert "Set, ends in …" + TEST_SECRET_KEY[-4:] in html
    assert setting.webhook_endpoint if hasattr(setting, "webhook_endpoint") else True
    assert str(setting.webhook_id) in html and "charge.dispute.closed" in html
    response = admin_client.post(url, form_data(name=setting.name, publishable_key=setting.publishable_key, secret_key="",
                                                webhook_secret=""))
    assert response.status_code == 302, response.content.decode()[:2000]
    setting.refresh_from_db()
    assert setting.secret_key == TEST_SECRET_KEY and setting.webhook_secret == TEST_WEBHOOK_SECRET
    history = admin_client.get(reverse("admin:providers_providersetting_history", args=[setting.pk])).content.decode()
    assert TEST_SECRET_KEY not in history


def test_create_through_admin_encrypts_at_rest(admin_client):
    response = admin_client.post(reverse("admin:providers_providersetting_add"), form_data())
    assert response.status_code == 302
    setting = ProviderSetting.objects.get()
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_key_encrypted, webhook_secret_encrypted FROM providers_providersetting")
        raw_secret, raw_webhook = cursor.fetchone()
    assert "sk_test_newsecret9876" not in raw_secret and "whsec_" not in raw_webhook
    assert decrypt(raw_secret) == "sk_test_newsecret9876"
    assert setting.mode == "test"


@pytest.mark.parametrize("overrides, field, message", [
    ({"publishable_key": "pk_abc"}, "publishable_key", "pk_test_ or pk_live_"),
    ({"secret_key": "xx_test_1"}, "secret_key", "starts with sk_test_"),
    ({"secret_key": "sk_live_abcdef"}, "secret_key", "live secret key, but the publishable key is a test key"),
    ({"webhook_secret": "secret"}, "webhook_secret", "whsec_"),
    ({"enable_future_payments": "on"}, "future_payments_changeable", "could ever opt in"),
])
def test_validation_errors_are_shown_and_nothing_is_saved(admin_client, overrides, field, message):
    response = admin_client.post(reverse("admin:providers_providersetting_add"), form_data(**overrides))
    assert response.status_code == 200
    assert message in str(response.context["adminform"].form.errors[field])
    assert not ProviderSetting.objects.exists()
    assert "sk_test_newsecret9876" not in response.content.decode()


def test_restricted_key_is_accepted(admin_client):
    assert admin_client.post(reverse("admin:providers_providersetting_add"), form_data(secret_key="rk_test_restricted1")).status_code == 302


def test_one_active_setting_per_entity_and_one_active_default():
    entity = BusinessEntityFactory()
    ProviderSettingFactory(business_entities=[entity])
    second = ProviderSetting(name="second", publishable_key="pk_test_x", active=True)
    with pytest.raises(ValidationError, match="already the active Stripe setting"):
        save_provider_setting(second, entity_ids=[entity.pk], secret_key="sk_test_x")
    ProviderSettingFactory()  # the default
    with pytest.raises(ValidationError, match="active default"):
        save_provider_setting(ProviderSetting(name="third", publishable_key="pk_test_x", active=True), entity_ids=[],
                              secret_key="sk_test_x")
    inactive = save_provider_setting(ProviderSetting(name="fourth", publishable_key="pk_test_x", active=False),
                                     entity_ids=[entity.pk], secret_key="sk_test_x")
    assert inactive.pk


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_two_admins_saving_at_once_cannot_both_win():
    entity = BusinessEntityFactory()
    barrier, results = threading.Barrier(2), []

    def save(name):
        barrier.wait()
        try:
            save_provider_setting(ProviderSetting(name=name, publishable_key="pk_test_x", active=True), entity_ids=[entity.pk],
                                  secret_key="sk_test_x")
            results.append("saved")
        except ValidationError:
            results.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=save, args=(f"s{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["refused", "saved"]


def test_switching_test_to_live_deactivates_instruments():
    setting = ProviderSettingFactory()
    account = AccountFactory()
    PaymentInstrument.objects.create(account=account, provider_setting=setting, stripe_payment_method_id="pm_1", method_type="card",
                                     active=True)
    setting.publishable_key = "pk_live_abc"
    with pytest.raises(ValidationError, match="stored secret key is a test key"):
        save_provider_setting(setting, entity_ids=[], secret_key="")
    save_provider_setting(setting, entity_ids=[], secret_key="sk_live_abc")
    assert not PaymentInstrument.objects.get().active
    assert setting.mode == "live"


def test_resolution_order():
    entity, other_entity = BusinessEntityFactory(), BusinessEntityFactory()
    invoice = InvoiceFactory(account=AccountFactory(business_entity=entity))
    with pytest.raises(NoProviderSetting, match=entity.name):
        setting_for_invoice(invoice)
    default = ProviderSettingFactory()
    ProviderSettingFactory(business_entities=[other_entity])
    assert setting_for_invoice(invoice) == default
    own = ProviderSettingFactory(business_entities=[entity])
    assert setting_for_invoice(invoice) == own
    own.active = False
    own.save()
    assert setting_for_invoice(invoice) == default


@pytest.mark.parametrize("reference, ok", [("Invoice 2024-1", True), ("2024-0001", False), ("", False), ("Ä1", True)])
def test_payment_reference_needs_a_letter(reference, ok):
    invoice = InvoiceFactory(payment_reference=reference)
    if ok:
        check_payment_reference(invoice)
    else:
        with pytest.raises(PaymentReferenceError, match="at least one letter"):
            check_payment_reference(invoice)


def test_key_rotation(settings):
    key_a, key_b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [key_a]
    setting = ProviderSettingFactory()
    settings.FIELD_ENCRYPTION_KEYS = [key_b, key_a]
    call_command("rotate_encryption_keys")
    settings.FIELD_ENCRYPTION_KEYS = [key_b]
    setting.refresh_from_db()
    assert setting.secret_key == TEST_SECRET_KEY and setting.webhook_secret == TEST_WEBHOOK_SECRET


def test_test_connection_reports_account_and_mode_or_the_error(fake_stripe, admin_client):
    setting = ProviderSettingFactory(stripe_account_id="")
    report = provider_services.test_connection(setting)
    assert report.ok and fake_stripe.account_id in report.message and "test mode" in report.message
    setting.refresh_from_db()
    assert setting.stripe_account_id == fake_stripe.account_id
    broken = ProviderSettingFactory(secrets__secret_key="sk_test_invalid0000")
    response = admin_client.post(reverse("admin:providers_providersetting_changelist"),
                                 {"action": "test_connection_action", "_selected_action": [broken.pk]}, follow=True)
    text = response.content.decode()
    assert "Stripe rejected the API key" in text
    assert "sk_test_invalid0000" not in text


def test_unreachable_stripe_is_a_message_not_a_500(settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    report = provider_services.test_connection(ProviderSettingFactory())
    assert not report.ok and "could not be reached" in report.message


@pytest.mark.parametrize(("posted", "saved"), [(None, 7), ("14", 14), ("", 7)])
def test_the_expected_payout_delay_is_set_per_setting_with_a_default_of_seven_days(admin_client, posted, saved):
    response = admin_client.post(reverse("admin:providers_providersetting_add"), form_data(payout_delay_days=posted))
    assert response.status_code == 302
    assert ProviderSetting.objects.get().payout_delay_days == saved


@pytest.mark.parametrize("posted", ["0", "61", "seven"])
def test_an_expected_payout_delay_outside_one_to_sixty_days_is_refused(admin_client, posted):
    response = admin_client.post(reverse("admin:providers_providersetting_add"), form_data(payout_delay_days=posted))
    assert response.status_code == 200 and not ProviderSetting.objects.exists()
    assert response.context["adminform"].form.errors["payout_delay_days"]

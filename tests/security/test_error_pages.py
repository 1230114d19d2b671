"""Error pages and reports never show a credential: not a password inside a URL or DSN (the review saw REDIS_URL,
CELERY_BROKER_URL and DATABASE_URL with theirs on the DEBUG page), nor a stored secret that cannot be decrypted."""

import logging
import secrets
import sys

import pytest
from cryptography.fernet import Fernet
from django.test import RequestFactory
from django.urls import reverse
from django.views.debug import ExceptionReporter

from payments.tokens import make_token
from tests.factories import InvoiceFactory, ProviderSettingFactory

# Made at run time: the page also shows this file's source lines around the failure.
PASSWORDS = {name: secrets.token_hex(8) for name in ("redis", "broker", "db", "cache", "dsn", "local")}


def test_the_debug_page_hides_the_password_of_every_url_and_dsn(settings):
    settings.DEBUG = True
    settings.REDIS_URL = f"redis://:{PASSWORDS['redis']}@redis.internal:6379/0"
    settings.CELERY_BROKER_URL = f"redis://worker:{PASSWORDS['broker']}@redis.internal:6379/0"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"rediss://cache:{PASSWORDS['cache']}@cache.internal:6380/1"}}
    settings.ERROR_TRACKER_DSN = f"https://public:{PASSWORDS['dsn']}@errors.example.com/42"
    # runserver copies the process environment into every request's META: DATABASE_URL is there.
    request = RequestFactory().get("/", DATABASE_URL=f"postgres://billing:{PASSWORDS['db']}@db.internal:5432/billing")
    connection_url = f"amqp://guest:{PASSWORDS['local']}@broker.internal//"  # a local variable of the failing frame  # noqa: F841
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        reporter = ExceptionReporter(request, *sys.exc_info())
        pages = reporter.get_traceback_html() + reporter.get_traceback_text()
    for name, password in PASSWORDS.items():
        assert password not in pages, name
    # The rest of each address stays, for the debugging the page is for.
    assert "redis.internal:6379/0" in pages and "db.internal:5432/billing" in pages and "broker.internal" in pages


@pytest.mark.django_db
def test_a_stored_secret_that_cannot_be_decrypted_answers_the_customer_a_polite_503(client, fake_stripe, settings, caplog):
    ProviderSettingFactory(name="Acme EU")
    invoice = InvoiceFactory()
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the key that encrypted it was rotated away
    token = make_token(invoice.pk)
    with caplog.at_level(logging.ERROR):
        response = client.post(reverse("payments:create-intent", args=[token]), data='{"method_type": "card"}',
                               content_type="application/json")
    assert response.status_code == 503
    assert "not available at the moment" in response.json()["error"]
    logged = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert any("Acme EU" in message and "FIELD_ENCRYPTION_KEYS" in message for message in logged), logged
    page = client.get(reverse("payments:return", args=[token]), {"payment_intent": "pi_123"})
    assert page.status_code in (400, 503)  # no attempt of this intent: refused before any secret is needed
    assert fake_stripe.requests == []


@pytest.mark.django_db
def test_the_return_page_with_an_undecryptable_secret_is_a_page_not_a_500(client, fake_stripe, settings):
    from payments.models import PaymentAttempt

    setting = ProviderSettingFactory()
    invoice = InvoiceFactory()
    PaymentAttempt.objects.create(invoice=invoice, provider_setting=setting, number=1, source="page", amount=invoice.amount,
                                  currency=invoice.currency, idempotency_key="pi-x-1", payment_intent_id="pi_123")
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    response = client.get(reverse("payments:return", args=[make_token(invoice.pk)]), {"payment_intent": "pi_123"})
    assert response.status_code == 503
    text = response.content.decode()
    assert "not available at the moment" in text and "Traceback" not in text

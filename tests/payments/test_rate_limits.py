"""The payment page's intent endpoints are rate-limited per payment link and per client address (django-ratelimit on
the Redis cache): 429 with a sentence, as JSON for the page's script (payments/static/payments/pay.js)."""

import json
import os

import pytest
from django.core.cache import caches
from django.urls import reverse

from payments.models import PaymentAttempt
from payments.tokens import SAVE_METHOD, make_token
from tests.factories import InvoiceFactory, ProviderSettingFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def setting(fake_stripe):
    return ProviderSettingFactory(method_card=True, method_sepa_debit=True, enable_future_payments=True,
                                  future_payments_active=False, future_payments_changeable=True)


def start(client, invoice, method="card", *, address="198.51.100.7", token=None, **headers):
    return client.post(reverse("payments:create-intent", args=[token or make_token(invoice.pk)]),
                       data=json.dumps({"method_type": method}), content_type="application/json", REMOTE_ADDR=address, **headers)


def test_too_many_starts_of_one_payment_link_answer_429_with_a_sentence(client, setting, fake_stripe, settings):
    settings.PAYMENT_START_RATE_PER_LINK = "4/h"
    invoice = InvoiceFactory()
    link = make_token(invoice.pk)
    answers = [start(client, invoice, ("card", "sepa_debit")[n % 2], token=link, address=f"198.51.100.{n}").status_code
               for n in range(6)]
    assert answers == [200, 200, 200, 200, 429, 429]  # even from a new address each time
    refused = start(client, invoice, token=link, address="198.51.100.99")
    assert refused.status_code == 429 and refused["Content-Type"] == "application/json"
    assert "Too many payment attempts" in refused.json()["error"]
    assert fake_stripe.count("POST", "/v1/payment_intents") == 4 + 3  # four creates, three cancels of the replaced ones
    assert start(client, InvoiceFactory()).status_code == 200  # another invoice's link is not affected


def test_too_many_starts_from_one_address_answer_429(client, setting, fake_stripe, settings):
    settings.PAYMENT_START_RATE_PER_ADDRESS = "3/h"
    invoices = [InvoiceFactory() for _ in range(4)]
    assert [start(client, invoice).status_code for invoice in invoices] == [200, 200, 200, 429]
    assert PaymentAttempt.objects.count() == 3
    assert start(client, invoices[3], address="192.0.2.44").status_code == 200  # someone else


def test_a_client_cannot_pick_its_own_address_with_a_header(client, setting, settings):
    settings.PAYMENT_START_RATE_PER_ADDRESS = "3/h"
    answers = [start(client, InvoiceFactory(), HTTP_X_FORWARDED_FOR=f"10.1.2.{n}").status_code for n in range(4)]
    assert answers == [200, 200, 200, 429]


def test_behind_a_proxy_the_address_is_the_one_the_proxy_appended(client, setting, settings):
    settings.BEHIND_PROXY = True
    settings.PAYMENT_START_RATE_PER_ADDRESS = "3/h"
    proxy = "10.0.0.2"
    # The attacker prepends a fresh address to every request; the proxy appends the one it saw.
    answers = [start(client, InvoiceFactory(), address=proxy, HTTP_X_FORWARDED_FOR=f"10.9.9.{n}, 203.0.113.7").status_code
               for n in range(4)]
    assert answers == [200, 200, 200, 429]
    assert start(client, InvoiceFactory(), address=proxy, HTTP_X_FORWARDED_FOR="198.51.100.20").status_code == 200


def test_saving_a_method_is_limited_as_well(client, setting, settings):
    settings.PAYMENT_START_RATE_PER_LINK = "2/h"
    url = reverse("payments:create-setup-intent", args=[make_token(InvoiceFactory().pk, purpose=SAVE_METHOD)])
    answers = [client.post(url, data="{}", content_type="application/json").status_code for _ in range(3)]
    assert answers == [200, 200, 429]


@pytest.mark.services
def test_the_counters_live_in_redis_shared_by_every_web_process():
    assert os.environ.get("REDIS_URL")
    assert caches["default"].__class__.__name__ == "RedisCache"


def test_without_redis_the_counters_fall_back_to_local_memory(tmp_path):
    import subprocess
    import sys

    from tests.security.test_production_settings import ROOT

    env = {"PATH": os.environ["PATH"], "DEBUG": "true", "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    script = "import django; django.setup(); from django.conf import settings; print(settings.CACHES['default']['BACKEND'])"
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().endswith("LocMemCache"), result.stderr[-2000:]


def test_redis_down_lets_the_customer_pay_and_says_so_in_the_log(client, setting, settings, caplog):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0",
                                   "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2}}}
    assert start(client, InvoiceFactory()).status_code == 200
    assert any("rate limits not checked" in record.getMessage() for record in caplog.records)

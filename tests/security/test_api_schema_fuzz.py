"""schemathesis against the API's schema (/api/schema/): every operation, generated inputs, as a finance user with a token.

Checks per input: no 5xx, the answer matches the schema's status codes, and an answer that is not a
success wrote nothing (row counts of the money tables unchanged). Real ids exist (a paid invoice, its
payment balance, an open payment entry), so generated requests reach the services, not only 404s.
"""

import json
from decimal import Decimal

import pytest
import schemathesis
from django.contrib.auth.models import Group, User
from django.utils import timezone
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token

from billing.models import Balance, Invoice, PaymentEntry
from config.wsgi import application
from refunds.models import RefundRequest


def generated_schema() -> dict:
    """What /api/schema/ serves to staff (it is staff only), generated as drf-spectacular does for that view."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


schema = schemathesis.openapi.from_dict(generated_schema())
schema.app = application

TABLES = (Balance, Invoice, PaymentEntry, RefundRequest)
FIGURES = {"inputs": 0, "server_errors": 0, "invalid_writes": 0}


def counts() -> tuple:
    return tuple(model.objects.count() for model in TABLES) + (
        tuple(Balance.objects.order_by("id").values_list("id", "amount", "invoice_id", "locked")),)


@pytest.fixture
def keep_test_connection():
    """As Django's test client does: the WSGI app must not close the test's transaction-bound connection."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_token(db, fake_stripe, keep_test_connection):
    from tests.factories import BalanceFactory, InvoiceFactory, PaymentEntryFactory, ProviderSettingFactory

    setting = ProviderSettingFactory()
    for _ in range(2):
        invoice = InvoiceFactory(amount=Decimal("100.00"))
        BalanceFactory(invoice=invoice, account=invoice.account, amount=Decimal("-40.00"), transaction_number=f"ch_fuzz{invoice.pk}",
                       provider_setting=setting)
        PaymentEntryFactory(transaction_number=f"ch_entry{invoice.pk}", provider_setting=setting, amount=Decimal("-5.00"),
                            date=timezone.now(), account=invoice.account)
    user = User.objects.create_user("fuzz-finance", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    return Token.objects.create(user=user).key


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_operations_never_fail_with_a_server_error_or_write_on_refusal(case, api_token):
    before = counts()
    response = case.call(headers={"Authorization": f"Token {api_token}"})
    FIGURES["inputs"] += 1
    FIGURES["server_errors"] += response.status_code >= 500
    wrote_on_refusal = response.status_code >= 300 and counts() != before
    FIGURES["invalid_writes"] += wrote_on_refusal
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
    assert not wrote_on_refusal, f"{case.method} {case.formatted_path} answered {response.status_code} but wrote"
    case.validate_response(response, checks=[schemathesis.checks.not_a_server_error, schemathesis.checks.status_code_conformance])


def test_report_figures(capsys):
    """Runs after the generated cases (module order): the figures the reliability section reports."""
    if not FIGURES["inputs"]:
        pytest.skip("the generated cases did not run (selected out)")
    with capsys.disabled():
        print(f"\nschemathesis: {FIGURES['inputs']} inputs, {FIGURES['server_errors']} 5xx, {FIGURES['invalid_writes']} invalid writes")
    assert FIGURES["inputs"] >= 9 * 10, FIGURES  # every operation got a fair number of inputs
    assert FIGURES["server_errors"] == 0 and FIGURES["invalid_writes"] == 0, FIGURES

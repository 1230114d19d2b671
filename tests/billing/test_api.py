"""The read API and the schema show the same numbers as the books; writes answer 400 with a reason."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from billing import ledger
from tests.factories import AccountFactory, BalanceFactory, InvoiceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(admin_user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin_user).key}")
    return client


def test_invoices_and_balances_with_open_amounts(api):
    invoice = InvoiceFactory(amount=Decimal("100"))
    ledger.book_payment(account=invoice.account, invoice=invoice, amount=Decimal("40"), currency="EUR",
                          date=invoice.finalized_at, transaction_number="ch_api")
    body = api.get(reverse("billing:invoice-detail", args=[invoice.pk])).json()
    assert body["open_amount"] == "60.000" and body["status"] == "open"
    balances = api.get(reverse("billing:balance-list"), {"transaction_number": "ch_api"}).json()
    assert balances["count"] == 1 and balances["results"][0]["amount"] == "-40.000"
    assert api.get(reverse("billing:balance-list"), {"transaction_number": "nothing"}).json()["count"] == 0


def test_schema_and_docs(api):
    schema = api.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/balances/{balance_id}/refund/" in schema.content
    assert api.get("/api/docs/").status_code == 200


def test_assignment_errors_are_400_with_a_reason(api):
    account = AccountFactory()
    balance = BalanceFactory(account=account, invoice=None, amount=Decimal("-10"))
    other = InvoiceFactory()
    response = api.post(reverse("billing:assign-balance", args=[balance.pk]), {"document": other.pk}, format="json")
    assert response.status_code == 400 and "another account" in response.json()["detail"]
    assert api.post(reverse("billing:assign-balance", args=[balance.pk]), {"document": "x"}, format="json").status_code == 400
    mine = InvoiceFactory(account=account)
    ok = api.post(reverse("billing:assign-balance", args=[balance.pk]), {"document": mine.pk}, format="json")
    assert ok.status_code == 200 and ok.json()["invoice"] == mine.pk


def test_api_requires_staff(client):
    assert client.get(reverse("billing:invoice-list")).status_code in (401, 403)
    user = User.objects.create_user("plain", password="pw")
    client.force_login(user)
    assert client.get(reverse("billing:invoice-list")).status_code == 403


@pytest.mark.parametrize("query", [{"limit": str(2**63 - 1)}, {"limit": "1" + "0" * 30, "offset": "1"}, {"offset": str(2**63)},
                                   {"limit": "5000", "offset": "0"}])
def test_any_limit_and_offset_give_a_page_never_a_server_error(api, query):
    """A limit past PostgreSQL's bigint once made the page's LIMIT overflow (500, found by the schema fuzz test)."""
    BalanceFactory.create_batch(3)
    for name in ("billing:balance-list", "billing:invoice-list"):
        response = api.get(reverse(name), query)
        assert response.status_code == 200, response.content[:300]
        body = response.json()
        assert body["count"] >= 3 and len(body["results"]) == (0 if "offset" in query and int(query["offset"]) > 3 else
                                                               min(body["count"], 1000) - int(query.get("offset", 0)))

"""Finance's list of disputes: amount by currency, reason, status, evidence due date, soonest first, overdue marked and
never offered "Submit evidence" (SPEC §14)."""

import re

import pytest
from django.urls import reverse

from tests.factories import AccountFactory, InvoiceFactory

pytestmark = pytest.mark.django_db


def rows(html: str) -> list[str]:
    body = html.split('id="result_list"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)[1:]  # without the header


def test_soonest_due_first_overdue_marked_and_not_offered_evidence(disputed, finance_client):
    later = disputed(due_in_days=10)[2]
    soon = disputed(due_in_days=2, reason="fraudulent")[2]
    overdue = disputed(InvoiceFactory(amount="1234.50", account=AccountFactory()), due_in_days=-1)[2]
    response = finance_client.get(reverse("admin:payments_dispute_changelist"))
    assert response.status_code == 200
    listed = rows(response.content.decode())
    assert [next(d for d in (overdue, soon, later) if d.dispute_id in row) for row in listed] == [overdue, soon, later]
    first, second, third = listed
    assert "(overdue)" in first and "1234.50 EUR" in first
    assert "Submit evidence" not in first and "Accept dispute" in first  # past due: Stripe takes no evidence any more
    assert "(overdue)" not in second and "Submit evidence" in second and "100.00 EUR" in second
    assert "fraudulent" in second and "Needs response" in second
    assert soon.transaction.invoice.number in second and soon.transaction.charge_id in second  # links to invoice and balances
    assert reverse("admin:billing_invoice_change", args=[soon.transaction.invoice_id]) in second


def test_the_overdue_filter_lists_only_what_is_past_due(disputed, finance_client):
    disputed(due_in_days=3)
    overdue = disputed(due_in_days=-2)[2]
    response = finance_client.get(reverse("admin:payments_dispute_changelist") + "?due=overdue")
    listed = rows(response.content.decode())
    assert len(listed) == 1 and overdue.dispute_id in listed[0]


def test_a_past_due_dispute_refuses_evidence_with_a_sentence(disputed, finance_client, fake_stripe):
    dispute = disputed(due_in_days=-1)[2]
    seen = len(fake_stripe.requests)
    response = finance_client.get(reverse("admin:disputes_submit_evidence", args=[dispute.pk]), follow=True)
    assert "takes no evidence now: its evidence was due" in response.content.decode()
    assert len(fake_stripe.requests) == seen

"""Disputes end to end against localstripe (issue 22): the cardholder's bank disputes a paid invoice's charge through
the adapter's demo hook (`manage.py demo_dispute`, as in the offline demo); `charge.dispute.created` and
`charge.dispute.funds_withdrawn` arrive as signed webhooks and the worker books the withdrawal; then finance answers
from the admin over HTTP: evidence submitted (the receipt and invoice PDFs uploaded through the Files API, the dispute
under review at localstripe), or the dispute accepted (lost at localstripe; its `charge.dispute.closed` changes the
books no further). `manage.py check_books` finds the books sound after each step."""

import re
from decimal import Decimal

import pytest
import requests

from tests.e2e.stack import SECRET_KEY, csrf_from

pytestmark = [pytest.mark.services, pytest.mark.slow]


def dispute_row(stack, name: str) -> dict | None:
    rows = stack.rows("SELECT d.* FROM payments_dispute d JOIN payments_paymenttransaction t ON t.id = d.transaction_id "
                      "WHERE t.invoice_id = %s", stack.setup["invoices"][name]["id"])
    return rows[0] if rows else None


def open_demo_dispute(stack, name: str) -> dict:
    """`manage.py demo_dispute` pays the open invoice with the offline test card, then has localstripe dispute the charge."""
    output = stack.manage("demo_dispute", "--invoice", f"E2E-{name}")
    assert re.search(rf"Demo dispute dp_\w+ of [\d.]+ EUR \(E2E-{name}, fraudulent\): needs response, evidence due \d{{4}}-", output), output
    dispute = dispute_row(stack, name)
    assert dispute["funds_withdrawn"] and dispute["status"] == "needs_response" and dispute["reason"] == "fraudulent"
    assert dispute["evidence_due_by"] is not None and not dispute["has_evidence"]
    # The same command again opens no second dispute of the charge.
    assert "already disputed" in stack.manage("demo_dispute", "--invoice", f"E2E-{name}")
    return dispute


def books_sound(stack) -> None:
    assert "The books are sound" in stack.manage("check_books")


def adjustments(stack, name: str) -> list[Decimal]:
    return sorted(row["amount"] for row in stack.balances(name) if row["type"] != "payment")


def test_a_dispute_arrives_by_webhook_is_booked_and_is_answered_with_evidence_from_the_admin(stack):
    dispute = open_demo_dispute(stack, "dispute_evidence")
    assert dispute["amount"] == Decimal("90.00") and dispute["currency"] == "EUR"
    stack.wait_for(lambda: adjustments(stack, "dispute_evidence"), what="the withdrawal to be booked")
    books_sound(stack)
    charge = stack.stripe("GET", f"/v1/disputes/{dispute['dispute_id']}").json()["charge"]
    assert stack.stripe("GET", f"/v1/charges/{charge}").json()["disputed"] is True

    finance = stack.admin_session()
    listing = finance.get(f"{stack.web_url}/admin/payments/dispute/", timeout=30).text
    assert dispute["dispute_id"] in listing and "90.00" in listing and "Submit evidence" in listing
    url = f"{stack.web_url}/admin/payments/dispute/{dispute['id']}/evidence/"
    form_page = finance.get(url, timeout=30)
    assert form_page.status_code == 200 and "Kunde AG" in form_page.text, form_page.text[-2000:]
    done = finance.post(url, data={"csrfmiddlewaretoken": csrf_from(form_page.text), "customer_name": "Kunde AG",
                                   "customer_email_address": "kunde@example.com", "product_description": "Consulting, November",
                                   "service_date": "2026-11-30", "uncategorized_text": "The customer used the service."},
                        headers={"Referer": url}, timeout=120)
    assert done.status_code == 200 and f"Evidence for dispute {dispute['dispute_id']} submitted" in done.text, done.text[-3000:]

    at_stripe = stack.stripe("GET", f"/v1/disputes/{dispute['dispute_id']}").json()
    assert at_stripe["status"] == "under_review"
    assert at_stripe["evidence_details"]["has_evidence"] and at_stripe["evidence_details"]["submission_count"] == 1
    assert at_stripe["evidence"]["customer_name"] == "Kunde AG" and at_stripe["evidence"]["service_date"] == "2026-11-30"
    for field in ("receipt", "service_documentation"):  # the two PDFs, uploaded through the Files API
        upload = stack.stripe("GET", f"/v1/files/{at_stripe['evidence'][field]}").json()
        assert upload["purpose"] == "dispute_evidence" and upload["filename"].endswith(".pdf") and upload["size"] > 1000, upload
    # `charge.dispute.updated` arrives and keeps what the admin recorded.
    row = stack.wait_for(lambda: (r := dispute_row(stack, "dispute_evidence"))["last_event_created"] and r["has_evidence"] and r,
                         what="the dispute's update")
    assert row["status"] == "under_review" and row["evidence_submission_count"] == 1
    assert set(row["evidence_file_ids"]) == {"receipt", "service_documentation"}
    stack.wait_for(lambda: stack.rows("SELECT COUNT(*) AS n FROM webhooks_webhookevent WHERE type = 'charge.dispute.updated' "
                                      "AND status = 'processed'")[0]["n"] >= 1, what="charge.dispute.updated to be processed")
    books_sound(stack)


def test_a_dispute_accepted_from_the_admin_is_lost_at_stripe_and_its_closed_event_books_nothing_more(stack):
    dispute = open_demo_dispute(stack, "dispute_accept")
    withdrawn = stack.wait_for(lambda: adjustments(stack, "dispute_accept"), what="the withdrawal to be booked")
    finance = stack.admin_session()
    url = f"{stack.web_url}/admin/payments/dispute/{dispute['id']}/accept/"
    page = finance.get(url, timeout=30)
    assert page.status_code == 200 and dispute["dispute_id"] in page.text
    done = finance.post(url, data={"csrfmiddlewaretoken": csrf_from(page.text)}, headers={"Referer": url}, timeout=60)
    assert done.status_code == 200 and f"Dispute {dispute['dispute_id']} accepted" in done.text, done.text[-3000:]

    assert stack.stripe("GET", f"/v1/disputes/{dispute['dispute_id']}").json()["status"] == "lost"
    stack.wait_for(lambda: stack.rows("SELECT COUNT(*) AS n FROM webhooks_webhookevent WHERE type = 'charge.dispute.closed' "
                                      "AND status = 'processed'")[0]["n"] >= 1, what="charge.dispute.closed to be processed")
    row = dispute_row(stack, "dispute_accept")
    assert row["status"] == "lost" and row["accepted_by"] == "finance"
    assert adjustments(stack, "dispute_accept") == withdrawn  # the money went when the funds were withdrawn, once
    # Nothing can be answered any more: the admin says so in a sentence, and Stripe is not asked again.
    again = finance.get(url, timeout=30)
    assert again.status_code == 200 and "can no longer be accepted" in again.text
    books_sound(stack)
    failed = stack.rows("SELECT type, status FROM webhooks_webhookevent WHERE type LIKE 'charge.dispute.%%' "
                        "AND status NOT IN ('processed', 'ignored')")
    assert failed == []


def test_the_files_api_keeps_uploads_and_replays_an_idempotency_key_only_for_the_same_content(stack):
    def upload(content: bytes, key: str, purpose: str = "dispute_evidence"):
        return requests.post(f"{stack.stripe_url}/v1/files", auth=(SECRET_KEY, ""), headers={"Idempotency-Key": key}, timeout=30,
                             data={"purpose": purpose}, files={"file": ("receipt.pdf", content, "application/pdf")})

    first = upload(b"%PDF-1.7 receipt", "upload-1")
    assert first.status_code == 200 and first.json()["size"] == len(b"%PDF-1.7 receipt"), first.text
    replay = upload(b"%PDF-1.7 receipt", "upload-1")
    assert replay.json()["id"] == first.json()["id"] and replay.headers["Idempotent-Replayed"] == "true"
    other = upload(b"%PDF-1.7 another receipt", "upload-1")
    assert other.status_code == 400 and other.json()["error"]["type"] == "idempotency_error"
    assert upload(b"x", "upload-2", purpose="holiday_photos").status_code == 400
    assert stack.stripe("GET", f"/v1/files/{first.json()['id']}").json()["purpose"] == "dispute_evidence"

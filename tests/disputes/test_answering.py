"""Answering a dispute from the admin through the fake Stripe: accept it (Stripe closes it as lost; the books move only
with the `closed` event), or submit evidence (receipt and invoice PDFs uploaded, text fields, submitted); a refusal
from Stripe is a sentence and saves nothing; only staff with the change permission on disputes may act (SPEC §14)."""

from decimal import Decimal

import pytest
from django.urls import reverse

from billing.constants import BalanceType, InvoiceStatus
from billing.models import Balance
from billing.selectors import open_amount
from payments.constants import DisputeStatus
from receipts.models import Receipt
from tests.receipts.conftest import pdf_text

pytestmark = pytest.mark.django_db


def books(charge_id):
    return sorted(Balance.objects.filter(transaction_number=charge_id).values_list("type", "amount", "invoice_id", "locked"))


def stripe_posts(fake_stripe, path):
    return [request for request in fake_stripe.requests if request["method"] == "POST" and request["path"] == path]


def test_accept_asks_first_then_stripe_closes_it_and_the_books_move_with_the_closed_event(disputed, finance_client, fake_stripe,
                                                                                          deliver_all):
    invoice, charge, dispute, _ = disputed()
    before = books(charge)
    url = reverse("admin:disputes_accept", args=[dispute.pk])
    page = finance_client.get(url)
    assert page.status_code == 200 and "Yes, accept the dispute" in page.content.decode() and "100.00 EUR" in page.content.decode()
    assert not stripe_posts(fake_stripe, f"/v1/disputes/{dispute.dispute_id}/close")  # the confirmation page calls nobody
    response = finance_client.post(url, follow=True)
    assert "accepted: Stripe closed it as lost" in response.content.decode()
    close, = stripe_posts(fake_stripe, f"/v1/disputes/{dispute.dispute_id}/close")
    assert close["idempotency_key"] == f"dispute-close-{dispute.dispute_id}"
    dispute.refresh_from_db()
    assert (dispute.status, dispute.accepted_by, dispute.funds_withdrawn) == (DisputeStatus.LOST, "fin", False)
    assert books(charge) == before and not any(row[0] == BalanceType.ADJUSTMENT for row in before)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    # Stripe tells the webhooks (the funds_withdrawn event was never delivered): now the ledger takes the money back.
    deliver_all(fake_stripe.events_of("charge.dispute.closed"))
    dispute.refresh_from_db()
    invoice.refresh_from_db()
    assert dispute.funds_withdrawn and invoice.status == InvoiceStatus.OPEN and open_amount(invoice) == Decimal("100.00")
    assert [row[:3] for row in books(charge) if row[0] == BalanceType.ADJUSTMENT] == [(BalanceType.ADJUSTMENT, Decimal("100.000"), invoice.pk)]
    # A second accept is refused here, without calling Stripe again.
    finance_client.post(url)
    assert len(stripe_posts(fake_stripe, f"/v1/disputes/{dispute.dispute_id}/close")) == 1


def test_submit_evidence_uploads_the_receipt_and_invoice_pdfs_and_submits_the_text(disputed, finance_client, fake_stripe):
    invoice, charge, dispute, _ = disputed()
    url = reverse("admin:disputes_submit_evidence", args=[dispute.pk])
    form = finance_client.get(url).context["form"]
    assert form.initial["customer_name"] == "Ada Lovelace" and form.initial["customer_email_address"] == "ada@example.com"
    assert invoice.number in form.initial["product_description"] and form.initial["service_date"] is not None
    response = finance_client.post(url, {
        "customer_name": "Ada Lovelace", "customer_email_address": "ada@example.com",
        "product_description": f"Consulting, invoice {invoice.number}", "service_date": "2026-11-30",
        "uncategorized_text": "The customer used the service and paid by card with 3-D Secure."}, follow=True)
    assert f"Evidence for dispute {dispute.dispute_id} submitted" in response.content.decode()
    uploads = stripe_posts(fake_stripe, "/v1/files")
    assert len(uploads) == 2 and {upload["params"]["purpose"] for upload in uploads} == {"dispute_evidence"}
    assert all(upload["idempotency_key"].startswith(f"dispute-{dispute.dispute_id}-") for upload in uploads)
    update, = stripe_posts(fake_stripe, f"/v1/disputes/{dispute.dispute_id}")
    evidence = update["params"]["evidence"]
    assert update["params"]["submit"] == "true" and update["idempotency_key"].startswith(f"dispute-evidence-{dispute.dispute_id}-")
    assert (evidence["customer_name"], evidence["customer_email_address"], evidence["service_date"]) == \
        ("Ada Lovelace", "ada@example.com", "2026-11-30")
    assert evidence["product_description"] == f"Consulting, invoice {invoice.number}" and "3-D Secure" in evidence["uncategorized_text"]
    file_ids = {evidence["receipt"], evidence["service_documentation"]}
    assert file_ids == {fake_stripe.objects[upload_id]["id"] for upload_id in fake_stripe.file_contents}
    receipt_text = pdf_text(fake_stripe.file_contents[evidence["receipt"]])
    invoice_text = pdf_text(fake_stripe.file_contents[evidence["service_documentation"]])
    receipt = Receipt.objects.get(payment_transaction__charge_id=charge)
    for expected in ("Payment receipt", receipt.number, invoice.number, "€100.00", charge):
        assert expected in receipt_text, (expected, receipt_text)
    for expected in ("Invoice", invoice.number, "€100.00", "Ada Lovelace"):
        assert expected in invoice_text, (expected, invoice_text)
    dispute.refresh_from_db()
    assert dispute.status == DisputeStatus.UNDER_REVIEW and dispute.evidence_submission_count == 1 and dispute.has_evidence
    assert dispute.evidence_submitted_at is not None and dispute.evidence_submitted_by == "fin"
    assert dispute.evidence_file_ids == {"receipt": evidence["receipt"], "service_documentation": evidence["service_documentation"]}
    assert dispute.evidence_submitted["customer_name"] == "Ada Lovelace"
    assert fake_stripe.objects[dispute.dispute_id]["status"] == "under_review"


def test_the_same_documents_reuse_their_idempotency_keys(disputed, fake_stripe):
    from disputes.services import evidence_documents

    dispute = disputed()[2]
    first, second = evidence_documents(dispute), evidence_documents(dispute)
    assert [(field, name) for field, name, _ in first] == [("receipt", f"{Receipt.objects.get().number}.pdf"),
                                                           ("service_documentation", f"{dispute.transaction.invoice.number}.pdf")]
    assert first == second  # the same bytes: a retry after a lost answer sends the same key, Stripe replays


@pytest.mark.parametrize("failing_path", ["/v1/files", "/v1/disputes/"])
def test_a_refusal_from_stripe_is_a_sentence_and_nothing_is_saved(disputed, finance_client, fake_stripe, failing_path):
    dispute = disputed()[2]
    updated_at = dispute.updated_at
    fake_stripe.inject("POST", failing_path, status=400, body={"error": {
        "type": "invalid_request_error", "message": "This dispute cannot take evidence right now."}})
    response = finance_client.post(reverse("admin:disputes_submit_evidence", args=[dispute.pk]), {
        "customer_name": "Ada Lovelace", "customer_email_address": "ada@example.com", "product_description": "Consulting",
        "service_date": "2026-11-30", "uncategorized_text": ""})
    assert response.status_code == 200  # the form again, with the sentence
    assert (f"Stripe did not take the evidence for dispute {dispute.dispute_id}: This dispute cannot take evidence right now."
            in response.content.decode())
    dispute.refresh_from_db()
    assert (dispute.status, dispute.evidence_submitted_at, dispute.evidence_file_ids, dispute.evidence_submission_count) == \
        (DisputeStatus.NEEDS_RESPONSE, None, {}, 0) and dispute.updated_at == updated_at


def test_a_refused_accept_is_a_sentence_and_changes_nothing(disputed, finance_client, fake_stripe):
    dispute = disputed()[2]
    fake_stripe.inject("POST", f"/v1/disputes/{dispute.dispute_id}/close", status=400, body={"error": {
        "type": "invalid_request_error", "message": "This dispute is already closed."}})
    response = finance_client.post(reverse("admin:disputes_accept", args=[dispute.pk]), follow=True)
    assert f"Stripe did not accept dispute {dispute.dispute_id}: This dispute is already closed." in response.content.decode()
    dispute.refresh_from_db()
    assert (dispute.status, dispute.accepted_at) == (DisputeStatus.NEEDS_RESPONSE, None)


def test_a_bad_form_is_a_form_error_and_calls_nobody(disputed, finance_client, fake_stripe):
    dispute = disputed()[2]
    seen = len(fake_stripe.requests)
    response = finance_client.post(reverse("admin:disputes_submit_evidence", args=[dispute.pk]), {
        "customer_name": "", "customer_email_address": "not-an-address", "product_description": "x", "service_date": "30.11.2026"})
    assert response.status_code == 200 and set(response.context["form"].errors) == {"customer_name", "customer_email_address",
                                                                                     "service_date"}
    assert len(fake_stripe.requests) == seen


def test_only_staff_with_the_change_permission_on_disputes_may_act(disputed, staff_client, client, fake_stripe):
    dispute = disputed()[2]
    accept, evidence = (reverse("admin:disputes_accept", args=[dispute.pk]), reverse("admin:disputes_submit_evidence", args=[dispute.pk]))
    viewer = staff_client("view_dispute")
    listing = viewer.get(reverse("admin:payments_dispute_changelist"))
    assert listing.status_code == 200 and dispute.dispute_id in listing.content.decode()
    assert "Accept dispute" not in listing.content.decode() and "Submit evidence" not in listing.content.decode()
    seen = len(fake_stripe.requests)
    for url in (accept, evidence):
        assert viewer.get(url).status_code == 403 and viewer.post(url).status_code == 403
    assert client.post(accept).status_code == 302  # not logged in: the admin's login page
    assert len(fake_stripe.requests) == seen
    dispute.refresh_from_db()
    assert dispute.status == DisputeStatus.NEEDS_RESPONSE
    answerer = staff_client("view_dispute", "change_dispute")
    assert answerer.get(accept).status_code == 200 and answerer.get(evidence).status_code == 200
    assert "Accept dispute" in answerer.get(reverse("admin:payments_dispute_changelist")).content.decode()
    change = reverse("admin:payments_dispute_change", args=[dispute.pk])
    assert accept in answerer.get(change).content.decode() and evidence in answerer.get(change).content.decode()
    assert viewer.get(change).status_code == 200 and accept not in viewer.get(change).content.decode()


def test_the_service_refuses_evidence_once_due_or_answered_without_calling_stripe(disputed, fake_stripe):
    from disputes.services import DisputeActionError, accept_dispute, submit_evidence

    overdue = disputed(due_in_days=-1)[2]
    seen = len(fake_stripe.requests)
    text = {"customer_name": "Ada", "customer_email_address": "", "product_description": "Consulting", "service_date": None,
            "uncategorized_text": "", "submitted_by": "fin"}
    with pytest.raises(DisputeActionError, match=f"The evidence for dispute {overdue.dispute_id} was due .* no longer takes it"):
        submit_evidence(overdue, **text)
    assert len(fake_stripe.requests) == seen
    lost = accept_dispute(disputed()[2], accepted_by="fin")
    seen = len(fake_stripe.requests)
    with pytest.raises(DisputeActionError, match="is lost: it takes no evidence now"):
        submit_evidence(lost, **text)
    with pytest.raises(DisputeActionError, match="is lost: it can no longer be accepted"):
        accept_dispute(lost, accepted_by="fin")
    assert len(fake_stripe.requests) == seen

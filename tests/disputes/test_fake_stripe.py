"""The fake Stripe answers the Files API and dispute updates as Stripe does (the SDK's own requests, through the gateway),
idempotency keys included."""

import pytest

from providers.stripe import gateway

pytestmark = pytest.mark.django_db


@pytest.fixture
def dispute_id(setting, stripe_charge, fake_stripe):
    events = fake_stripe.dispute_charge(stripe_charge())
    return events[0]["data"]["object"]["id"]


def test_a_file_upload_is_a_stripe_file_and_a_repeated_key_replays_it(setting, fake_stripe):
    first = gateway.upload_file(setting, filename="INV-1.pdf", content=b"%PDF-1.7 test", purpose="dispute_evidence", idempotency_key="k1")
    again = gateway.upload_file(setting, filename="INV-1.pdf", content=b"%PDF-1.7 test", purpose="dispute_evidence", idempotency_key="k1")
    assert first == again and first["object"] == "file" and first["id"].startswith("file_")
    assert (first["purpose"], first["filename"], first["size"], first["type"]) == ("dispute_evidence", "INV-1.pdf", 13, "pdf")
    assert list(fake_stripe.file_contents.values()) == [b"%PDF-1.7 test"]
    upload, _ = [request for request in fake_stripe.requests if request["path"] == "/v1/files"]
    assert upload["headers"]["Content-Type"].startswith("multipart/form-data") and upload["idempotency_key"] == "k1"
    with pytest.raises(gateway.StripeRequestRefused, match="same parameters"):  # the same key for other content
        gateway.upload_file(setting, filename="INV-1.pdf", content=b"%PDF-1.7 other", purpose="dispute_evidence", idempotency_key="k1")
    with pytest.raises(gateway.StripeRequestRefused, match="Invalid purpose"):
        gateway.upload_file(setting, filename="x.pdf", content=b"x", purpose="nonsense", idempotency_key="k2")


def test_evidence_submitted_puts_the_dispute_under_review_once(setting, fake_stripe, dispute_id):
    file_id = gateway.upload_file(setting, filename="r.pdf", content=b"%PDF", purpose="dispute_evidence", idempotency_key="f")["id"]
    evidence = {"customer_name": "Ada", "receipt": file_id}
    answer = gateway.update_dispute(setting, dispute_id, evidence=evidence, submit=True, idempotency_key="e1")
    assert answer["status"] == "under_review" and answer["evidence"]["receipt"] == file_id
    assert answer["evidence_details"]["submission_count"] == 1 and answer["evidence_details"]["has_evidence"] is True
    assert gateway.update_dispute(setting, dispute_id, evidence=evidence, submit=True, idempotency_key="e1") == answer  # replayed
    assert gateway.retrieve_dispute(setting, dispute_id)["evidence_details"]["submission_count"] == 1
    with pytest.raises(gateway.StripeRequestRefused, match="under_review"):  # submitted evidence cannot change
        gateway.update_dispute(setting, dispute_id, evidence=evidence, submit=True, idempotency_key="e2")
    assert [event["data"]["object"]["status"] for event in fake_stripe.events_of("charge.dispute.updated")] == ["under_review"]


def test_close_loses_the_dispute(setting, fake_stripe, dispute_id):
    answer = gateway.close_dispute(setting, dispute_id, idempotency_key=f"dispute-close-{dispute_id}")
    assert answer["status"] == "lost" and fake_stripe.events_of("charge.dispute.closed")[-1]["data"]["object"]["status"] == "lost"
    assert gateway.close_dispute(setting, dispute_id, idempotency_key=f"dispute-close-{dispute_id}") == answer  # replayed
    with pytest.raises(gateway.StripeRequestRefused, match="already closed"):
        gateway.close_dispute(setting, dispute_id, idempotency_key="another")
    with pytest.raises(gateway.StripeRequestRefused, match="No such dispute"):
        gateway.retrieve_dispute(setting, "dp_missing")


def test_evidence_naming_an_unknown_file_is_refused(setting, dispute_id):
    with pytest.raises(gateway.StripeRequestRefused, match="No such file"):
        gateway.update_dispute(setting, dispute_id, evidence={"receipt": "file_missing"}, submit=False, idempotency_key="e3")

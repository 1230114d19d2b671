"""Answering a dispute calls Stripe with no transaction open on our connection, so no row lock waits on Stripe."""

import psycopg
import pytest
from django.db import connection

from disputes import services
from payments.constants import DisputeStatus


@pytest.fixture
def connection_state(fake_stripe):
    """The state of this test's database connection (pg_stat_activity) at every request the fake Stripe receives."""
    params = connection.settings_dict
    pid = connection.cursor().connection.info.backend_pid
    seen = []

    def observe(method, path):
        with psycopg.connect(host=params["HOST"], port=params["PORT"] or 5432, user=params["USER"], dbname=params["NAME"],
                             autocommit=True) as conn:
            seen.append((method, path, conn.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()[0]))

    fake_stripe.observers.append(observe)
    return seen


@pytest.mark.django_db(transaction=True)
def test_evidence_and_accept_call_stripe_outside_any_transaction(disputed, connection_state):
    first, second = disputed()[2], disputed()[2]
    connection_state.clear()
    services.submit_evidence(first, customer_name="Ada", customer_email_address="", product_description="Consulting",
                             service_date=None, uncategorized_text="", submitted_by="fin")
    services.accept_dispute(second, accepted_by="fin")
    assert [(method, path) for method, path, _ in connection_state] == [
        ("POST", "/v1/files"), ("POST", "/v1/files"), ("POST", f"/v1/disputes/{first.dispute_id}"),
        ("POST", f"/v1/disputes/{second.dispute_id}/close")]
    assert {state for _, _, state in connection_state} == {"idle"}, connection_state
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (DisputeStatus.UNDER_REVIEW, DisputeStatus.LOST)

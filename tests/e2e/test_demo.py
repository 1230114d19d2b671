"""The README's run command (`make run` = scripts/demo.py) offline: pay an invoice, then refund it in the admin.

Runs the demo as a newcomer does, without Stripe keys (localstripe stands in) and on its default SQLite
database (in a temporary file), with tasks in-process.
"""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from tests.reliability.harness import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow]


@pytest.fixture
def demo():
    web_port, stripe_port = free_port(), free_port()
    workdir = Path(tempfile.mkdtemp(prefix="demo-"))
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("STRIPE_", "DATABASE_URL", "REDIS_URL", "CELERY_", "FIELD_ENCRYPTION"))}
    env["DATABASE_URL"] = f"sqlite:///{workdir / 'demo.sqlite3'}"
    log = open(workdir / "demo.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen([sys.executable, "scripts/demo.py", "--port", str(web_port), "--stripe-port", str(stripe_port)],
                               cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_port(web_port, timeout=120)
        yield f"http://127.0.0.1:{web_port}", workdir / "demo.log"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def csrf(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def test_newcomer_pays_an_invoice_and_refunds_it(demo):
    base, log_path = demo
    log = log_path.read_text()
    assert "admin / admin" in log and "finance / finance" in log and "OFFLINE demo" in log, log
    pay_url = re.search(r"Pay DEMO-1001 \([^)]*\): (\S+)", log).group(1)
    # Once the server answers, the demo pays DEMO-1003 and localstripe pays out the day: one reconciled payout.
    for _ in range(120):
        if "Demo payout po_" in log_path.read_text():
            break
        time.sleep(0.5)
    assert re.search(r"Demo payout po_\S+ of 246\.00 EUR \(DEMO-1003, Stripe's fee deducted\): reconciled, 1 line",
                     log_path.read_text()), log_path.read_text()[-3000:]

    customer = requests.Session()
    page = customer.get(pay_url, timeout=30)
    assert "Offline test payment" in page.text
    paid = customer.post(pay_url + "offline-test-payment/", data={"csrfmiddlewaretoken": csrf(page.text), "method": "card"},
                         headers={"Referer": pay_url}, timeout=60)
    assert paid.status_code == 200 and "succeeded" in paid.text, paid.text[-1000:]

    finance = requests.Session()
    login = finance.get(f"{base}/admin/login/", timeout=30)
    finance.post(f"{base}/admin/login/", data={"username": "finance", "password": "finance", "csrfmiddlewaretoken": csrf(login.text),
                                               "next": "/admin/"}, headers={"Referer": f"{base}/admin/login/"}, timeout=30)
    payouts = finance.get(f"{base}/admin/payments/payout/", timeout=30).text
    assert "Reconciled" in payouts and "246.00 EUR" in payouts, payouts[-2000:]
    balance_id = None
    for _ in range(60):  # the payment is booked when localstripe's webhooks arrive (about a second)
        listing = finance.get(f"{base}/admin/billing/balance/?type__exact=payment&q=DEMO-1001", timeout=30).text
        found = re.findall(r"/admin/billing/balance/(\d+)/change/", listing)
        if found:
            balance_id = found[0]
            break
        time.sleep(0.5)
    assert balance_id, log_path.read_text()[-3000:]
    refund_url = f"{base}/admin/billing/balance/{balance_id}/refund/"
    form_page = finance.get(refund_url, timeout=30).text
    form = {"csrfmiddlewaretoken": csrf(form_page), "amount": "19.00",
            "idempotency_key": re.search(r'name="idempotency_key" value="([^"]+)"', form_page).group(1)}
    preview = finance.post(refund_url, data={**form, "preview": "Preview"}, headers={"Referer": refund_url}, timeout=30)
    assert "Balances after the refund" in preview.text
    done = finance.post(refund_url, data={**form, "confirm": "Confirm refund"}, headers={"Referer": refund_url}, timeout=60)
    assert done.status_code == 200 and "Refunded 19.00 EUR through Stripe." in done.text, done.text[-2000:]
    listing = finance.get(f"{base}/admin/billing/balance/", timeout=30).text
    amounts = sorted(re.findall(r'<td class="field-amount_display">([^<]+)</td>', listing))
    assert amounts == sorted(["-250.00 EUR", "-100.00 EUR", "-19.00 EUR", "19.00 EUR"]), amounts  # DEMO-1003's, paid by the demo
    time.sleep(2)  # the refund's own webhooks arrive later and change nothing
    text = log_path.read_text()
    assert "Internal Server Error" not in text and "failed after" not in text and "cannot be processed" not in text, text[-3000:]
    # Every webhook of the run was processed on the demo's SQLite (payment, PaymentIntent and refund events).
    with sqlite3.connect(log_path.parent / "demo.sqlite3") as database:
        statuses = dict(database.execute("SELECT status, COUNT(*) FROM webhooks_webhookevent GROUP BY status").fetchall())
    assert statuses.get("processed", 0) >= 3 and set(statuses) <= {"processed", "ignored"}, statuses

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
    # Then the bank disputes DEMO-1003's charge (demo_dispute): booked from localstripe's webhooks, open for finance to answer.
    for _ in range(120):
        if "Demo dispute dp_" in log_path.read_text():
            break
        time.sleep(0.5)
    dispute = re.search(r"Demo dispute (dp_\w+) of 250\.00 EUR \(DEMO-1003, fraudulent\): needs response, evidence due \S+\. "
                        r"Answer it as finance / finance: (\S+/admin/payments/dispute/\d+/change/)", log_path.read_text())
    assert dispute, log_path.read_text()[-3000:]

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
    # The audit trail on the demo's SQLite: who asked for the refund, and the charge's refundable amount before and after.
    trail = finance.get(f"{base}/admin/billing/auditentry/?action__exact=refund_requested", timeout=30).text
    assert "Refund requested" in trail and "119.00 EUR" in trail and "100.00 EUR" in trail, trail[-2000:]
    listing = finance.get(f"{base}/admin/billing/balance/", timeout=30).text
    amounts = sorted(re.findall(r'<td class="field-amount_display">([^<]+)</td>', listing))
    # DEMO-1003's payment, paid by the demo, and the withdrawal of its dispute.
    assert amounts == sorted(["-250.00 EUR", "250.00 EUR", "-100.00 EUR", "-19.00 EUR", "19.00 EUR"]), amounts
    # The finance dashboard on the demo's SQLite: ACME Deutschland's money in (DEMO-1003 250.00 + DEMO-1001 119.00), the
    # refund, DEMO-1004 one day overdue; the money-in figure links to the balances behind it, exported as CSV.
    dashboard = finance.get(f"{base}/admin/finance/", timeout=30)
    assert dashboard.status_code == 200, dashboard.text[-2000:]
    figure = {name: (link, text) for name, link, text in
              re.findall(r'id="figure-([a-z-]+)"><h3>[^<]+</h3><a href="([^"]+)">([^<]+)</a>', dashboard.text)}
    assert figure["money-in"][1] == "369.00 EUR" and figure["refunded"][1] == "19.00 EUR", figure
    assert re.search(r"<td>0–30</td><td><a [^>]+>1</a></td><td class=\"num\"><a [^>]+>75.00 EUR</a>", dashboard.text)
    money_in = figure["money-in"][0].replace("&amp;", "&")
    exported = finance.get(f"{base}/admin/billing/balance/export/csv/?{money_in.split('?', 1)[1]}", timeout=30).text
    assert sorted(line.split(",")[5] for line in exported.splitlines()[1:]) == ["-100.00", "-19.00", "-250.00"], exported
    # Finance answers the demo dispute from the admin: evidence (the receipt and invoice PDFs go to localstripe's Files API).
    dispute_page = finance.get(dispute.group(2), timeout=30).text
    assert dispute.group(1) in dispute_page and "Submit evidence" in dispute_page and "Accept dispute" in dispute_page
    evidence_url = re.search(r'href="(/admin/payments/dispute/\d+/evidence/)"', dispute_page).group(1)
    form_page = finance.get(base + evidence_url, timeout=30).text
    answered = finance.post(base + evidence_url, data={"csrfmiddlewaretoken": csrf(form_page), "customer_name": "Beispiel AG",
                                                       "product_description": "Software licence", "service_date": "",
                                                       "customer_email_address": "", "uncategorized_text": ""},
                            headers={"Referer": base + evidence_url}, timeout=120)
    assert f"Evidence for dispute {dispute.group(1)} submitted: Stripe has it under review." in answered.text, answered.text[-2000:]
    time.sleep(2)  # the refund's and the dispute's own webhooks arrive later and change nothing
    text = log_path.read_text()
    assert "Internal Server Error" not in text and "failed after" not in text and "cannot be processed" not in text, text[-3000:]
    # Every webhook of the run was processed on the demo's SQLite (payment, PaymentIntent and refund events).
    with sqlite3.connect(log_path.parent / "demo.sqlite3") as database:
        statuses = dict(database.execute("SELECT status, COUNT(*) FROM webhooks_webhookevent GROUP BY status").fetchall())
    assert statuses.get("processed", 0) >= 3 and set(statuses) <= {"processed", "ignored"}, statuses

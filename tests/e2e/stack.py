"""The whole product against localstripe: gunicorn, a Celery worker on Redis, PostgreSQL, all real processes.

The product only knows localstripe through STRIPE_API_BASE; localstripe posts its own signed webhooks to the
product's webhook endpoint. This module plays the parts that are not the product: the customer's browser
(Stripe.js confirms a PaymentIntent with the client secret), the finance user (HTTP to the admin and the API)
and the auditor (SQL on the books).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import requests

from devtools.production_env import local_production_env
from tests.reliability.harness import free_port, prepare_database, wait_port

ROOT = Path(__file__).resolve().parents[2]
# Parallel runs on one machine (several worktrees) pick their own: E2E_DATABASE, E2E_REDIS_DB.
DATABASE = os.environ.get("E2E_DATABASE", "billing_e2e")
REDIS_DB = int(os.environ.get("E2E_REDIS_DB", "13"))
BLOCKING_POPS = {"brpop", "blpop", "brpoplpush", "blmove"}  # what a Celery worker waits in (kombu's Redis transport)
# Test-mode keys: clearly fake, not shaped like real ones (localstripe accepts any sk_ key).
PUBLISHABLE_KEY = "pk_test_e2e_localstripe"
SECRET_KEY = "sk_test_e2e_localstripe"
WEBHOOK_SECRET = "whsec_e2e_localstripe"
SEPA_DELAY_SECONDS = 4

SETUP_SCRIPT = r"""
import json
from datetime import date, timedelta
from decimal import Decimal
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token
from billing.models import Account, BusinessEntity, Invoice
from billing.ledger import recompute_invoices
from payments.tokens import make_token
from providers.models import ProviderSetting
from providers.services import save_provider_setting

entity = BusinessEntity.objects.create(slug="e2e", name="E2E GmbH", display_name="E2E GmbH", default_currency="EUR",
                                       support_email="billing@e2e.example")
account = Account.objects.create(business_entity=entity, name="Kunde AG", email="kunde@example.com")
invoices = {}
for name, amount, currency in [("card", "119.00", "EUR"), ("sepa_fail", "80.00", "EUR"), ("sepa_ok", "60.00", "EUR"),
                               ("save", "30.00", "EUR"), ("off_session", "45.50", "EUR"), ("refund", "200.00", "EUR"),
                               ("declined", "75.00", "EUR"), ("jpy", "5000", "JPY"),
                               ("offline", "19.99", "EUR"), ("payout_card", "300.00", "EUR"), ("payout_sepa", "150.00", "EUR"),
                               ("dispute_evidence", "90.00", "EUR"), ("dispute_accept", "70.00", "EUR")]:
    invoice = Invoice.objects.create(number=f"E2E-{name}", account=account, business_entity=entity, kind="invoice",
                                     amount=Decimal(amount), currency=currency, payment_reference=f"Invoice E2E-{name}",
                                     due_date=date.today(), status="open")
    invoices[name] = {"id": invoice.pk, "token": make_token(invoice.pk)}
recompute_invoices([v["id"] for v in invoices.values()])
setting = ProviderSetting(name="localstripe", method_card=True, method_sepa_debit=True, enable_future_payments=True,
                          future_payments_active=False, future_payments_changeable=True, publishable_key="PK")
save_provider_setting(setting, entity_ids=[entity.pk], secret_key="SK", webhook_secret="WHSEC")
finance = User.objects.create_user("finance", "finance@example.com", "finance-pass", is_staff=True)
finance.groups.add(Group.objects.get(name="Finance"))
print(json.dumps({"webhook_id": str(setting.webhook_id), "setting_id": setting.pk, "invoices": invoices,
                  "api_token": Token.objects.create(user=finance).key}))
""".replace("PK", PUBLISHABLE_KEY).replace("SK", SECRET_KEY).replace("WHSEC", WEBHOOK_SECRET)


class E2EStack:
    def __init__(self):
        self.logs = Path(tempfile.mkdtemp(prefix="e2e-logs-"))
        self.stripe_port, self.web_port = free_port(), free_port()
        self.stripe_url = f"http://127.0.0.1:{self.stripe_port}"
        self.web_url = f"http://127.0.0.1:{self.web_port}"
        redis_url = f"redis://127.0.0.1:6379/{REDIS_DB}"
        self.env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DATABASE}", "REDIS_URL": redis_url,
                    "CELERY_BROKER_URL": redis_url, "CELERY_TASK_ALWAYS_EAGER": "false", **local_production_env(),
                    "STRIPE_API_BASE": self.stripe_url, "STRIPE_MAX_NETWORK_RETRIES": "2", "DJANGO_SETTINGS_MODULE": "config.settings",
                    "LOG_LEVEL": "INFO", "ALLOWED_HOSTS": "127.0.0.1,localhost",
                    "LOCALSTRIPE_SEPA_DELAY": str(SEPA_DELAY_SECONDS), "PYTHONUNBUFFERED": "1",
                    "STRIPE_OFFLINE_DEMO": "true"}  # the demo's offline test payment (payments/services/offline.py)
        self.processes: dict[str, subprocess.Popen] = {}
        self.setup: dict = {}

    # --- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> E2EStack:
        import redis

        prepare_database(DATABASE)
        client = redis.Redis.from_url(self.env["REDIS_URL"])
        client.flushdb()
        # A Celery worker of something else on this Redis database would take the stack's tasks and process them against
        # its own database: the events here would then never be processed, and the tests time out far from the cause.
        consumers = [c for c in client.client_list() if c.get("db") == str(REDIS_DB) and c.get("cmd") in BLOCKING_POPS]
        if consumers:
            raise RuntimeError(f"Another process consumes tasks from Redis database {REDIS_DB} (client {consumers[0].get('addr')}): "
                               "stop it, or give the e2e stack another database with E2E_REDIS_DB.")
        self._spawn("localstripe", [sys.executable, "-m", "devtools.localstripe_server", "--port", str(self.stripe_port)])
        wait_port(self.stripe_port)
        self.manage("migrate", "--noinput", "-v0")
        output = self.manage("shell", "-c", SETUP_SCRIPT)
        self.setup = json.loads(output.strip().splitlines()[-1])
        webhook_url = f"{self.web_url}/webhooks/stripe/{self.setup['webhook_id']}/"
        requests.post(f"{self.stripe_url}/_config/webhooks/e2e", data={"url": webhook_url, "secret": WEBHOOK_SECRET},
                      timeout=10).raise_for_status()
        self._spawn("web", [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{self.web_port}",
                            "--workers", "2", "--timeout", "60", "--access-logfile", "-"])
        self._spawn("worker", [sys.executable, "-m", "celery", "-A", "config", "worker", "--concurrency=2", "--loglevel=INFO",
                               "--without-gossip", "--without-mingle", "-n", f"e2e-{os.getpid()}@%h"])  # all queues: default, lanes, documents
        wait_port(self.web_port)
        self.wait_for(lambda: self.worker_ready(), timeout=60, what="the Celery worker to be ready")
        return self

    def _spawn(self, name: str, command: list[str]) -> None:
        log = open(self.logs / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        self.processes[name] = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)

    def worker_ready(self) -> bool:
        return "ready." in (self.logs / "worker.log").read_text()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for path in sorted(self.logs.glob("*.log")):
            parts.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(parts)

    def manage(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                                timeout=180)
        if result.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    # --- the auditor: SQL on the books ---------------------------------------------------------------
    def rows(self, query: str, *params) -> list[dict]:
        with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={DATABASE}", row_factory=psycopg.rows.dict_row) as conn:
            return conn.execute(query, params).fetchall()

    def invoice(self, name: str) -> dict:
        return self.rows("SELECT * FROM billing_invoice WHERE id = %s", self.setup["invoices"][name]["id"])[0]

    def balances(self, name: str) -> list[dict]:
        return self.rows("SELECT * FROM billing_balance WHERE invoice_id = %s ORDER BY id", self.setup["invoices"][name]["id"])

    def payment_balances(self, name: str) -> list[dict]:
        return [row for row in self.balances(name) if row["type"] == "payment"]

    def wait_for(self, condition, *, timeout: float = 30, what: str = "a condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.25)
        raise AssertionError(f"Timed out after {timeout} s waiting for {what}.\n{self.log_tail()}")

    # --- the customer: the product's pages, then Stripe.js's part ----------------------------------------
    def pay_url(self, name: str) -> str:
        return f"{self.web_url}/pay/{self.setup['invoices'][name]['token']}/"

    def start_payment(self, name: str, method_type: str, *, save_for_future: bool = False) -> dict:
        browser = requests.Session()
        page = browser.get(self.pay_url(name), timeout=30)
        assert page.status_code == 200, page.text
        assert self.setup["invoices"][name]["token"] in page.text  # the page posts back to its own intent URL
        csrf = browser.cookies.get("csrftoken")  # the page's script reads it from the cookie (payments/rendered_pages.py)
        assert csrf, "the payment page set no CSRF cookie"
        response = browser.post(self.pay_url(name) + "intent/", json={"method_type": method_type, "save_for_future": save_for_future},
                                headers={"X-CSRFToken": csrf, "Referer": self.pay_url(name)}, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def stripe(self, method: str, path: str, data: dict | None = None) -> requests.Response:
        """What Stripe.js does in the browser, sent to localstripe (it needs the secret key where Stripe takes the client secret)."""
        return requests.request(method, f"{self.stripe_url}{path}", data=data, auth=(SECRET_KEY, ""), timeout=30)

    def create_payment_method(self, **fields) -> str:
        response = self.stripe("POST", "/v1/payment_methods", fields)
        assert response.status_code == 200, response.text
        return response.json()["id"]

    def confirm(self, payment_intent_id: str, payment_method: str, name: str) -> requests.Response:
        return self.stripe("POST", f"/v1/payment_intents/{payment_intent_id}/confirm",
                           {"payment_method": payment_method, "return_url": self.pay_url(name) + "return/"})

    def return_page(self, name: str, payment_intent_id: str) -> str:
        response = requests.get(self.pay_url(name) + "return/", params={"payment_intent": payment_intent_id}, timeout=30)
        assert response.status_code == 200, response.text
        return response.text

    # --- finance staff: admin (session + CSRF) and API (token) -------------------------------------
    def admin_session(self, username: str = "finance", password: str = "finance-pass") -> requests.Session:
        session = requests.Session()
        login_url = f"{self.web_url}/admin/login/"
        page = session.get(login_url, timeout=30)
        response = session.post(login_url, data={"username": username, "password": password, "next": "/admin/",
                                                 "csrfmiddlewaretoken": csrf_from(page.text)}, headers={"Referer": login_url}, timeout=30)
        assert response.status_code == 200 and "Log out" in response.text, response.text[:500]
        return session

    def run_payout(self) -> dict:
        """Stripe's automatic payout of the day at localstripe (devtools/localstripe_server.py); its events follow."""
        response = requests.post(f"{self.stripe_url}/_config/payouts/run", data={"currency": "eur"}, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Token {self.setup['api_token']}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.web_url}{path}", headers=headers, timeout=60, **kwargs)


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)

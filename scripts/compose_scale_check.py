"""`docker compose up --scale worker=3`, for real (README, Scaling).

Builds and starts docker-compose.yml with three worker replicas (production settings: DEBUG off, generated keys),
creates a business entity with N open invoices and a Stripe setting for it, has `send_test_webhook --open-invoices`
post one signed `charge.succeeded` per invoice to the web service as Stripe would, waits until every event is
processed and then checks what a scaled deployment must give: each invoice paid by exactly one balance, every event
processed on its first attempt, each replica ran a share of the tasks, a receipt per payment issued by the documents
worker (and one rendered to PDF in the image), and `check_books` clean. The stack and its volume are removed at the
end (unless --keep).

    python scripts/compose_scale_check.py [--invoices 600] [--local-images] [--pgbouncer] [--keep]

--local-images uses deploy/local-images (stand-ins for Docker Hub's images built from Debian's packages) for a
machine whose Docker engine cannot reach Docker Hub; it builds them first if they are missing. --pgbouncer puts
PgBouncer in transaction mode between every app process and PostgreSQL (deploy/docker-compose.pgbouncer.yml) and
checks that the app's connections go through it with the statement and lock timeouts still in force.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "billingscale"
LOCAL_IMAGES = ROOT / "deploy" / "local-images"

SEED = """
import json
from datetime import date, timedelta
from decimal import Decimal
from billing.constants import InvoiceKind, InvoiceStatus
from billing.ledger import recompute_invoices
from billing.models import Account, BusinessEntity, Invoice
from providers.models import ProviderSetting
from providers.services import save_provider_setting
entity, _ = BusinessEntity.objects.get_or_create(slug="scale-check", defaults={"name": "Scale check", "default_currency": "EUR"})
# No email address: receipts are issued (the documents worker) but not emailed, so 600 PDFs are not rendered here.
account, _ = Account.objects.get_or_create(business_entity=entity, name="Scale check customer", defaults={"email": ""})
invoices = [Invoice.objects.create(number=f"SCALE-{index:05d}", account=account, business_entity=entity, kind=InvoiceKind.INVOICE,
                                   amount=Decimal("100.00") + index, currency="EUR", payment_reference=f"Scale {index}",
                                   due_date=date.today() + timedelta(days=14), status=InvoiceStatus.OPEN)
            for index in range(%(invoices)d)]
recompute_invoices([invoice.pk for invoice in invoices])
setting = ProviderSetting(name="Scale check", publishable_key="pk_test_scalecheck", method_card=True)
save_provider_setting(setting, entity_ids=[entity.pk], secret_key="sk_test_scalecheck", webhook_secret="%(webhook_secret)s")
print(json.dumps({"setting": setting.pk}))
"""

OUTCOME = """
import json
from django.db import connection
from django.db.models import Count
from billing.models import Balance, Invoice
from receipts.models import Receipt
from receipts.services import receipt_pdf
from webhooks.models import WebhookEvent
invoices = Invoice.objects.filter(number__startswith="SCALE-")
receipts = Receipt.objects.filter(invoice__in=invoices)
first = receipts.order_by("id").first()
balances = Balance.objects.filter(invoice__in=invoices)
with connection.cursor() as cursor:
    cursor.execute("SHOW statement_timeout")
    statement_timeout = cursor.fetchone()[0]
    cursor.execute("SHOW lock_timeout")
    lock_timeout = cursor.fetchone()[0]
print(json.dumps({
    "database": f"{connection.settings_dict['HOST']}:{connection.settings_dict['PORT']}",
    "prepare_threshold": connection.connection.prepare_threshold,
    "timeouts": [statement_timeout, lock_timeout],
    "events": dict(WebhookEvent.objects.values_list("status").annotate(n=Count("id")).order_by()),
    "attempts": sorted(set(WebhookEvent.objects.values_list("attempts", flat=True))),
    "invoices": invoices.count(),
    "statuses": dict(invoices.values_list("status").annotate(n=Count("id")).order_by()),
    "balances": balances.count(),
    "invoices_with_one_balance": balances.values("invoice").annotate(n=Count("id")).filter(n=1).count(),
    "receipts": receipts.count(),
    "receipt_pdf_bytes": len(receipt_pdf(first)) if first else 0,  # WeasyPrint and its libraries in the image
    "amount_right": sum(1 for invoice in invoices.prefetch_related("balances") for balance in invoice.balances.all()
                        if balance.amount == -invoice.amount),
}))
"""


def docker() -> str:
    return shutil.which("docker") or "docker"


def compose_command() -> list[str]:
    if subprocess.run([docker(), "compose", "version"], capture_output=True).returncode == 0:
        return [docker(), "compose"]
    if shutil.which("docker-compose"):
        return [shutil.which("docker-compose")]
    raise SystemExit("Neither `docker compose` nor `docker-compose` is installed.")


class Stack:
    def __init__(self, local_images: bool, pgbouncer: bool):
        self.files = ["-f", str(ROOT / "docker-compose.yml")]
        if local_images:
            self.files += ["-f", str(LOCAL_IMAGES / "docker-compose.local-images.yml")]
        if pgbouncer:
            self.files += ["-f", str(ROOT / "deploy" / "docker-compose.pgbouncer.yml")]
        self.base = [*compose_command(), "-p", PROJECT, *self.files]
        fernet_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        self.env = {**os.environ, "SECRET_KEY": secrets.token_urlsafe(50), "FIELD_ENCRYPTION_KEYS": fernet_key,
                    "SECURE_SSL_REDIRECT": "false", "SECURE_COOKIES": "false"}

    def run(self, *args: str, capture: bool = False, check: bool = True, stdin: str | None = None) -> str:
        result = subprocess.run([*self.base, *args], cwd=ROOT, env=self.env, text=True, input=stdin,
                                capture_output=capture, check=False)
        if check and result.returncode != 0:
            raise SystemExit(f"{' '.join(args[:3])} failed ({result.returncode}):\n{(result.stderr or '')[-3000:]}")
        return result.stdout or ""

    def manage(self, *args: str, stdin: str | None = None) -> str:
        return self.run("exec", "-T", "web", "python", "manage.py", *args, capture=True, stdin=stdin)

    def python(self, code: str) -> dict:
        output = self.manage("shell", stdin=code)
        return json.loads(output.strip().splitlines()[-1])


def wait_healthy(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - a fixed local URL
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"{url} did not answer 200 within {timeout:.0f} s")


def tasks_per_replica(logs: str) -> dict[str, int]:
    """Tasks each worker container ran, from its log lines (`<container> | ... Task ...process_webhook_events[id] succeeded`)."""
    shares: dict[str, int] = {}
    for line in logs.splitlines():
        match = re.match(r"^(\S+)\s+\|.*Task webhooks\.tasks\.process_webhook_events?\[[^\]]+\] succeeded", line)
        if match:
            shares[match.group(1)] = shares.get(match.group(1), 0) + 1
    return shares


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=600)
    parser.add_argument("--local-images", action="store_true", help="stand-ins for Docker Hub's images (deploy/local-images)")
    parser.add_argument("--pgbouncer", action="store_true", help="PgBouncer in transaction mode in front of PostgreSQL")
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args(argv)

    if args.pgbouncer and not args.local_images and subprocess.run(
            [docker(), "image", "inspect", "local/pgbouncer:1.18-bookworm"], capture_output=True).returncode:
        raise SystemExit("--pgbouncer needs local/pgbouncer:1.18-bookworm: run deploy/local-images/build.sh")
    if args.local_images:
        images = ["local/python:3.11-bookworm", "local/postgres:15-bookworm", "local/redis:7-bookworm"]
        missing = any(subprocess.run([docker(), "image", "inspect", image], capture_output=True).returncode
                      for image in images + ["local/pgbouncer:1.18-bookworm"] * args.pgbouncer)
        if missing:
            subprocess.run(["/bin/sh", str(LOCAL_IMAGES / "build.sh")], check=True)
    stack = Stack(args.local_images, args.pgbouncer)
    stack.run("down", "-v", "--remove-orphans", capture=True, check=False)
    started = time.monotonic()
    try:
        stack.run("build", "web")
        stack.run("up", "-d", "--scale", "worker=3")
        wait_healthy("http://127.0.0.1:8000/healthz", timeout=180)
        workers = [line for line in stack.run("ps", "-q", "worker", capture=True).splitlines() if line.strip()]
        services = ["web", f"{len(workers)} worker replicas", "documents", "beat", *(["pgbouncer"] * args.pgbouncer), "db", "redis"]
        print(f"stack up in {time.monotonic() - started:.0f} s: {', '.join(services)}")
        assert len(workers) == 3, f"{len(workers)} worker containers, not 3"

        webhook_secret = "whsec_" + secrets.token_hex(16)
        setting = stack.python(SEED % {"invoices": args.invoices, "webhook_secret": webhook_secret})["setting"]
        sent = time.monotonic()
        output = stack.manage("send_test_webhook", "--setting", str(setting), "--open-invoices")
        answers = re.findall(r"→ HTTP (\d+)", output)
        posted = time.monotonic() - sent
        print(f"posted {len(answers)} signed charge.succeeded events to the web service in {posted:.1f} s "
              f"({len(answers) / posted:.0f}/s); answers: {sorted(set(answers))}")
        assert len(answers) == args.invoices and set(answers) == {"200"}, output[-2000:]

        deadline = time.monotonic() + 300
        while True:
            outcome = stack.python(OUTCOME)
            done = outcome["events"].get("processed", 0) >= args.invoices and outcome["receipts"] >= args.invoices
            if done or time.monotonic() > deadline:
                break
            time.sleep(2)
        print(f"booked after {time.monotonic() - sent:.1f} s: {json.dumps(outcome)}")
        books = stack.manage("check_books")
        print(f"check_books: {books.strip().splitlines()[-1] if books.strip() else '(no output)'}")
        shares = tasks_per_replica(stack.run("logs", "--no-color", "worker", capture=True))
        print(f"tasks per worker replica: {shares}")

        failures = []
        if outcome["events"] != {"processed": args.invoices}:
            failures.append(f"events not all processed: {outcome['events']}")
        if outcome["attempts"] != [1]:
            failures.append(f"attempts {outcome['attempts']}")
        if not (outcome["balances"] == outcome["invoices_with_one_balance"] == outcome["amount_right"] == args.invoices):
            failures.append("not exactly one balance of the invoice's amount per invoice")
        if args.pgbouncer and (outcome["database"] != "pgbouncer:6432" or outcome["prepare_threshold"] is not None):
            failures.append(f"not through PgBouncer without prepared statements: {outcome['database']}, {outcome['prepare_threshold']}")
        if outcome["timeouts"] != ["30s", "10s"]:
            failures.append(f"statement and lock timeouts {outcome['timeouts']}, not 30s and 10s")
        if outcome["receipts"] != args.invoices or not outcome["receipt_pdf_bytes"]:
            failures.append(f"{outcome['receipts']} receipts (documents worker), first PDF {outcome['receipt_pdf_bytes']} bytes")
        if outcome["statuses"] != {"paid": args.invoices}:
            failures.append(f"invoice statuses {outcome['statuses']}")
        if len(shares) != 3 or min(shares.values()) == 0:
            failures.append(f"not every replica ran tasks: {shares}")
        for failure in failures:
            print("FAILED:", failure)
        print("OK: three worker replicas shared the events, each booked once" if not failures else "")
        return 1 if failures else 0
    finally:
        if not args.keep:
            stack.run("down", "-v", "--remove-orphans", capture=True, check=False)


if __name__ == "__main__":
    sys.exit(main())

"""Fault injection with real processes: gunicorn, Celery workers, a private Redis, PostgreSQL behind a
cuttable TCP proxy, all on 127.0.0.1. Each scenario is bounded in time and reports
sent / answered 200 / stored / processed / lost / doubled.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from devtools.production_env import local_production_env

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TcpProxy:
    """127.0.0.1:port -> target; `cut()` drops every connection and refuses new ones until `restore()`."""

    def __init__(self, target_port: int):
        self.target_port, self.port = target_port, free_port()
        self.up, self.connections, self.lock = True, [], threading.Lock()
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", self.port))
        self.server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.close()
                except OSError:
                    pass

    def cut(self):
        self.up = False
        with self.lock:
            for sock in self.connections:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
                except OSError:
                    pass
            self.connections = []

    def restore(self):
        self.up = True

    def close(self):
        self.cut()
        self.server.close()


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc: no extra dependency)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def pg_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class PrivateCluster:
    """A throwaway PostgreSQL cluster (initdb), so that killing it harms nobody else."""

    def __init__(self, bin_dir: Path, options: str = "-c wal_writer_delay=10000 -c fsync=on -c synchronous_commit=on"):
        self.bin, self.port, self.options = bin_dir, free_port(), options
        self.dir = Path(tempfile.mkdtemp(prefix="pg-crash-"))
        self.data = self.dir / "data"
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 {self.options}"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")

    def crash(self) -> None:
        """What `pg_ctl stop -m immediate` does (SIGQUIT to the postmaster: no checkpoint, recovery at the next start),
        without its start-up delay."""
        import signal
        import time

        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + 30
        while (self.data / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def kill(self) -> int:
        """SIGKILL to the postmaster and all its processes (backends, WAL writer, checkpointer: each in a session of its
        own), as when its container is killed: no shutdown at all, crash recovery at the next start. Returns its pid."""
        import signal
        import time

        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        for process in [pid, *children_of(pid)]:
            try:
                os.kill(process, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        return pid

    def destroy(self) -> None:
        try:
            self.crash()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"



@dataclass
class Report:
    scenario: str
    sent: int = 0
    answered_200: int = 0
    answered_5xx: int = 0
    stored: int = 0
    processed: int = 0
    lost: int = 0
    doubled: int = 0
    seconds: float = 0.0
    note: str = ""
    details: dict = field(default_factory=dict)  # what a scenario measured beyond the table's columns


class Stack:
    """A private Redis, the DB proxy, gunicorn and Celery workers for one scenario."""

    def __init__(self, database: str = "billing_chaos"):
        self.redis_port = free_port()
        self.proxy = TcpProxy(5432)
        self.web_port = free_port()
        self.database = database
        self.env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:{self.proxy.port}/{database}",
                    "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0", "CELERY_BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                    "CELERY_TASK_ALWAYS_EAGER": "false", **local_production_env(), "DB_CONN_MAX_AGE": "0",
                    "LOG_LEVEL": "ERROR", "DJANGO_SETTINGS_MODULE": "config.settings"}
        self.redis = self.web = None
        self.worker_options: tuple[int, str | None] = (2, None)  # concurrency, pool: what a revived worker runs with
        self.workers: list[subprocess.Popen] = []
        self.killed: list[subprocess.Popen] = []  # killed on purpose by a scenario: not revived

    # processes
    def start_redis(self):
        self.redis = subprocess.Popen(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.redis_port)

    def stop_redis(self):
        if self.redis:
            self.redis.kill()
            self.redis.wait()
            self.redis = None

    def start_web(self):
        self.web = subprocess.Popen([sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind",
                                     f"127.0.0.1:{self.web_port}", "--workers", "2", "--timeout", "30", "--log-level", "error"],
                                    cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_port(self.web_port)

    def start_worker(self, concurrency: int | None = None, pool: str | None = None) -> subprocess.Popen:
        if concurrency is not None or pool is not None:
            self.worker_options = (concurrency or self.worker_options[0], pool)
        concurrency, pool = self.worker_options
        worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "worker", f"--concurrency={concurrency}",
                                   *([f"--pool={pool}"] if pool else []),
                                   "--loglevel=ERROR", "--without-gossip", "--without-mingle", "-n", f"chaos{len(self.workers)}-{os.getpid()}@%h"],
                                  cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.workers.append(worker)
        return worker

    def revive_workers(self) -> int:
        """Restart workers that died by themselves (kombu's Redis transport can crash the worker with an
        "Unrecoverable error" when the broker connection drops, celery/kombu#582-like); killed ones stay dead."""
        dead = [worker for worker in self.workers if worker.poll() is not None and worker not in self.killed]
        for worker in dead:
            self.workers.remove(worker)
            self.start_worker()
        return len(dead)

    def kill_worker(self, worker: subprocess.Popen, sig=signal.SIGKILL):
        self.killed.append(worker)
        try:
            os.killpg(worker.pid, sig)
        except ProcessLookupError:
            pass
        worker.wait(timeout=30)

    def manage(self, *args) -> str:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=120, check=True).stdout

    def stop(self):
        for worker in self.workers:
            if worker.poll() is None:
                self.kill_worker(worker, signal.SIGTERM)
        if self.web and self.web.poll() is None:
            os.killpg(self.web.pid, signal.SIGTERM)
            self.web.wait(timeout=30)
        self.stop_redis()
        self.proxy.close()

    # HTTP
    def post(self, path: str, body: bytes, headers: dict) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{self.web_port}{path}", data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback only
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return 0

    def get(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=30) as response:  # noqa: S310
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return 0


def wait_port(port: int, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


def prepare_database(name: str):
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


SETUP_SCRIPT = """
import json, sys
from tests.factories import InvoiceFactory, ProviderSettingFactory, BusinessEntityFactory, AccountFactory
n = int(sys.argv[1])
setting = ProviderSettingFactory()
invoices = [InvoiceFactory().pk for _ in range(n)]
print(json.dumps({"webhook_id": str(setting.webhook_id), "invoices": invoices}))
"""

STATE_SCRIPT = """
import json
from django.db.models import Count
from billing.models import Balance
from webhooks.models import WebhookEvent
events = dict(WebhookEvent.objects.values_list("status").annotate(n=Count("id")))
per_invoice = dict(Balance.objects.filter(type="payment").values_list("invoice_id").annotate(n=Count("id")))
stuck = list(WebhookEvent.objects.exclude(status="processed").values("status", "attempts", "last_error")[:3])
print(json.dumps({"events": events, "stored_ids": list(WebhookEvent.objects.values_list("stripe_event_id", flat=True)), "stuck": stuck,
                  "balances_per_invoice": {str(k): v for k, v in per_invoice.items()}}))
"""


def run_script(stack: Stack, script: str, *args) -> dict:
    output = subprocess.run([sys.executable, "manage.py", "shell", "-c", script.replace("sys.argv[1]", repr(args[0]) if args else "0")],
                            cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=120, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def charge_events(invoices: list[int]) -> list[dict]:
    from tests.helpers import make_charge, make_event

    return [make_event("charge.succeeded", make_charge(metadata={"invoice_id": str(pk)}, created=1_700_000_000 + i))
            for i, pk in enumerate(invoices)]


def send(stack: Stack, webhook_id: str, event: dict) -> int:
    from tests.factories import TEST_WEBHOOK_SECRET
    from tests.stripe_fake.signing import sign_payload

    body = json.dumps(event).encode()
    return stack.post(f"/webhooks/stripe/{webhook_id}/", body, {"Content-Type": "application/json",
                                                                "Stripe-Signature": sign_payload(body, TEST_WEBHOOK_SECRET)})


def settle(stack: Stack, report: Report, answered_ok: set[str], acked_invoices: set[int], timeout: float = 90) -> Report:
    """Re-enqueue what is left, wait until nothing is `received`, then count lost and doubled."""
    deadline = time.monotonic() + timeout
    state = {}
    while time.monotonic() < deadline:
        revived = stack.revive_workers()
        if revived:  # what the process supervisor does in production (docker-compose.yml: restart: unless-stopped)
            report.note = (report.note + "; " if report.note else "") + f"{revived} worker(s) had died and were restarted"
        stack.manage("requeue_webhook_events", "--older-than", "0")
        time.sleep(2)
        state = run_script(stack, STATE_SCRIPT)
        if not state["events"].get("received"):
            break
    stored = set(state["stored_ids"])
    report.stored = len(stored)
    report.processed = state["events"].get("processed", 0)
    balances = state["balances_per_invoice"]
    # Lost: answered 200 but not stored, or its payment never booked. Doubled: a payment booked twice.
    report.lost = len(answered_ok - stored) + sum(1 for pk in acked_invoices if str(pk) not in balances)
    report.doubled = sum(1 for count in balances.values() if count > 1)
    if state.get("stuck"):  # say why, so a red run can be understood
        report.note = (report.note + "; " if report.note else "") + f"not processed: {state['stuck']}"
    return report


@contextmanager
def running_stack(report: Report, n: int, *, worker: bool = True, workers: int = 1, env: dict | None = None,
                  setup_script: str = SETUP_SCRIPT):
    """A fresh database, private Redis, web and (optionally) workers, with n open invoices; timed and torn down."""
    started = time.monotonic()
    prepare_database("billing_chaos")
    stack = Stack()
    stack.env.update(env or {})
    try:
        stack.start_redis()
        stack.manage("migrate", "--noinput", "-v0")
        setup = run_script(stack, setup_script, n)
        stack.start_web()
        for _ in range(workers if worker else 0):
            stack.start_worker()
        yield stack, setup
    finally:
        stack.stop()
        report.seconds = round(time.monotonic() - started, 1)


class Deliveries:
    """Sends events and remembers what the service acknowledged (Stripe's view of the world)."""

    def __init__(self, stack: Stack, report: Report, webhook_id: str):
        self.stack, self.report, self.webhook_id = stack, report, webhook_id
        self.answered_ok: set[str] = set()
        self.acked_invoices: set[int] = set()

    def send(self, event: dict, invoice: int, *, count: bool = True) -> int:
        status = send(self.stack, self.webhook_id, event)
        if count:
            self.report.sent += 1
            self.report.answered_200 += status == 200
            self.report.answered_5xx += status >= 500
        if status == 200:
            self.answered_ok.add(event["id"])
            self.acked_invoices.add(invoice)
        return status

    def settle(self):
        settle(self.stack, self.report, self.answered_ok, self.acked_invoices)


def redis_down_mid_burst(n: int = 60) -> Report:
    report = Report("Redis stopped mid-burst, then restarted")
    with running_stack(report, n) as (stack, setup):
        deliveries = Deliveries(stack, report, setup["webhook_id"])
        for index, (event, invoice) in enumerate(zip(charge_events(setup["invoices"]), setup["invoices"], strict=True)):
            if index == n // 3:
                stack.stop_redis()
            if index == 2 * n // 3:
                stack.start_redis()
            deliveries.send(event, invoice)
        deliveries.settle()
    return report


def worker_killed_mid_batch(n: int = 60) -> Report:
    report = Report("Celery worker SIGKILLed mid-batch")
    with running_stack(report, n, worker=False) as (stack, setup):
        deliveries = Deliveries(stack, report, setup["webhook_id"])
        for event, invoice in zip(charge_events(setup["invoices"]), setup["invoices"], strict=True):
            deliveries.send(event, invoice)
        worker = stack.start_worker()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and run_script(stack, STATE_SCRIPT)["events"].get("processed", 0) < n // 3:
            time.sleep(0.3)
        stack.kill_worker(worker)  # SIGKILL, no warm shutdown
        stack.start_worker()
        deliveries.settle()
    return report


def postgres_unavailable(n: int = 20) -> Report:
    report = Report("PostgreSQL unavailable, then back")
    with running_stack(report, n) as (stack, setup):
        deliveries, notes = Deliveries(stack, report, setup["webhook_id"]), []
        events = list(zip(charge_events(setup["invoices"]), setup["invoices"], strict=True))
        for index, (event, invoice) in enumerate(events):
            if index == n // 3:
                stack.proxy.cut()
                notes.append(f"healthz while down: {stack.get('/healthz')}")
            if index == 2 * n // 3:
                stack.proxy.restore()
            deliveries.send(event, invoice)
        for event, invoice in events:  # Stripe retries what was answered 5xx
            if event["id"] not in deliveries.answered_ok:
                deliveries.send(event, invoice, count=False)
        notes.append(f"healthz after: {stack.get('/healthz')}")
        report.note = "; ".join(notes)
        deliveries.settle()
    return report


PAID_SETUP_SCRIPT = """
import json, sys
from decimal import Decimal
from django.contrib.auth.models import Group, User
from django.utils import timezone
from rest_framework.authtoken.models import Token
from billing.ledger import book_payment
from payments.tokens import make_token
from providers.stripe import gateway
from tests.factories import InvoiceFactory, ProviderSettingFactory
n = int(sys.argv[1])
setting = ProviderSettingFactory()
paid, unpaid = [], []
for i in range(n):
    invoice = InvoiceFactory(amount=Decimal("100.00"))
    pi = gateway.create_payment_intent(setting, amount=Decimal("100.00"), currency="EUR", idempotency_key=f"setup-{invoice.pk}",
                                       payment_method_types=["card"], metadata={"invoice_id": invoice.pk}, payment_method="pm_card_visa",
                                       confirm=True)
    (balance,) = book_payment(account=invoice.account, invoice=invoice, amount=Decimal("100.00"), currency="EUR", date=timezone.now(),
                              transaction_number=pi["latest_charge"], provider_setting=setting)
    paid.append({"balance": balance.pk, "charge": pi["latest_charge"]})
    other = InvoiceFactory(amount=Decimal("50.00"))
    unpaid.append({"invoice": other.pk, "token": make_token(other.pk)})
user = User.objects.create_user("chaos-finance", is_staff=True)
user.groups.add(Group.objects.get(name="Finance"))
print(json.dumps({"paid": paid, "unpaid": unpaid, "token": Token.objects.create(user=user).key}))
"""

# What Stripe does wrong, in turn: 500 before doing anything; does it, then the answer is lost (500); does it, then
# answers after the client's timeout. The SDK retries with the same idempotency key every time.
STRIPE_FAULTS = [{"status": 500}, {"status": 500, "after_processing": True}, {"delay": 2.5, "after_processing": True}]


def stripe_errors_on_money_calls(n: int = 9) -> Report:
    """Refund (API) and PaymentIntent creation (payment page) while the fake Stripe fails or times out."""
    from tests.stripe_fake.server import FakeStripeServer

    report = Report("Stripe 500 / lost answer / timeout on money calls")
    fake = FakeStripeServer().start()
    env = {"STRIPE_API_BASE": fake.url, "STRIPE_TIMEOUT_SECONDS": "1.5", "STRIPE_MAX_NETWORK_RETRIES": "2"}
    try:
        with running_stack(report, n, env=env, setup_script=PAID_SETUP_SCRIPT) as (stack, setup):
            refunds_per_charge, intents_per_invoice = {}, {}
            for index, paid in enumerate(setup["paid"]):
                fake.inject("POST", "/v1/refunds", **STRIPE_FAULTS[index % len(STRIPE_FAULTS)])
                status = _post_json(stack, f"/api/balances/{paid['balance']}/refund/", {"amount": "10.00"},
                                    {"Authorization": f"Token {setup['token']}", "Idempotency-Key": f"chaos-refund-{index}"})
                report.sent += 1
                report.answered_200 += 200 <= status < 300
                report.answered_5xx += status >= 500
            for index, unpaid in enumerate(setup["unpaid"]):
                fake.inject("POST", "/v1/payment_intents", **STRIPE_FAULTS[index % len(STRIPE_FAULTS)])
                status = _start_payment(stack, unpaid["token"])
                report.sent += 1
                report.answered_200 += 200 <= status < 300
                report.answered_5xx += status >= 500
            with fake.lock:
                for obj in fake.objects.values():
                    if obj.get("object") == "refund":
                        refunds_per_charge[obj["charge"]] = refunds_per_charge.get(obj["charge"], 0) + 1
                    if obj.get("object") == "payment_intent" and obj.get("metadata", {}).get("attempt"):  # page payments, not the setup charges
                        key = obj["metadata"].get("invoice_id")
                        intents_per_invoice[key] = intents_per_invoice.get(key, 0) + 1
            state = run_script(stack, REFUND_STATE_SCRIPT)
            booked = state["refund_balances_per_charge"]
            charges = [paid["charge"] for paid in setup["paid"]]
            invoices = [str(unpaid["invoice"]) for unpaid in setup["unpaid"]]
            report.stored = sum(refunds_per_charge.values()) + sum(intents_per_invoice.values())
            report.processed = sum(booked.values()) + state["attempts_with_intent"]
            report.lost = sum(1 for c in charges if not refunds_per_charge.get(c) or not booked.get(c)) + \
                sum(1 for i in invoices if not intents_per_invoice.get(i))
            report.doubled = sum(1 for c in charges if refunds_per_charge.get(c, 0) > 1 or booked.get(c, 0) > 1) + \
                sum(1 for i in invoices if intents_per_invoice.get(i, 0) > 1)
            report.note = f"Stripe requests {len(fake.requests)} for {report.sent} calls (retries with the same idempotency key)"
    finally:
        fake.stop()
    return report


REFUND_STATE_SCRIPT = """
import json
from django.db.models import Count
from billing.models import Balance
from payments.models import PaymentAttempt
per_charge = dict(Balance.objects.filter(type="refund").values_list("transaction_number").annotate(n=Count("id")))
print(json.dumps({"refund_balances_per_charge": per_charge,
                  "attempts_with_intent": PaymentAttempt.objects.exclude(payment_intent_id="").count()}))
"""


def _post_json(stack: Stack, path: str, payload: dict, headers: dict) -> int:
    return stack.post(path, json.dumps(payload).encode(), {"Content-Type": "application/json", **headers})


def _start_payment(stack: Stack, token: str) -> int:
    """The payment page's first step (GET for the CSRF cookie, then POST intent/ with its token), as the page's script does."""
    import http.cookiejar

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = f"http://127.0.0.1:{stack.web_port}/pay/{token}/"
    try:
        opener.open(base, timeout=30).read()
        csrf = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
        request = urllib.request.Request(base + "intent/", data=json.dumps({"method_type": "card"}).encode(), method="POST",
                                         headers={"Content-Type": "application/json", "X-CSRFToken": csrf, "Referer": base})
        with opener.open(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def concurrent_duplicate_deliveries(n: int = 20) -> Report:
    """Per payment: charge.succeeded twice at the same instant plus payment_intent.succeeded, two workers."""
    from tests.helpers import make_charge, make_event

    report = Report("Same event twice at once + charge/PI pair, 2 workers")
    with running_stack(report, n, workers=2) as (stack, setup):
        deliveries = Deliveries(stack, report, setup["webhook_id"])
        lock = threading.Lock()
        for index, invoice in enumerate(setup["invoices"]):
            charge = make_charge(metadata={"invoice_id": str(invoice)}, created=1_700_000_000 + index, payment_intent=f"pi_chaos{index}")
            payment_intent = {"id": f"pi_chaos{index}", "object": "payment_intent", "status": "succeeded", "amount": 10000,
                              "currency": "eur", "metadata": {"invoice_id": str(invoice)}, "latest_charge": charge}
            charge_event = make_event("charge.succeeded", charge)
            events = [charge_event, charge_event, make_event("payment_intent.succeeded", payment_intent)]
            barrier = threading.Barrier(len(events))

            def deliver(event, invoice=invoice, barrier=barrier):
                barrier.wait()
                status = send(stack, setup["webhook_id"], event)
                with lock:
                    report.sent += 1
                    report.answered_200 += status == 200
                    report.answered_5xx += status >= 500
                    if status == 200:
                        deliveries.answered_ok.add(event["id"])
                        deliveries.acked_invoices.add(invoice)

            threads = [threading.Thread(target=deliver, args=(event,)) for event in events]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        deliveries.settle()
    return report


SCENARIOS = [redis_down_mid_burst, worker_killed_mid_batch, postgres_unavailable, stripe_errors_on_money_calls,
             concurrent_duplicate_deliveries]


def table(reports: list[Report]) -> str:
    lines = [f"{'scenario':<52} {'sent':>5} {'200':>5} {'5xx':>5} {'stored':>7} {'processed':>9} {'lost':>5} {'doubled':>7} {'s':>6}"]
    for r in reports:
        lines.append(f"{r.scenario:<52} {r.sent:>5} {r.answered_200:>5} {r.answered_5xx:>5} {r.stored:>7} {r.processed:>9} "
                     f"{r.lost:>5} {r.doubled:>7} {r.seconds:>6}" + (f"  ({r.note})" if r.note else ""))
    return "\n".join(lines)


def main(names: list[str] | None = None) -> int:
    """Run every scenario (or those named, e.g. `python -m tests.reliability crash_anywhere`) and print the table."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.update(local_production_env())  # the same settings and keys as the processes it starts
    django.setup()
    from tests.reliability.crash_anywhere import crash_anywhere

    scenarios = [*SCENARIOS, crash_anywhere]
    if names:
        unknown = set(names) - {scenario.__name__ for scenario in scenarios}
        if unknown:
            print(f"Unknown scenario(s): {', '.join(sorted(unknown))}; known: {', '.join(s.__name__ for s in scenarios)}")
            return 2
        scenarios = [scenario for scenario in scenarios if scenario.__name__ in names]
    reports = [scenario() for scenario in scenarios]
    print(table(reports))
    Path(ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "chaos.json").write_text(json.dumps([asdict(r) for r in reports], indent=2))
    return 1 if any(r.lost or r.doubled or r.details.get("violations") for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

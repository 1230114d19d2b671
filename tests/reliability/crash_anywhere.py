"""Crash anywhere (issue 21, item 7): a mixed workload through the real endpoint and workers while processes are SIGKILLed.

Over about a minute, more than 2,000 distinct signed events (card payments, SEPA successes and failures, Dashboard
refunds, disputes won and lost, with duplicates and out of order) are delivered to gunicorn, and the finance
integrator refunds payments through the API as they are booked (the fake Stripe then sends that refund's events too).
Meanwhile, ten times at random moments, one process is killed with SIGKILL: a gunicorn web worker, a Celery worker,
PostgreSQL (a private cluster: the postmaster and all its processes) or Redis (a private one, no persistence). What
docker-compose's `restart: unless-stopped` would restart is restarted; gunicorn's master replaces its own workers.
The sender acts as Stripe: a delivery that is not answered 2xx is delivered again later, until it is.

Afterwards, once everything is drained (what beat's requeue and pending-refund tasks do): the books must be sound
(check_books), every distinct event stored once and processed, and each charge's balances exactly what its events
say (payment, refunds, dispute withdrawals): nothing lost, nothing booked twice; and Stripe never refunded twice.
"""

from __future__ import annotations

import heapq
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from decimal import Decimal

from tests.reliability.harness import PrivateCluster, Report, Stack, children_of, pg_bin, run_script, send

KILL_TARGETS = ("web worker", "celery worker", "postgresql", "redis")
RESTART_DELAY = 1.0  # seconds before the supervisor restarts what was killed (compose restarts at once, then backs off)

SETUP_SCRIPT = """
import json, sys
from decimal import Decimal
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token
from tests.factories import InvoiceFactory, ProviderSettingFactory
n = int(sys.argv[1])
setting = ProviderSettingFactory()
invoices = [InvoiceFactory(amount=Decimal("100.00"), currency="EUR").pk for _ in range(n)]
user = User.objects.create_user("chaos-finance", is_staff=True)
user.groups.add(Group.objects.get(name="Finance"))
print(json.dumps({"webhook_id": str(setting.webhook_id), "invoices": invoices, "token": Token.objects.create(user=user).key}))
"""

FINAL_STATE_SCRIPT = """
import json
from billing.models import Balance
from refunds.models import RefundRequest
from webhooks.models import WebhookEvent
print(json.dumps({
    "events": list(WebhookEvent.objects.values_list("stripe_event_id", "status", "last_error")),
    "balances": [(t, ty, str(a), r, d) for t, ty, a, r, d in
                 Balance.objects.values_list("transaction_number", "type", "amount", "stripe_refund_id", "dispute_id")],
    "refund_requests": list(RefundRequest.objects.values_list("charge_id", "status", "stripe_refund_id", "source")),
}))
"""

# What beat does (webhooks.tasks.requeue_stale_events every 60 s, refunds' pending requests every 300 s), on a shorter
# clock to fit the scenario: events still `received` are enqueued again (their task died with a worker or with Redis), API
# refunds whose Stripe answer was lost are finished.
BEAT_SCRIPT = """
import json
from datetime import timedelta
from refunds.services import finish_pending_refund_requests
from webhooks.services import requeue_stale_events
print(json.dumps([requeue_stale_events(older_than=timedelta(seconds=5)), finish_pending_refund_requests(older_than=timedelta(seconds=10))]))
"""
BEAT_INTERVAL = 8.0


# --- The workload ----------------------------------------------------------------------------------


def build_workload(fake, invoices: list[int], rng: random.Random) -> tuple[list[dict], list[str]]:
    """The events Stripe sends at first, in sending order, and the charges the integrator refunds through the API.

    Half of the invoices get the benchmark's mix (bench.common.mix_events: card, SEPA ok, SEPA failed, card + Dashboard
    refund); the other half a card payment that is refunded through our API, disputed and won, or disputed and lost.
    Every charge is also known to the fake Stripe (handlers fetch a dispute's or a refund's charge from it)."""
    from bench.common import mix_events
    from tests.helpers import make_charge, make_event

    half = len(invoices) // 2
    groups: dict[str, list[dict]] = defaultdict(list)  # per charge, in the order Stripe emits them
    for event in mix_events(invoices[:half]):
        groups[event["data"]["object"]["id"]].append(event)
    our_refunds, disputes = [], []
    for index, invoice in enumerate(invoices[half:]):
        charge = make_charge(metadata={"invoice_id": str(invoice)}, created=1_700_100_000 + index)
        groups[charge["id"]].append(make_event("charge.succeeded", charge))
        (our_refunds if index % 3 == 0 else disputes).append((charge["id"], "won" if index % 3 == 1 else "lost"))
    with fake.lock:
        for charge_id, events in groups.items():
            charge = dict(events[-1]["data"]["object"])
            refunded = sum(refund["amount"] for refund in (charge.pop("refunds", None) or {}).get("data", []))
            fake.objects[charge_id] = {**charge, "amount_refunded": refunded, "disputed": False}
        first_fake_event = len(fake.events)
    for charge_id, outcome in disputes:
        groups[charge_id] += fake.dispute_charge(charge_id, outcome=outcome)  # created, funds_withdrawn, (reinstated,) closed
    with fake.lock:
        del fake.events[first_fake_event:]  # sent from `groups`; the emitter forwards only what happens at Stripe from now on
    order = list(groups.values())
    rng.shuffle(order)
    events = [event for group in order for event in group]
    # Stripe does not keep order: each event moves up to 8 places either way (a refund or a dispute may come first).
    for index in range(len(events)):
        other = min(len(events) - 1, max(0, index + rng.randint(-8, 8)))
        events[index], events[other] = events[other], events[index]
    return events, [charge_id for charge_id, _ in our_refunds]


def with_duplicates(events: list[dict], rng: random.Random, share: float = 0.1) -> list[dict]:
    """About `share` of the events are delivered a second time, a little later (Stripe delivers at least once)."""
    deliveries = list(events)
    for event in rng.sample(events, int(len(events) * share)):
        position = deliveries.index(event)
        deliveries.insert(min(len(deliveries), position + rng.randint(20, 400)), event)
    return deliveries


def expected_books(events: list[dict], stripe_refunds: dict[str, list[dict]]) -> dict[str, dict]:
    """Per charge, what its balances must add up to, from the events delivered and the refunds Stripe holds:
    payment = minus the amount if it succeeded; refunds = plus each distinct refund; adjustments = plus a dispute's
    amount if withdrawn and not reinstated, and how many adjustment balances (a withdrawal, a reinstatement)."""
    charges, refunds, disputes = {}, {}, {}
    for event in events:
        obj, event_type = event["data"]["object"], event["type"]
        if event_type.startswith("charge.dispute."):
            dispute = disputes.setdefault(obj["id"], {"charge": obj["charge"], "amount": obj["amount"], "withdrawn": False,
                                                      "reinstated": False})
            dispute["withdrawn"] |= event_type in ("charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated") or \
                obj["status"] in ("won", "lost")
            dispute["reinstated"] |= event_type == "charge.dispute.funds_reinstated" or obj["status"] == "won"
        elif obj["object"] == "refund":
            refunds[obj["id"]] = (obj["charge"], obj["amount"])
        elif obj["object"] == "charge":
            charge = charges.setdefault(obj["id"], {"amount": obj["amount"], "statuses": set()})
            charge["statuses"].add(obj["status"])
            for refund in (obj.get("refunds") or {}).get("data", []):
                refunds[refund["id"]] = (obj["id"], refund["amount"])
    for charge_id, at_stripe in stripe_refunds.items():
        for refund in at_stripe:
            refunds[refund["id"]] = (charge_id, refund["amount"])
    books = {charge_id: {"payment": Decimal(-charge["amount"]) / 100 if "succeeded" in charge["statuses"] and "failed" not in
                         charge["statuses"] else Decimal(0), "refund": Decimal(0), "adjustment": Decimal(0), "adjustments": 0}
             for charge_id, charge in charges.items()}
    for charge_id, amount in refunds.values():
        books[charge_id]["refund"] += Decimal(amount) / 100
    for dispute in disputes.values():
        book = books[dispute["charge"]]
        book["adjustment"] += Decimal(dispute["amount"]) / 100 if dispute["withdrawn"] and not dispute["reinstated"] else 0
        book["adjustments"] += dispute["withdrawn"] + dispute["reinstated"]
    return books


# --- Stripe's side: deliveries with retries ------------------------------------------------------------


class Sender:
    """Delivers signed events like Stripe: a few at a time, each delivery again later until it is answered 2xx."""

    def __init__(self, stack: Stack, webhook_id: str, rng: random.Random, threads: int = 6):
        self.stack, self.webhook_id, self.rng = stack, webhook_id, rng
        self.heap: list[tuple[float, int, dict]] = []
        self.cond = threading.Condition()
        self.sequence = self.in_flight = 0
        self.deliveries = self.acknowledged = self.retries = self.answered_5xx = self.connection_errors = 0
        self.other_answers: Counter = Counter()
        self.acked: set[str] = set()
        self.delivered: dict[str, dict] = {}  # every distinct event ever delivered
        self.stopping = False
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for thread in self.threads:
            thread.start()

    def put(self, event: dict, at: float) -> None:
        with self.cond:
            self.deliveries += 1
            self.delivered.setdefault(event["id"], event)
            self._push(event, at)

    def _push(self, event: dict, at: float) -> None:
        self.sequence += 1
        heapq.heappush(self.heap, (at, self.sequence, event))
        self.cond.notify()

    def idle(self) -> bool:
        with self.cond:
            return not self.heap and not self.in_flight

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.stopping and (not self.heap or self.heap[0][0] > time.monotonic()):
                    self.cond.wait(timeout=max(0.01, self.heap[0][0] - time.monotonic()) if self.heap else 0.5)
                if self.stopping:
                    return
                _, _, event = heapq.heappop(self.heap)
                self.in_flight += 1
            status = send(self.stack, self.webhook_id, event)
            with self.cond:
                self.in_flight -= 1
                if 200 <= status < 300:
                    self.acknowledged += 1
                    self.acked.add(event["id"])
                    continue
                self.retries += 1
                if status == 0:
                    self.connection_errors += 1
                elif status >= 500:
                    self.answered_5xx += 1
                else:
                    self.other_answers[status] += 1
                self._push(event, time.monotonic() + self.rng.uniform(0.5, 2.0))  # Stripe retries later


def forward_stripe_events(fake, sender: Sender, rng: random.Random, stop: threading.Event) -> None:
    """What happens at the fake Stripe from now on (the refunds our API creates) is sent as events, some twice."""
    cursor = len(fake.events)
    while not stop.is_set():
        with fake.lock:
            new, cursor = [dict(event) for event in fake.events[cursor:]], len(fake.events)
        for event in new:
            for _ in range(2 if rng.random() < 0.1 else 1):
                sender.put(event, time.monotonic() + rng.uniform(0.05, 1.0))
        stop.wait(0.2)


class Beat(threading.Thread):
    """Celery beat's repair tasks on a short clock; `idle_rounds` counts the rounds in a row that found nothing to do."""

    def __init__(self, stack: Stack, stop: threading.Event):
        super().__init__(daemon=True)
        self.stack, self.stop = stack, stop
        self.rounds, self.idle_rounds, self.requeued, self.finished, self.failed_rounds = 0, 0, 0, 0, 0

    def run(self) -> None:
        while not self.stop.wait(BEAT_INTERVAL):
            try:
                requeued, finished = run_script(self.stack, BEAT_SCRIPT)
            except (subprocess.SubprocessError, ValueError):  # PostgreSQL or Redis is down: beat's task fails, it runs again later
                self.failed_rounds += 1
                self.idle_rounds = 0
                continue
            self.rounds += 1
            self.requeued += requeued
            self.finished += finished
            self.idle_rounds = self.idle_rounds + 1 if not requeued and not finished else 0


# --- The finance integrator: refunds through the API while events flow ---------------------------------


def refund_through_api(stack: Stack, cluster: PrivateCluster, token: str, charges: list[str], results: dict,
                       stop: threading.Event) -> None:
    """Refund 10.00 of each charge as soon as its payment is booked (in whatever order that happens); a failed call is
    repeated with the same Idempotency-Key (what an integrator does), so a crash between our service and Stripe must
    never refund twice."""
    import psycopg

    waiting, booked, attempts = set(charges), {}, Counter()
    while (waiting or booked) and not stop.is_set():
        if waiting:
            try:
                with psycopg.connect(f"host=127.0.0.1 port={cluster.port} user=postgres dbname=postgres", connect_timeout=3) as conn:
                    rows = conn.execute("SELECT transaction_number, min(id) FROM billing_balance WHERE type = 'payment' "
                                        "AND transaction_number = ANY(%s) GROUP BY transaction_number", (list(waiting),)).fetchall()
            except psycopg.Error:
                rows = []  # PostgreSQL is restarting
            for charge_id, balance_id in rows:
                waiting.discard(charge_id)
                booked[charge_id] = balance_id
        if not booked:
            time.sleep(0.3)  # nothing booked yet
            continue
        for charge_id, balance_id in list(booked.items()):
            attempts[charge_id] += 1
            status = stack.post(f"/api/balances/{balance_id}/refund/", json.dumps({"amount": "10.00"}).encode(), {
                "Content-Type": "application/json", "Authorization": f"Token {token}", "Idempotency-Key": f"chaos-refund-{charge_id}"})
            if status == 201:
                results["refunded"] += 1
                results["at"].append(time.monotonic())
                del booked[charge_id]
                continue
            results["retried"] += 1
            if 400 <= status < 500 and attempts[charge_id] >= 20:
                results["refused"].append((charge_id, status))
                del booked[charge_id]
        time.sleep(0.2)


# --- The supervisor: kills, and restarts what compose would restart ----------------------------------


class Supervisor:
    def __init__(self, stack: Stack, cluster: PrivateCluster, rng: random.Random):
        self.stack, self.cluster, self.rng = stack, cluster, rng
        self.kills: list[dict] = []
        self.revived = 0
        self.lock = threading.Lock()

    def kill(self, target: str, started: float) -> None:
        with self.lock:
            at = round(time.monotonic() - started, 1)
            if target == "web worker":
                pid = self._web_worker()
                os.kill(pid, signal.SIGKILL)  # gunicorn's master replaces it
            elif target == "celery worker":
                worker = self.rng.choice([w for w in self.stack.workers if w.poll() is None] or self.stack.workers)
                pid = worker.pid
                self.stack.kill_worker(worker)  # SIGKILL to the worker and its pool
                time.sleep(RESTART_DELAY)
                self.stack.start_worker()
            elif target == "postgresql":
                pid = self.cluster.kill()
                time.sleep(RESTART_DELAY)
                self.cluster.start()  # crash recovery
            else:
                pid = self.stack.redis.pid
                self.stack.stop_redis()  # SIGKILL; no persistence: the queued tasks are gone
                time.sleep(RESTART_DELAY)
                self.stack.start_redis()
            self.kills.append({"at": at, "target": target, "pid": pid})

    def _web_worker(self) -> int:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            workers = children_of(self.stack.web.pid)
            if workers:
                return self.rng.choice(workers)
            time.sleep(0.1)
        raise RuntimeError("gunicorn has no worker to kill")

    def tend(self) -> None:
        """Workers that died by themselves (e.g. the broker vanished) are restarted, as compose does."""
        with self.lock:
            self.revived += self.stack.revive_workers()


def kill_plan(rng: random.Random, kills: int, seconds: float, min_gap: float = 3.0) -> list[tuple[float, str]]:
    """`kills` moments at random within the sending window (at least `min_gap` apart) and what dies at each: every kind
    of process at least once, the rest at random."""
    targets = list(KILL_TARGETS) + [rng.choice(KILL_TARGETS) for _ in range(kills - len(KILL_TARGETS))]
    rng.shuffle(targets)
    while True:
        moments = sorted(rng.uniform(0.05 * seconds, 0.9 * seconds) for _ in range(kills))
        if all(b - a >= min_gap for a, b in zip(moments, moments[1:], strict=False)):
            return list(zip(moments, targets, strict=True))


# --- The scenario ----------------------------------------------------------------------------------------


def crash_anywhere(invoices: int = 720, kills: int = 10, send_seconds: float = 60, seed: int | None = None,
                   drain_timeout: float = 300) -> Report:
    from tests.stripe_fake.server import FakeStripeServer

    seed = seed if seed is not None else random.SystemRandom().randrange(1_000_000)
    rng = random.Random(seed)
    report = Report(f"Mixed workload, {kills} SIGKILLs (web/worker/PG/Redis)")
    started = time.monotonic()
    bin_dir = pg_bin()
    if bin_dir is None:
        report.note = "no PostgreSQL server binaries (initdb): not run"
        return report
    # A process crash (not a power cut): the OS keeps what was written, so fsync can be off; commits stay as the service
    # makes them (event processing commits asynchronously: a PostgreSQL kill loses its last unflushed commits).
    cluster = PrivateCluster(bin_dir, options="-c fsync=off -c max_connections=200")
    fake = FakeStripeServer().start()
    stack = Stack()
    stack.env.update({"DATABASE_URL": cluster.url, "STRIPE_API_BASE": fake.url, "STRIPE_MAX_NETWORK_RETRIES": "2",
                      "DB_CONN_MAX_AGE": "60"})  # production's persistent connections: they must survive a restart
    stop = threading.Event()
    sender = None
    try:
        cluster.start()
        stack.start_redis()
        stack.manage("migrate", "--noinput", "-v0")
        setup = run_script(stack, SETUP_SCRIPT, invoices)
        stack.start_web()
        for _ in range(2):
            stack.start_worker(concurrency=4, pool="threads")  # docker-compose.yml's worker
        events, our_refunds = build_workload(fake, setup["invoices"], rng)
        deliveries = with_duplicates(events, rng)
        plan = kill_plan(rng, kills, send_seconds)  # the seed fixes the workload and the kill plan; threads get rngs of their own

        sender = Sender(stack, setup["webhook_id"], random.Random(rng.random()))
        supervisor = Supervisor(stack, cluster, random.Random(rng.random()))
        refund_results = {"refunded": 0, "retried": 0, "refused": [], "at": []}
        begin = time.monotonic()
        for index, event in enumerate(deliveries):  # paced over the sending window
            sender.put(event, begin + index * send_seconds / len(deliveries))
        beat = Beat(stack, stop)
        helpers = [threading.Thread(target=forward_stripe_events, args=(fake, sender, random.Random(rng.random()), stop),
                                    daemon=True),
                   threading.Thread(target=refund_through_api, args=(stack, cluster, setup["token"], our_refunds,
                                                                     refund_results, stop), daemon=True)]
        for thread in (*helpers, beat):
            thread.start()
        for moment, target in plan:
            while time.monotonic() - begin < moment:
                supervisor.tend()
                time.sleep(0.2)
            supervisor.kill(target, begin)

        # Drain: every delivery answered, every API refund made, and beat's requeue / pending-refund work done.
        deadline = time.monotonic() + drain_timeout
        left = {}
        while time.monotonic() < deadline:
            supervisor.tend()
            time.sleep(1)
            if sender.idle() and not helpers[1].is_alive() and beat.idle_rounds >= 1:
                left = _left_to_do(cluster)
                if not any(left.values()) and sender.idle():
                    break
        stop.set()
        drained = round(time.monotonic() - begin, 1)
        report = _verify(stack, fake, sender, report, left)
        report.details.update(seed=seed, kills=supervisor.kills, kills_by_target=dict(Counter(k["target"] for k in supervisor.kills)),
                              revived_by_supervisor=supervisor.revived, our_refunds=len(our_refunds),
                              api_refunds_created=refund_results["refunded"], api_refund_retries=refund_results["retried"],
                              api_refunds_refused=refund_results["refused"], seconds_to_drained=drained,
                              api_refunds_while_sending=sum(1 for at in refund_results["at"] if at - begin <= send_seconds),
                              beat={"rounds": beat.rounds, "requeued": beat.requeued, "refunds_finished": beat.finished,
                                    "failed_rounds": beat.failed_rounds})
        by_target = ", ".join(f"{target} {count}" for target, count in sorted(report.details["kills_by_target"].items()))
        report.note = (f"seed {seed}; kills: {by_target}; {report.details['distinct_events']} distinct events "
                       f"(+{sender.deliveries - report.details['distinct_events']} duplicates), {sender.retries} redeliveries "
                       f"({sender.connection_errors} connection errors); {refund_results['refunded']} API refunds "
                       f"({refund_results['retried']} retried); check_books "
                       f"{'clean' if not report.details['violations'] else report.details['violations'][:3]}; drained in {drained} s"
                       + (f"; {report.note}" if report.note else ""))
    finally:
        stop.set()
        if sender:
            sender.stop()
        stack.stop()
        fake.stop()
        cluster.destroy()
        report.seconds = round(time.monotonic() - started, 1)
    return report


def _left_to_do(cluster: PrivateCluster) -> dict:
    import psycopg

    try:
        with psycopg.connect(f"host=127.0.0.1 port={cluster.port} user=postgres dbname=postgres", connect_timeout=3) as conn:
            received = conn.execute("SELECT count(*) FROM webhooks_webhookevent WHERE status = 'received'").fetchone()[0]
            pending = conn.execute("SELECT count(*) FROM refunds_refundrequest WHERE status = 'pending' AND applied_at IS NULL "
                                   "AND source = 'service'").fetchone()[0]
    except psycopg.Error as error:
        return {"database": str(error)}
    return {"received": received, "pending_refunds": pending}


def _verify(stack: Stack, fake, sender: Sender, report: Report, left: dict) -> Report:
    state = run_script(stack, FINAL_STATE_SCRIPT)
    with fake.lock:
        stripe_refunds = {charge_id: [dict(fake.objects[refund_id]) for refund_id in refund_ids]
                          for charge_id, refund_ids in fake.refunds_by_charge.items()}
    distinct = set(sender.delivered)
    stored = Counter(event_id for event_id, _, _ in state["events"])
    statuses = Counter(status for _, status, _ in state["events"])
    unprocessed = [(event_id, status, error[:120]) for event_id, status, error in state["events"] if status not in ("processed", "ignored")]
    expected = expected_books(list(sender.delivered.values()), stripe_refunds)
    actual: dict[str, dict] = defaultdict(lambda: {"payment": Decimal(0), "refund": Decimal(0), "adjustment": Decimal(0), "adjustments": 0})
    for charge_id, balance_type, amount, _, dispute_id in state["balances"]:
        book = actual[charge_id]
        book[balance_type] = book.get(balance_type, Decimal(0)) + Decimal(amount)
        book["adjustments"] += balance_type == "adjustment" and bool(dispute_id)
    lost, doubled, mismatches, doubled_items = 0, 0, [], []
    for charge_id in sorted(set(expected) | set(actual)):
        want, have = expected.get(charge_id, {}), actual.get(charge_id, {})
        for key in sorted(set(want) | set(have)):
            expected_value, actual_value = want.get(key, 0), have.get(key, 0)
            if expected_value != actual_value:
                mismatches.append(f"{charge_id} {key}: expected {expected_value}, booked {actual_value}")
                if abs(actual_value) > abs(expected_value):
                    doubled += 1
                    doubled_items.append(mismatches[-1])
                else:
                    lost += 1
    refunded_twice = [charge_id for charge_id, refunds in stripe_refunds.items() if len(refunds) > 1]
    try:
        stack.manage("check_books")
        violations = []
    except subprocess.CalledProcessError as error:
        violations = error.stdout.strip().splitlines() or [error.stderr.strip()[-300:]]
    report.sent = sender.deliveries
    report.answered_200 = sender.acknowledged
    report.answered_5xx = sender.answered_5xx
    report.stored = len(stored)
    report.processed = statuses.get("processed", 0) + statuses.get("ignored", 0)
    report.lost = len(distinct - set(stored)) + len(sender.acked ^ distinct) + lost
    report.doubled = sum(1 for count in stored.values() if count > 1) + doubled + len(refunded_twice)
    totals = {key: str(sum(book[key] for book in expected.values())) for key in ("payment", "refund", "adjustment", "adjustments")}
    report.details.update(distinct_events=len(distinct), statuses=dict(statuses), expected_totals=totals, charges=len(expected), unprocessed=unprocessed[:5],
                          mismatches=mismatches[:10], doubled_items=doubled_items[:10], refunded_twice_at_stripe=refunded_twice, violations=violations,
                          left_to_do=left, other_answers=dict(sender.other_answers), connection_errors=sender.connection_errors,
                          redeliveries=sender.retries)
    if unprocessed:
        report.note = f"not processed: {unprocessed[:3]}"
    if mismatches:
        report.note = (report.note + "; " if report.note else "") + f"books differ: {mismatches[:3]}"
    return report

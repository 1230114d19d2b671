"""Refunds at scale: refunding a payment split into N balances; time and SQL queries for N = 1, 10, 100, 1000.

Sizes are interleaved in 11 rounds and the median of the paired ratios is reported (see run()).
Stripe is the project's fake Stripe server on 127.0.0.1 (an HTTP round trip, like the real thing).
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import timedelta
from decimal import Decimal

from bench.common import QueryCounter


def run(env: dict, *, quick: bool = False) -> dict:
    import django

    os.environ.update(env)
    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from billing.models import Balance
    from payments.models import PaymentTransaction
    from providers.stripe import gateway
    from refunds.services import refund_payment_balance
    from tests.factories import InvoiceFactory, ProviderSettingFactory
    from tests.stripe_fake import FakeStripeServer

    server = FakeStripeServer().start()
    settings.STRIPE_API_BASE = server.url
    rows = {}
    try:
        setting = ProviderSettingFactory(name=f"bench-refunds-{time.time_ns()}")

        def prepare(n: int):
            amount = Decimal(n)
            pi = gateway.create_payment_intent(setting, amount=max(amount, Decimal("1")), currency="EUR",
                                               idempotency_key=f"bench-{n}-{time.time_ns()}", payment_method_types=["card"],
                                               metadata={}, payment_method="pm_card_visa", confirm=True)
            charge_id = pi["latest_charge"]
            invoice = InvoiceFactory(amount=amount)
            start = timezone.now() - timedelta(days=1)
            # As the webhook path leaves it: the charge's transaction (its row lock serialises refunds) and its balances.
            PaymentTransaction.objects.create(charge_id=charge_id, provider_setting=setting, invoice=invoice, account=invoice.account,
                                              amount=max(amount, Decimal("1")), currency="EUR", status="succeeded",
                                              booked_at=timezone.now())
            Balance.objects.bulk_create([
                Balance(account=invoice.account, invoice=invoice, type="payment", amount=Decimal("-1"), currency="EUR",
                        date=start + timedelta(seconds=i), transaction_number=charge_id, provider_setting=setting) for i in range(n)])
            return Balance.objects.filter(transaction_number=charge_id).order_by("id").first(), amount, charge_id

        first, amount, _ = prepare(1)
        refund_payment_balance(first, amount=amount)  # warm-up: connections, compiled queries, the Stripe client
        repeats = 1 if quick else 11
        sizes = (1, 10, 100) if quick else (1, 10, 100, 1000)
        timings: dict[int, list[float]] = {n: [] for n in sizes}
        # Rounds interleave the sizes (1, 10, 100, 1000, 1, 10, ...): the machine's speed drifts within minutes, and
        # measuring all N=1 runs first would put that drift into the ratio. Each round gives a paired ratio.
        for _ in range(repeats):
            for n in sizes:
                first, amount, charge_id = prepare(n)  # fresh data every time
                # Counted by an execute wrapper, not CaptureQueriesContext: its debug cursor formats every statement
                # with its parameters, which is no part of a refund's cost (and grows with N).
                queries = QueryCounter()
                with connection.execute_wrapper(queries):
                    began = time.perf_counter()
                    result = refund_payment_balance(first, amount=amount)
                    timings[n].append(time.perf_counter() - began)
                locked = Balance.objects.filter(transaction_number=charge_id, type="payment", locked=True).count()
                row = rows.setdefault(n, {"queries": set(), "refund_balances": set(), "locked_payments": set()})
                row["queries"].add(len(queries))
                row["refund_balances"].add(len(result.refund_balances))
                row["locked_payments"].add(locked)
        for n, row in rows.items():
            for key in ("queries", "refund_balances", "locked_payments"):  # a single value unless some round differed
                row[key] = max(row[key]) if len(row[key]) == 1 else sorted(row[key])
            row.update(seconds=round(statistics.median(timings[n]), 4), repeats=repeats)
    finally:
        server.stop()
    largest = max(rows)
    paired = [big / one for big, one in zip(timings[largest], timings[1], strict=True)]
    growth = (max(rows[largest]["queries"]) if isinstance(rows[largest]["queries"], list) else rows[largest]["queries"]) - (
        min(rows[1]["queries"]) if isinstance(rows[1]["queries"], list) else rows[1]["queries"])
    return {"rows": rows, "time_ratio_largest_vs_1": round(statistics.median(paired), 2),
            "ratio_of_medians": round(rows[largest]["seconds"] / rows[1]["seconds"], 2), "query_growth": growth}


def check(result: dict) -> list[str]:
    problems = []
    for n, row in result["rows"].items():
        if row["refund_balances"] != int(n) or row["locked_payments"] != int(n):  # a list when rounds differed
            problems.append(f"refunds: N={n} made {row['refund_balances']} refund balances and locked {row['locked_payments']}")
    return problems


def table(result: dict) -> str:
    lines = ["Refund of a payment split into N balances (one Stripe call, bulk writes)",
             f"{'N':>5} {'seconds':>9} {'queries':>8}"]
    for n, row in result["rows"].items():
        lines.append(f"{n:>5} {row['seconds']:>9.4f} {row['queries']:>8}")
    lines.append(f"largest N vs N=1: time x{result['time_ratio_largest_vs_1']} (median of paired rounds; ratio of the medians "
                 f"x{result['ratio_of_medians']}) (target < 5), "
                 f"query count grows by {result['query_growth']} (target 0)")
    return "\n".join(lines)

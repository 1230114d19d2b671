"""Finance dashboard: server time of /admin/finance/ (default range: the last 30 days of one entity and currency) on
1,000,000 balances, against the plain Balance changelist on the same data, same logged-in client, interleaved
rounds, medians. Target: the dashboard within 3x the changelist."""

from __future__ import annotations

import os
import statistics
import time

TARGET_RATIO = 3.0
DAYS_OF_HISTORY = 3 * 365


def fill(*, balances: int, invoices: int, accounts: int) -> int:
    """Accounts, invoices (a quarter open, due over the last 200 days) and balances (one in twenty a refund, dated over
    three years) of one entity, with INSERT ... SELECT over generate_series. Returns the entity id."""
    from django.db import connection

    from billing.models import BusinessEntity

    entity = BusinessEntity.objects.create(name=f"Bench entity {time.time_ns()}", slug=f"bench-{time.time_ns()}", default_currency="EUR")
    BusinessEntity.objects.create(name="Bench other entity", slug=f"bench-other-{time.time_ns()}", default_currency="EUR")
    with connection.cursor() as cursor:
        # A million rows in one statement outlast the service's statement timeout (settings: 30 s) on a busy machine.
        cursor.execute("SET statement_timeout = 0")
        cursor.execute("""
            INSERT INTO billing_account (business_entity_id, name, email, language, created_at)
            SELECT %s, 'Bench customer ' || g, '', 'en', now() FROM generate_series(1, %s) g""", [entity.pk, accounts])
        cursor.execute("SELECT min(id) FROM billing_account WHERE business_entity_id = %s", [entity.pk])
        first_account = cursor.fetchone()[0]
        cursor.execute("""
            INSERT INTO billing_invoice (number, account_id, business_entity_id, kind, amount, currency, payment_reference, due_date,
                                         status, finalized_at, created_at)
            SELECT 'BENCH-' || %s || '-' || g, %s + g %% %s, %s, 'invoice', 100 + g %% 50, 'EUR', '', current_date - g %% 200,
                   CASE WHEN g %% 4 = 0 THEN 'open' ELSE 'paid' END, now(), now()
            FROM generate_series(1, %s) g""", [entity.pk, first_account, accounts, entity.pk, invoices])
        cursor.execute("SELECT min(id) FROM billing_invoice WHERE business_entity_id = %s", [entity.pk])
        first_invoice = cursor.fetchone()[0]
        cursor.execute("""
            INSERT INTO billing_balance (account_id, invoice_id, type, amount, currency, date, transaction_number, locked, lock_reason,
                                         stripe_refund_id, is_overrefund, status, note, created_at, dispute_id)
            SELECT i.account_id, i.id, CASE WHEN g %% 20 = 0 THEN 'refund' ELSE 'payment' END,
                   CASE WHEN g %% 20 = 0 THEN 5 ELSE -10 END, 'EUR',
                   now() - (g %% %s) * interval '1 day' - (g %% 86400) * interval '1 second', 'ch_bench' || g, false, '', '', false,
                   'confirmed', '', now(), ''
            FROM generate_series(1, %s) g JOIN billing_invoice i ON i.id = %s + g %% %s""",
                       [DAYS_OF_HISTORY, balances, first_invoice, invoices])
        for table in ("billing_account", "billing_invoice", "billing_balance"):
            cursor.execute(f"ANALYZE {table}")
        cursor.execute("RESET statement_timeout")
    return entity.pk


def run(env: dict, *, quick: bool = False) -> dict:
    import django

    os.environ.update(env)
    django.setup()
    from django.contrib.auth.models import Group, User
    from django.test import Client

    balances = 5_000 if quick else 1_000_000
    began = time.perf_counter()
    entity_id = fill(balances=balances, invoices=max(balances // 5, 100), accounts=max(balances // 1000, 10))
    fill_seconds = time.perf_counter() - began
    user = User.objects.create_user(f"bench-finance-{time.time_ns()}", password="bench-pass-123", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    client = Client()
    client.force_login(user)
    dashboard_url, changelist_url = f"/admin/finance/?entity={entity_id}&currency=EUR", "/admin/billing/balance/"
    for url in (dashboard_url, changelist_url):  # warm: templates compiled, caches filled
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    rounds = 3 if quick else 15
    dashboard_ms, changelist_ms = [], []
    for _ in range(rounds):  # interleaved: the machine's speed drifts
        for url, samples in ((dashboard_url, dashboard_ms), (changelist_url, changelist_ms)):
            started = time.perf_counter()
            client.get(url)
            samples.append((time.perf_counter() - started) * 1000)
    dashboard, changelist = statistics.median(dashboard_ms), statistics.median(changelist_ms)
    ratio = dashboard / changelist if changelist else 0
    return {"balances": balances, "fill_seconds": round(fill_seconds, 1), "rounds": rounds, "dashboard_ms": round(dashboard, 1),
            "changelist_ms": round(changelist, 1), "ratio": round(ratio, 2), "target": TARGET_RATIO, "met": ratio <= TARGET_RATIO}


def check(result: dict) -> list[str]:
    return [] if result["dashboard_ms"] > 0 and result["changelist_ms"] > 0 else ["dashboard: no timing"]


def table(result: dict) -> str:
    return "\n".join([
        "Finance dashboard (Django test client, logged-in finance user, PostgreSQL)",
        f"{result['balances']:,} balances (filled in {result['fill_seconds']} s); medians of {result['rounds']} interleaved rounds: "
        f"/admin/finance/ {result['dashboard_ms']} ms, plain Balance changelist {result['changelist_ms']} ms: "
        f"ratio {result['ratio']} (target <= {result['target']}): {'met' if result['met'] else 'NOT met'}",
    ])

"""The house rules that keep the books sound, read off the source code (SPEC §11, STYLE.md "Our own code"):

- the books (`Balance`, `PaymentEntry`, `Invoice.status`) are written only by billing's ledger (billing/ledger/);
- their row locks are taken only by billing/ledger/locks.py (and the statements it calls in billing/ledger/sql.py);
- hand-written SQL lives only in billing/ledger/sql.py;
- imports point down the house: billing <- providers <- payments <- refunds <- receipts, reminders, disputes <- webhooks <- demo, finance
  (disputes may import receipts: the evidence it sends is the charge's receipt).

Application code is checked; tests, benchmarks (their data generators fill the books like factories do), developer tools
and migrations are not. Each rule is proven to catch a violation by the tests at the end.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ["billing", "providers", "payments", "refunds", "receipts", "reminders", "disputes", "webhooks", "demo", "finance", "config",
        "scripts"]
LEDGER = ROOT / "billing" / "ledger"
BOOKS = {"Balance", "PaymentEntry"}
WRITES = {"create", "bulk_create", "get_or_create", "update_or_create", "update", "delete", "bulk_update", "save", "add"}
BOOK_RELATIONS = {"balances", "payment_entries", "resolved_entries", "split_parts", "refunded_by", "adjusted_by", "movements"}
BOOK_TABLES = re.compile(r"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?billing_(balance|paymententry|invoice)\b", re.IGNORECASE)
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|SET|RESET|LOCK)\b.*\b(FROM|INTO|SET|TO|TABLE|WHERE)\b", re.IGNORECASE | re.DOTALL)
# Lower may not import higher. A new app gets its place here.
RANK = {"billing": 0, "providers": 1, "payments": 2, "refunds": 3, "receipts": 4, "reminders": 4, "disputes": 4, "webhooks": 5, "demo": 6,
        "finance": 6}


def sources(apps=APPS):
    for app in apps:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def chain(node) -> list[str]:
    """The names along an attribute/call chain, root first: Balance.objects.filter(...).update -> [Balance, objects, filter, update]."""
    names = []
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            names.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Name):
            names.append(node.id)
            return names[::-1]
        else:
            return names[::-1]


def book_writes(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            names = chain(node)
            if names and names[-1] in BOOKS and len(names) <= 2:
                found.append((node.lineno, f"constructs {names[-1]}"))
            if names and names[-1] in WRITES:
                if names[0] in BOOKS or any(name in BOOK_RELATIONS for name in names[:-1]):
                    found.append((node.lineno, f"{'.'.join(names)}()"))
                if names[0] == "Invoice" and any(k.arg == "status" for k in node.keywords):
                    found.append((node.lineno, "writes Invoice.status"))
                if names[-1] == "save" and any(k.arg == "update_fields" and "status" in ast.unparse(k.value) for k in node.keywords) \
                        and any("invoice" in name.lower() or "document" in name.lower() for name in names[:-1]):
                    found.append((node.lineno, "saves an invoice's status"))
            if names and names[-1] == "update_fields" and node.args and "status" in ast.unparse(node.args[-1]) \
                    and "invoice" in ast.unparse(node.args[0]).lower():
                found.append((node.lineno, "writes an invoice's status"))
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and target.attr == "status" and re.search(r"invoice|document", ast.unparse(target.value), re.I):
                    found.append((node.lineno, f"assigns {ast.unparse(target)}"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and BOOK_TABLES.search(node.value):
            found.append((node.lineno, "SQL writing the books"))
    return found


def book_locks(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            names = chain(node)
            if "select_for_update" in names and (names[0] in BOOKS | {"Invoice"} or any(n in BOOK_RELATIONS for n in names)):
                found.append((node.lineno, f"locks {'.'.join(names)}"))
    return found


def raw_sql(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and chain(node)[-1:] == ["execute"]:
            found.append((node.lineno, "cursor.execute"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value) and len(node.value) < 2000:
            found.append((node.lineno, f"SQL text {node.value[:40]!r}"))
        elif isinstance(node, ast.JoinedStr) and SQL.search("".join(v.value for v in node.values if isinstance(v, ast.Constant))):
            found.append((node.lineno, "SQL f-string"))
    return found


def upward_imports(path: Path, tree: ast.AST) -> list[tuple[int, str]]:
    app = path.relative_to(ROOT).parts[0]
    if app not in RANK:
        return []
    found = []
    for node in ast.walk(tree):
        modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
        for module in modules:
            target = module.split(".")[0]
            if RANK.get(target, -1) > RANK[app]:
                found.append((node.lineno, f"{app} imports {module}"))
    return found


def violations(rule, *, allowed=()) -> list[str]:
    found = []
    for path in sources():
        if any(path.is_relative_to(ROOT / place) for place in allowed):
            continue
        tree = ast.parse(path.read_text(), str(path))
        found += [f"{path.relative_to(ROOT)}:{line}: {what}" for line, what in (rule(path, tree) if rule is upward_imports else rule(tree))]
    return found


def test_only_the_ledger_writes_the_books():
    assert violations(book_writes, allowed=[LEDGER]) == []


def test_only_the_ledger_locks_the_books():
    assert violations(book_locks, allowed=[LEDGER / "locks.py", LEDGER / "sql.py"]) == []


def test_hand_written_sql_lives_in_one_module():
    assert violations(raw_sql, allowed=[LEDGER / "sql.py"]) == []


def test_imports_point_down_the_house():
    assert violations(upward_imports) == []


@pytest.mark.parametrize("code, rule", [
    ("Balance.objects.filter(pk=1).update(locked=True)", book_writes),
    ("PaymentEntry.objects.get_or_create(kind='x')", book_writes),
    ("Balance(account=a, amount=1)", book_writes),
    ("invoice.balances.create(amount=1)", book_writes),
    ("Invoice.objects.filter(pk=1).update(status='paid')", book_writes),
    ("invoice.status = 'paid'", book_writes),
    ("update_fields(invoice, ['status'])", book_writes),
    ("cursor.execute('DELETE FROM billing_balance WHERE id = 1')", book_writes),
    ("Invoice.objects.select_for_update().get(pk=1)", book_locks),
    ("list(Balance.objects.select_for_update().filter(pk=1))", book_locks),
    ("cursor.execute(q)", raw_sql),
    ("q = 'SELECT id FROM billing_invoice WHERE id = %s'", raw_sql),
])
def test_each_rule_catches_what_it_forbids(code, rule):
    assert rule(ast.parse(code))


def test_the_import_rule_catches_an_upward_import():
    assert upward_imports(ROOT / "billing" / "x.py", ast.parse("from payments.models import PaymentTransaction"))
    assert not upward_imports(ROOT / "payments" / "x.py", ast.parse("from billing.models import Balance"))

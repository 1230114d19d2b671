"""Shared test setup: the fake Stripe server, service availability and small helpers."""

import logging
import os
import re
import uuid

import pytest
from django.core.handlers.base import BaseHandler

pytest_plugins = ["tests.stripe_fake.pytest_plugin", "tests.money_fixtures"]

SERVICES_AVAILABLE = os.environ.get("SERVICES_AVAILABLE", "0") == "1"


def pytest_collection_modifyitems(config, items):
    if SERVICES_AVAILABLE:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL and Redis on 127.0.0.1 (run through `make test`)")
    for item in items:
        if "services" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _own_rate_limit_counters(settings):
    """Every test counts from zero: the payment page's rate limits (payments.throttling) live in the shared Redis."""
    settings.RATELIMIT_CACHE_PREFIX = f"rl:{uuid.uuid4().hex}:"


@pytest.fixture(autouse=True)
def _fresh_setting_caches():
    """The per-process caches of provider settings (providers.selectors) are cleared by signals when a setting changes;
    a test's rows vanish by rollback, without signals, so every test starts with empty caches."""
    from payments.rendered_pages import forget_rendered_pages
    from providers.selectors import forget_cached_settings

    forget_cached_settings()
    forget_rendered_pages()
    yield


@pytest.fixture
def celery_conf():
    """Temporarily change the Celery app's configuration (it caches values read from Django settings)."""
    from config.celery import app

    saved = {}

    def change(**values):
        for key, value in values.items():
            saved.setdefault(key, app.conf[key])
        app.conf.update(**values)
        app._pool = app.amqp._producer_pool = None  # connections and producers made for the old broker

    yield change
    app.conf.update(**saved)
    app._pool = app.amqp._producer_pool = None


# --- The books are sound after every test ------------------------------------------------------------
# After every test that used the database, billing.ledger.check_books() must find no violation of SPEC §11's
# invariants: a test that leaves broken books fails, whatever it asserted itself.

DATABASE_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback", "live_server"}


def _uses_database(item) -> bool:
    return item.get_closest_marker("django_db") is not None or bool(DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield  # the test passed (a failing test raises through here and is reported as it is)
    if _uses_database(item) and item.get_closest_marker("books_may_break") is None:
        from billing.ledger import check_books

        violations = check_books()
        assert not violations, "the books break SPEC §11 after this test:\n" + "\n".join(map(str, violations))
    return result


# --- No secret ever leaves the service -------------------------------------------------------------
# Every HTTP response and every log record of the whole run is scanned for anything shaped like a
# Stripe secret or for the configured encryption keys; a test that leaks one fails.

SECRET_SHAPES = re.compile(r"(?:sk|rk)_(?:test|live)_[A-Za-z0-9]{6,}|whsec_[A-Za-z0-9]{6,}")
_leaks: list[str] = []


def _encryption_keys() -> list[str]:
    from django.conf import settings

    return [key for key in settings.FIELD_ENCRYPTION_KEYS if key]


def _scan(where: str, text: str) -> None:
    match = SECRET_SHAPES.search(text)
    if match:
        _leaks.append(f"{where}: {match.group(0)[:12]}…")
    for key in _encryption_keys():
        if key in text:
            _leaks.append(f"{where}: an encryption key")


class _LeakScanningHandler(logging.Handler):
    def emit(self, record):
        text = record.getMessage() + (self.formatter.formatException(record.exc_info) if record.exc_info and self.formatter else "")
        _scan(f"log {record.name}", text)


@pytest.fixture(scope="session", autouse=True)
def _scan_responses_and_logs_for_secrets():
    original = BaseHandler.get_response

    def get_response(self, request):
        response = original(self, request)
        if not getattr(response, "streaming", False):
            _scan(f"response {request.method} {request.path}", response.content.decode("utf-8", "replace"))
        _scan(f"headers {request.path}", str(dict(response.items())))
        return response

    BaseHandler.get_response = get_response
    handler = _LeakScanningHandler(level=logging.DEBUG)
    handler.setFormatter(logging.Formatter())
    logging.getLogger().addHandler(handler)
    yield
    logging.getLogger().removeHandler(handler)
    BaseHandler.get_response = original


@pytest.fixture(autouse=True)
def no_secret_leaks():
    _leaks.clear()
    yield
    leaks, _leaks[:] = list(_leaks), []
    assert not leaks, f"secrets leaked: {leaks}"

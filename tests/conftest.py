"""Shared test setup: the fake Stripe server, service availability and small helpers."""

import os

import pytest

pytest_plugins = ["tests.stripe_fake.pytest_plugin"]

SERVICES_AVAILABLE = os.environ.get("SERVICES_AVAILABLE", "0") == "1"


def pytest_collection_modifyitems(config, items):
    if SERVICES_AVAILABLE:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL and Redis on 127.0.0.1 (run through `make test`)")
    for item in items:
        if "services" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def celery_conf():
    """Temporarily change the Celery app's configuration (it caches values read from Django settings)."""
    from config.celery import app

    saved = {}

    def change(**values):
        for key, value in values.items():
            saved.setdefault(key, app.conf[key])
        app.conf.update(**values)
        app._pool = None

    yield change
    app.conf.update(**saved)
    app._pool = None

"""Fixtures: one fake Stripe server per test session, reset for every test that uses it."""

import pytest

from tests.stripe_fake.server import FakeStripeServer


@pytest.fixture(scope="session")
def fake_stripe_server():
    server = FakeStripeServer().start()
    yield server
    server.stop()


@pytest.fixture
def fake_stripe(fake_stripe_server, settings):
    fake_stripe_server.reset()
    settings.STRIPE_API_BASE = fake_stripe_server.url
    settings.STRIPE_MAX_NETWORK_RETRIES = 2
    yield fake_stripe_server
    fake_stripe_server.reset()

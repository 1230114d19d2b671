import pytest

from tests.e2e.stack import E2EStack


@pytest.fixture(scope="session")
def stack():
    """One product stack and one localstripe for the module: each scenario pays its own invoice."""
    running = E2EStack()
    try:
        yield running.start()
    finally:
        running.stop()

from tests.stripe_fake.server import FakeStripeServer

__all__ = ["FakeStripeServer"]

"""Signed, expiring, opaque links to one invoice: `/pay/<token>/` and `/pay/save-method/<token>/`.

A token is a Fernet token (AES + HMAC, with its creation time) over "<purpose>:<invoice id>", keyed by
SECRET_KEY and the purpose, so it neither shows the invoice id nor works for another purpose.
"""

import base64
import hashlib
import time
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.utils.translation import gettext as _

PAY = "pay"
SAVE_METHOD = "save-method"
RECEIPT = "receipt"  # over a receipt id: the receipt's download link (receipts app)


class TokenError(Exception):
    """The link is tampered with, for another purpose, or expired; the message is for the customer.

    An expired token was still signed by us, so `expired_id` names what it pointed to: enough to show the page in
    the entity's branding with its support address, never to act on it."""

    def __init__(self, message: str, *, expired_id: int | None = None):
        super().__init__(message)
        self.expired_id = expired_id

    @property
    def expired(self) -> bool:
        return self.expired_id is not None


# Fernet refuses tokens made this far in the future (clocks of several web servers drift).
MAX_CLOCK_SKEW_SECONDS = 60


@lru_cache(maxsize=8)
def _fernet(purpose: str, secret_key: str) -> Fernet:
    digest = hashlib.sha256(f"payment-link:{purpose}:{secret_key}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def make_token(object_id: int, *, purpose: str = PAY, now: int | None = None) -> str:
    token = _fernet(purpose, settings.SECRET_KEY).encrypt_at_time(f"{purpose}:{object_id}".encode(), int(now or time.time()))
    return token.decode().rstrip("=")


def _object_id(plain: bytes, purpose: str) -> int | None:
    prefix, _, object_id = plain.decode().partition(":")
    return int(object_id) if prefix == purpose and object_id.isdigit() else None


def _not_valid() -> str:
    return _("This link is not valid. Please use the link from your email.")


@lru_cache(maxsize=4096)
def _opened(padded: bytes, purpose: str, secret_key: str) -> tuple[int | None, int]:
    """(object id, creation time) of a token whose signature holds; InvalidToken/ValueError otherwise.

    Kept per process for valid tokens only (an exception is never cached, and nobody can make a valid token without
    SECRET_KEY): a customer's page, its reloads and its intent request verify and decrypt the same token, which was
    a tenth of the payment page's server time (bench/page.py). The age is checked on every read, by read_token."""
    plain = _fernet(purpose, secret_key).decrypt(padded)
    created = int.from_bytes(base64.urlsafe_b64decode(padded)[1:9], "big")  # Fernet's layout: version, timestamp, ...
    return _object_id(plain, purpose), created


def read_token(token: str, *, purpose: str = PAY, max_age: int | None = None) -> int:
    """The id inside a valid token (an invoice's, or a receipt's for RECEIPT); TokenError otherwise (never a 500)."""
    max_age = max_age or settings.PAYMENT_LINK_MAX_AGE_SECONDS
    padded = (token + "=" * (-len(token) % 4)).encode()
    try:
        object_id, created = _opened(padded, purpose, settings.SECRET_KEY)
    except (InvalidToken, ValueError):
        raise TokenError(_not_valid()) from None
    now = time.time()
    if object_id is None or created > now + MAX_CLOCK_SKEW_SECONDS:
        raise TokenError(_not_valid())
    if created + max_age < now:  # signed by us, but too old: say so (and who to ask) instead of "not valid"
        raise TokenError(_("This link has expired."), expired_id=object_id)
    return object_id

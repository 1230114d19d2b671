"""Signed, expiring, opaque links to one invoice: `/pay/<token>/` and `/pay/save-method/<token>/`.

A token is a Fernet token (AES + HMAC, with its creation time) over "<purpose>:<invoice id>", keyed by
SECRET_KEY and the purpose, so it neither shows the invoice id nor works for another purpose.
"""

import base64
import hashlib
import time

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


def _fernet(purpose: str) -> Fernet:
    digest = hashlib.sha256(f"payment-link:{purpose}:{settings.SECRET_KEY}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def make_token(object_id: int, *, purpose: str = PAY, now: int | None = None) -> str:
    token = _fernet(purpose).encrypt_at_time(f"{purpose}:{object_id}".encode(), int(now or time.time()))
    return token.decode().rstrip("=")


def _object_id(plain: bytes, purpose: str) -> int | None:
    prefix, _, object_id = plain.decode().partition(":")
    return int(object_id) if prefix == purpose and object_id.isdigit() else None


def read_token(token: str, *, purpose: str = PAY, max_age: int | None = None) -> int:
    """The id inside a valid token (an invoice's, or a receipt's for RECEIPT); TokenError otherwise (never a 500)."""
    max_age = max_age or settings.PAYMENT_LINK_MAX_AGE_SECONDS
    padded = (token + "=" * (-len(token) % 4)).encode()
    fernet = _fernet(purpose)
    not_valid = _("This link is not valid. Please use the link from your email.")
    try:
        object_id = _object_id(fernet.decrypt(padded, ttl=max_age), purpose)
    except InvalidToken:
        try:  # signed by us, but too old: say so (and who to ask) instead of "not valid"
            expired_id = _object_id(fernet.decrypt(padded), purpose)
        except (InvalidToken, ValueError):
            raise TokenError(not_valid) from None
        if expired_id is None:
            raise TokenError(not_valid) from None
        raise TokenError(_("This link has expired."), expired_id=expired_id) from None
    except ValueError:
        raise TokenError(not_valid) from None
    if object_id is None:
        raise TokenError(not_valid)
    return object_id

"""Signed, expiring, opaque links to one invoice: `/pay/<token>/` and `/pay/save-method/<token>/`.

A token is a Fernet token (AES + HMAC, with its creation time) over "<purpose>:<invoice id>", keyed by
SECRET_KEY and the purpose, so it neither shows the invoice id nor works for another purpose.
"""

import base64
import hashlib
import time

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

PAY = "pay"
SAVE_METHOD = "save-method"


class TokenError(Exception):
    """The link is tampered with, for another purpose, or expired; the message is for the customer."""


def _fernet(purpose: str) -> Fernet:
    digest = hashlib.sha256(f"payment-link:{purpose}:{settings.SECRET_KEY}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def make_token(invoice_id: int, *, purpose: str = PAY, now: int | None = None) -> str:
    token = _fernet(purpose).encrypt_at_time(f"{purpose}:{invoice_id}".encode(), int(now or time.time()))
    return token.decode().rstrip("=")


def read_token(token: str, *, purpose: str = PAY, max_age: int | None = None) -> int:
    """The invoice id inside a valid token; TokenError otherwise (never a 500)."""
    max_age = max_age or settings.PAYMENT_LINK_MAX_AGE_SECONDS
    padded = (token + "=" * (-len(token) % 4)).encode()
    fernet = _fernet(purpose)
    try:
        plain = fernet.decrypt(padded, ttl=max_age).decode()
    except InvalidToken:
        try:
            fernet.decrypt(padded)
        except (InvalidToken, ValueError):
            raise TokenError("This payment link is not valid. Please use the link from your invoice email.") from None
        raise TokenError("This payment link has expired. Please ask us for a new one.") from None
    except ValueError:
        raise TokenError("This payment link is not valid. Please use the link from your invoice email.") from None
    prefix, _, invoice_id = plain.partition(":")
    if prefix != purpose or not invoice_id.isdigit():
        raise TokenError("This payment link is not valid. Please use the link from your invoice email.")
    return int(invoice_id)

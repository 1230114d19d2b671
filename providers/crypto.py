"""Encryption at rest for provider secrets: MultiFernet over FIELD_ENCRYPTION_KEYS (newest first).

Without configured keys (development only: production refuses to start, config/keys.py) a key is derived from
SECRET_KEY and a system check warns loudly (providers.checks).
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from config.keys import derived_field_encryption_key


class SecretDecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key."""


def development_key() -> bytes:
    return derived_field_encryption_key(settings.SECRET_KEY).encode()


def configured_keys() -> list[bytes]:
    keys = [key.encode() for key in settings.FIELD_ENCRYPTION_KEYS]
    return keys or [development_key()]


@lru_cache(maxsize=8)
def _fernet_for(keys: tuple[bytes, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def fernet() -> MultiFernet:
    return _fernet_for(tuple(configured_keys()))


def encrypt(plain: str) -> str:
    return fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretDecryptionError("A stored provider secret cannot be decrypted with the configured keys.") from None


def rotate(token: str) -> str:
    """Re-encrypt a token with the newest key (MultiFernet.rotate)."""
    if not token:
        return ""
    return fernet().rotate(token.encode()).decode()

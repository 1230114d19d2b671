"""The environment of a production-like process on this machine (the e2e stack, the chaos harness, the benchmarks).

DEBUG off, with keys made for this run (production refuses the repository's: config/keys.py) and plain HTTP on
127.0.0.1 (no HTTPS redirect, cookies sent without TLS). Every process started by one run shares the same keys, so a
payment link made by one is read by another.
"""

import secrets

from cryptography.fernet import Fernet

RUN_KEYS = {"SECRET_KEY": secrets.token_urlsafe(50), "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode()}


def local_production_env() -> dict[str, str]:
    return {"DEBUG": "false", **RUN_KEYS, "SECURE_SSL_REDIRECT": "false", "SECURE_COOKIES": "false"}

"""The keys production must bring itself: SECRET_KEY signs payment links, FIELD_ENCRYPTION_KEYS encrypt the stored
Stripe secrets. A value committed to this repository is public, so production refuses it (settings, at start-up) and
`check --deploy` reports it (providers.checks); only development and the tests (DEBUG on) may use them.

No Django imports: config.settings uses this module while it is being imported.
"""

import base64
import hashlib

# Signs the demo's and the tests' payment links. Public: anyone can forge a link with it.
DEVELOPMENT_SECRET_KEY = "dev-insecure-secret-key-change-me-0123456789abcdefghijklmnop"
COMMITTED_SECRET_KEYS = frozenset({
    DEVELOPMENT_SECRET_KEY,
    "change-me-in-production-0123456789abcdefghijklmnopqrstuvwxyz",  # docker-compose.yml's default until it was required
})


def derived_field_encryption_key(secret_key: str) -> str:
    """The key that encrypts provider secrets when FIELD_ENCRYPTION_KEYS is unset (development only)."""
    digest = hashlib.sha256(("field-encryption:" + secret_key).encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


COMMITTED_FIELD_ENCRYPTION_KEYS = frozenset({
    "c2VjcmV0LWZvci10ZXN0cy1vbmx5LW5vdC1yZWFsLWs=",  # the test suite's (scripts/run_tests.py)
    derived_field_encryption_key(DEVELOPMENT_SECRET_KEY),  # what development uses without FIELD_ENCRYPTION_KEYS
})


def secret_key_problem(secret_key: str) -> str:
    if not secret_key:
        return "SECRET_KEY is not set."
    if secret_key in COMMITTED_SECRET_KEYS:
        return "SECRET_KEY is a development value committed to the repository: anyone could forge payment links with it."
    return ""


def field_encryption_keys_problem(keys: list[str]) -> str:
    if not keys:
        return "FIELD_ENCRYPTION_KEYS is not set: provider secrets would be encrypted with a key derived from SECRET_KEY."
    if any(key in COMMITTED_FIELD_ENCRYPTION_KEYS for key in keys):
        return ("FIELD_ENCRYPTION_KEYS contains a development key committed to the repository: anyone with a database "
                "dump could decrypt the stored Stripe secrets.")
    return ""


def production_key_problems(secret_key: str, field_encryption_keys: list[str]) -> list[str]:
    return [problem for problem in (secret_key_problem(secret_key), field_encryption_keys_problem(field_encryption_keys)) if problem]

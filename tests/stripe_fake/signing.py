"""Sign webhook payloads exactly as Stripe does: t=<ts>,v1=HMAC_SHA256(secret, "<ts>.<payload>")."""

import hashlib
import hmac
import json
import time


def sign_payload(payload: bytes, secret: str, timestamp: int | None = None, extra_secrets=()) -> str:
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    signed = f"{timestamp}.".encode() + payload
    signatures = [hmac.new(key.encode(), signed, hashlib.sha256).hexdigest() for key in (secret, *extra_secrets)]
    return ",".join([f"t={timestamp}", *(f"v1={signature}" for signature in signatures)])


def event_payload(event: dict) -> bytes:
    return json.dumps(event).encode()

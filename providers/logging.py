"""A logging filter that masks anything shaped like a Stripe secret before it is written."""

import logging
import re

SECRET_PATTERN = re.compile(r"\b(sk|rk)_(test|live)_[A-Za-z0-9]+|\bwhsec_[A-Za-z0-9]+")


def redact(text: str) -> str:
    return SECRET_PATTERN.sub(lambda m: m.group(0).split("_")[0] + "_***", text)


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True

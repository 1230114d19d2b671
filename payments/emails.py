"""Emails to customers: rendered in the account's language with the entity's branding, and outbox rows sent once.

Receipts, reminders and payment links all go through `customer_email`; receipts and reminders keep an outbox row
per email and send it with `send_once`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from smtplib import SMTPException

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone, translation

from billing.ledger.sql import durable_atomic

logger = logging.getLogger(__name__)


def customer_email(*, account, entity, template: str, context: dict, to: str | None = None, attachments=(),
                   message_id: str | None = None) -> EmailMultiAlternatives:
    """`{template}_subject.txt`, `{template}.txt` and `{template}.html` rendered in the account's language."""
    with translation.override(account.language or settings.LANGUAGE_CODE):
        context = {"account": account, "entity": entity, **context}
        subject = " ".join(render_to_string(f"{template}_subject.txt", context).split())
        text = render_to_string(f"{template}.txt", context)
        html = render_to_string(f"{template}.html", context)
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [to or account.email],
                                     reply_to=[entity.support_email] if entity.support_email else None,
                                     headers={"Message-ID": message_id} if message_id else None)
    message.attach_alternative(html, "text/html")
    for filename, content, mimetype in attachments:
        message.attach(filename, content, mimetype)
    return message


def stable_message_id(kind: str, key: str) -> str:
    """The same Message-ID for every try of one email: should a crash ever send it twice (after the mail server
    took it and before the outbox row was marked), mail systems see one message."""
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "localhost"
    return f"<{kind}.{key}@{domain}>"


class NotToBeSent(Exception):
    """Raised by a message builder when the email must not go out after all (e.g. the invoice was paid meanwhile)."""


def send_once(outbox_model, pk: int, build_message: Callable) -> bool:
    """Send the outbox row's email unless it was sent. Returns True when this call sent it.

    The row is locked (SKIP LOCKED: a second worker at the same moment does nothing) while the message is built
    and sent, and marked sent in the same durable transaction. A failure to send, or a builder's NotToBeSent, is
    recorded on the row (attempts, last error) and left for the next try; nothing raises for it.
    """
    with durable_atomic():
        row = outbox_model.objects.select_for_update(skip_locked=True).filter(pk=pk, sent_at__isnull=True).first()
        if row is None or not row.recipient:
            return False
        try:
            build_message(row).send()
        except (SMTPException, OSError, NotToBeSent) as exc:
            logger.warning("%s %s could not be sent: %s", outbox_model.__name__, pk, exc)
            outbox_model.objects.filter(pk=pk).update(attempts=F("attempts") + 1, last_error=str(exc)[:2000])
            return False
        outbox_model.objects.filter(pk=pk).update(sent_at=timezone.now(), attempts=F("attempts") + 1, last_error="")
    return True

"""The audit trail (SPEC §13): who did what to money, written by the service that did it, in its transaction.

A service calls `record_audit(...)` beside its change; when the change rolls back, so does the entry. Only what a
clerk needs to answer "who moved this and from what to what" is stored: never a secret, not even encrypted.
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.models import AnonymousUser
from django.db import models

from billing.constants import AuditAction
from billing.models import AuditEntry, Balance, Invoice


def _user_or_system(user):
    """A request's user, or None (the system) for tasks, webhooks and anonymous callers."""
    if user is None or isinstance(user, AnonymousUser) or not getattr(user, "pk", None):
        return None
    return user


def audit_entry(action: AuditAction | str, *, obj: models.Model, user=None, invoice: Invoice | None = None,
                balance: Balance | None = None, before: Decimal | None = None, after: Decimal | None = None,
                currency: str = "", detail: str = "", label: str | None = None) -> AuditEntry:
    """The entry, unsaved (for `record_audits`, which writes many in one statement)."""
    if invoice is None and isinstance(obj, Invoice):
        invoice = obj
    if balance is None and isinstance(obj, Balance):
        balance = obj
    return AuditEntry(
        user=_user_or_system(user), action=AuditAction(action), object_type=obj._meta.label, object_id=str(obj.pk),
        object_label=(label if label is not None else str(obj))[:255], invoice_id=invoice.pk if invoice else None,
        balance_id=balance.pk if balance else None, amount_before=before, amount_after=after, currency=currency or "",
        detail=detail[:500],
    )


def record_audit(action: AuditAction | str, *, obj: models.Model, user=None, invoice: Invoice | None = None,
                 balance: Balance | None = None, before: Decimal | None = None, after: Decimal | None = None,
                 currency: str = "", detail: str = "", label: str | None = None) -> AuditEntry:
    """Write one entry in the caller's transaction. `user` None (or anonymous) means the system."""
    entry = audit_entry(action, obj=obj, user=user, invoice=invoice, balance=balance, before=before, after=after,
                        currency=currency, detail=detail, label=label)
    entry.save(force_insert=True)
    return entry


def record_audits(entries: list[AuditEntry]) -> None:
    """Write many entries in one statement (a replay of a thousand events)."""
    AuditEntry.objects.bulk_create(entries, batch_size=1000)

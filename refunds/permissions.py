"""The "Finance" group: may refund, view the books and payouts, resolve payment entries and answer disputes.

Created by a data migration, and ensured after every migrate/flush (post_migrate), so a database that was
flushed (tests, a fresh environment) still has it with exactly these permissions.
"""

FINANCE_PERMISSIONS = [
    ("refunds", "add_refundrequest"), ("refunds", "view_refundrequest"),
    ("billing", "view_balance"), ("billing", "change_balance"), ("billing", "view_invoice"), ("billing", "view_account"),
    ("billing", "view_paymententry"), ("billing", "change_paymententry"), ("billing", "view_businessentity"),
    ("billing", "view_auditentry"),  # the audit trail (SPEC §13), read-only
    ("webhooks", "view_webhookevent"), ("receipts", "view_receipt"), ("reminders", "view_reminder"),
    # Payouts: what reached the bank, line by line, the charges and Stripe's fees behind it (SPEC §12).
    ("payments", "view_payout"), ("payments", "view_payoutline"), ("payments", "view_stripefee"),
    ("payments", "view_paymenttransaction"),
    # Disputes: seen, and answered from the admin (accept, or submit evidence) (SPEC §14).
    ("payments", "view_dispute"), ("payments", "change_dispute"),
]


def ensure_finance_group(using: str = "default", **kwargs) -> None:
    from django.contrib.auth.models import Group, Permission

    group, _ = Group.objects.using(using).get_or_create(name="Finance")
    for app_label, codename in FINANCE_PERMISSIONS:
        permission = Permission.objects.using(using).filter(content_type__app_label=app_label, codename=codename).first()
        if permission:
            group.permissions.add(permission)

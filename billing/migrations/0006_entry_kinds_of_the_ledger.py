from django.db import migrations


def name_entry_kinds(apps, schema_editor):
    """Entries written as kind `other` before the ledger named their kinds: a charge in an amount or currency the books
    could not take, and a refund of money on no account (its refund id carried an `:unbooked` suffix)."""
    PaymentEntry = apps.get_model("billing", "PaymentEntry")
    PaymentEntry.objects.filter(kind="other", stripe_refund_id__isnull=True, amount__lte=0).update(kind="unusable_amount")
    for entry in PaymentEntry.objects.filter(kind="other", stripe_refund_id__endswith=":unbooked"):
        entry.kind, entry.stripe_refund_id = "refund_of_unbooked", entry.stripe_refund_id.removesuffix(":unbooked")
        entry.save(update_fields=["kind", "stripe_refund_id"])


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0005_ledger_disputes_and_entry_movements"),
    ]

    operations = [
        migrations.RunPython(name_entry_kinds, migrations.RunPython.noop),
    ]

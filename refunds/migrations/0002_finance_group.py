"""The "Finance" group: may refund, view the books and resolve payment entries."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

FINANCE_PERMISSIONS = [
    ("refunds", "add_refundrequest"), ("refunds", "view_refundrequest"),
    ("billing", "view_balance"), ("billing", "change_balance"), ("billing", "view_invoice"), ("billing", "view_account"),
    ("billing", "view_paymententry"), ("billing", "change_paymententry"), ("billing", "view_businessentity"),
    ("webhooks", "view_webhookevent"),
]


def create_finance_group(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="Finance")
    for app_label, codename in FINANCE_PERMISSIONS:
        permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
        if permission:
            group.permissions.add(permission)


class Migration(migrations.Migration):
    dependencies = [
        ("refunds", "0001_initial"),
        ("billing", "0002_initial"),
        ("webhooks", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(create_finance_group, migrations.RunPython.noop)]

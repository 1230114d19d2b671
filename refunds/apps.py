from django.apps import AppConfig
from django.db.models.signals import post_migrate


class RefundsConfig(AppConfig):
    default_auto_field = 'django.db.models.BigAutoField'
    name = 'refunds'

    def ready(self):
        from refunds.permissions import ensure_finance_group

        # Refunds is the last project app: every model's permissions exist when this runs.
        post_migrate.connect(ensure_finance_group, sender=self, dispatch_uid="refunds.ensure_finance_group")

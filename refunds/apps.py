from django.apps import AppConfig
from django.db.models.signals import post_migrate


class RefundsConfig(AppConfig):
    default_auto_field = 'django.db.models.BigAutoField'
    name = 'refunds'

    def ready(self):
        from billing.ledger import hooks
        from refunds import book_checks  # noqa: F401 - registers its checks of the books
        from refunds.permissions import ensure_finance_group
        from refunds.selectors import plan_for_ledger

        hooks.register_refund_planner(plan_for_ledger)  # the ledger books refunds kept beside an entry with it

        # Refunds is the last project app: every model's permissions exist when this runs.
        post_migrate.connect(ensure_finance_group, sender=self, dispatch_uid="refunds.ensure_finance_group")

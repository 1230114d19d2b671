from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    default_auto_field = 'django.db.models.BigAutoField'
    name = 'payments'

    def ready(self):
        from billing.ledger import hooks
        from payments import book_checks, signals  # noqa: F401 - registers its checks of the books and signal handlers
        from payments.services.transactions import lock_transaction

        hooks.register_charge_lock(lock_transaction)  # the ledger's resolution of an entry locks its charge first

from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "providers"

    def ready(self):
        from billing.ledger import hooks
        from providers import checks, signals  # noqa: F401 - registers the system checks and signal handlers
        from providers.selectors import setting_id_serves_invoice

        hooks.register_scope(setting_id_serves_invoice)  # SPEC §7 Tenancy, for the ledger and check_books

from django.apps import AppConfig


class FinanceConfig(AppConfig):
    """The finance dashboard: reads every app's records (nothing writes here), so it sits at the top of the house."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "finance"

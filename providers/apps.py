from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "providers"

    def ready(self):
        from providers import checks, signals  # noqa: F401 - registers the system checks and signal handlers

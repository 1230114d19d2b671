from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    default_auto_field = 'django.db.models.BigAutoField'
    name = 'payments'

    def ready(self):
        from payments import book_checks, signals  # noqa: F401 - registers its checks of the books and signal handlers

from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The offline demo's data loader (`manage.py load_demo_data`): at the top of the house, it may import every app."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "demo"

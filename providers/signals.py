from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from providers.models import ProviderSetting
from providers.selectors import forget_cached_settings


@receiver([post_save, post_delete], sender=ProviderSetting)
def clear_webhook_setting_cache(**kwargs):
    forget_cached_settings()

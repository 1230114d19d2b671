"""Signals of provider settings: caches to forget when a setting changes, and `setting_mode_changed`, which the
payments app answers (its saved instruments belong to one mode's Stripe data) without providers writing its models."""

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import Signal, receiver

from providers.models import ProviderSetting
from providers.selectors import forget_cached_settings

# Sent with `setting` when a save switches it between test and live mode.
setting_mode_changed = Signal()


@receiver([post_save, post_delete], sender=ProviderSetting)
def clear_webhook_setting_cache(**kwargs):
    forget_cached_settings()


@receiver(m2m_changed, sender=ProviderSetting.business_entities.through)
def clear_serving_cache(**kwargs):
    forget_cached_settings()

"""What payments does when other apps' objects change."""

from django.dispatch import receiver

from providers.signals import setting_mode_changed


@receiver(setting_mode_changed)
def deactivate_instruments_of_other_mode(sender, setting, **kwargs):
    """Saved methods belong to one mode's Stripe data; they cannot be charged in the other."""
    from payments.services.instruments import deactivate_instruments_of_setting

    deactivate_instruments_of_setting(setting)

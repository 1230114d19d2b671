"""System checks: encryption keys configured and valid, no development key deployed; active settings that cannot
verify webhooks."""

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import Error, Warning, register
from django.db import DatabaseError

from config.keys import field_encryption_keys_problem, secret_key_problem


@register()
def encryption_keys_check(app_configs, **kwargs):
    keys = settings.FIELD_ENCRYPTION_KEYS
    if not keys:
        return [Warning(
            "FIELD_ENCRYPTION_KEYS is not set: provider secrets are encrypted with a development key derived from SECRET_KEY.",
            hint="Generate one with `python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'` "
                 "and set FIELD_ENCRYPTION_KEYS.",
            id="providers.W001")]
    problems = []
    for index, key in enumerate(keys):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            problems.append(Error(f"FIELD_ENCRYPTION_KEYS entry {index + 1} is not a valid Fernet key.", id="providers.E001"))
    return problems


@register(deploy=True)
def production_keys_check(app_configs, **kwargs):
    """Production refuses these at start-up (config.settings); a development process (DEBUG on) that is about to be
    deployed hears it here."""
    problems = []
    if message := secret_key_problem(settings.SECRET_KEY):
        problems.append(Error(message, hint="Give SECRET_KEY a long random value of your own.", id="providers.E002"))
    if message := field_encryption_keys_problem(settings.FIELD_ENCRYPTION_KEYS):
        problems.append(Error(message, hint="Generate a key (README, Configuration) and set FIELD_ENCRYPTION_KEYS.", id="providers.E003"))
    return problems


@register(deploy=True)
def webhook_secrets_check(app_configs, **kwargs):
    from providers.models import ProviderSetting

    try:
        names = list(ProviderSetting.objects.filter(active=True, webhook_secret_encrypted="").values_list("name", flat=True))
    except DatabaseError:  # not migrated yet, or no database: nothing to say
        return []
    if not names:
        return []
    return [Warning(f"Active Stripe settings without a webhook secret (their endpoint answers 500): {', '.join(names)}.",
                    id="providers.W002")]

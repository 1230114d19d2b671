"""System checks of the webhook inbox's settings."""

from django.conf import settings
from django.core.checks import Error, register

# Stripe resends an event for up to 30 days (and `fetch_missed_events` fetches that far back): a processed event must
# stay in the inbox longer, or a late redelivery would be taken for a new event and processed again.
STRIPE_REPLAY_DAYS = 30


@register()
def retention_check(app_configs, **kwargs):
    days = settings.WEBHOOK_RETENTION_DAYS
    if days <= STRIPE_REPLAY_DAYS:
        return [Error(f"WEBHOOK_RETENTION_DAYS is {days}: it must be more than {STRIPE_REPLAY_DAYS} (Stripe replays events for "
                      f"{STRIPE_REPLAY_DAYS} days; a purged event would be processed again).",
                      hint="Leave it unset (45 days) or set a larger value.", id="webhooks.E001")]
    return []

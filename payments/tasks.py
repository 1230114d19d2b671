"""Celery tasks of payments: thin, they load ids and call services."""

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from payments.models import Payout
from payments.services import payouts
from payments.services.checkout import cancel_pending_replaced_payment_intents
from payments.services.collection import collect_due_invoices as collect
from providers.models import ProviderSetting
from providers.stripe import gateway

logger = logging.getLogger(__name__)

# The daily catch-up looks at payouts arriving in the last two weeks: Stripe itemises a payout within days, and a
# mismatched payout is matched again while finance may still be correcting the books.
PAYOUT_CATCH_UP_DAYS = 14


@shared_task(name="payments.tasks.collect_due_invoices")
def collect_due_invoices():
    return collect()


# Listing 10,000 balance transactions is 100 Stripe calls: far more time than a webhook batch may take.
@shared_task(bind=True, name="payments.tasks.reconcile_payout", max_retries=6, acks_late=True, soft_time_limit=900, time_limit=960)
def reconcile_payout(self, setting_id: int, payout_id: str):
    setting = ProviderSetting.objects.filter(pk=setting_id).first()
    if setting is None:
        return None
    try:
        return payouts.fetch_and_reconcile(setting, payout_id).status
    except gateway.StripeUnavailable as exc:  # Stripe down or busy: try again later, the payout stays pending
        raise self.retry(exc=exc, countdown=min(60 * 2 ** self.request.retries, 3600))
    except (gateway.StripeGatewayError, payouts.PayoutError) as exc:
        logger.error("Payout %s of setting %s cannot be reconciled: %s", payout_id, setting_id, exc)
        payout = Payout.objects.filter(provider_setting=setting, stripe_payout_id=payout_id).first()
        if payout is not None:
            payouts.record_reconciliation_error(payout, str(exc))
        return None


@shared_task(name="payments.tasks.reconcile_recent_payouts", soft_time_limit=3000, time_limit=3060)
def reconcile_recent_payouts():
    since = timezone.localdate() - timedelta(days=PAYOUT_CATCH_UP_DAYS)
    return len(payouts.reconcile_payouts_since(since))


@shared_task(name="payments.tasks.cancel_replaced_payment_intents")
def cancel_replaced_payment_intents():
    return cancel_pending_replaced_payment_intents()

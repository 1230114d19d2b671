"""Rate limits of the payment page's doors that create Stripe objects (PaymentIntents, SetupIntents): per payment
link and per client address, counted by django-ratelimit in the cache (Redis when REDIS_URL is set, so every web
process shares the counts). The review created 30 PaymentIntents in 30 POSTs with one link."""

import logging
from functools import wraps

from django.conf import settings
from django.http import JsonResponse
from django.utils.translation import gettext as _
from django_ratelimit.core import is_ratelimited
from redis.exceptions import RedisError

from config.network import client_address

logger = logging.getLogger(__name__)

LIMITS = (
    ("link", lambda group, request: request.resolver_match.kwargs.get("token", ""),
     lambda group, request: settings.PAYMENT_START_RATE_PER_LINK),
    ("address", lambda group, request: client_address(request),
     lambda group, request: settings.PAYMENT_START_RATE_PER_ADDRESS),
)


def too_many_starts(request, door: str) -> bool:
    """Counts this request against both limits; True when either is exceeded."""
    try:
        exceeded = [is_ratelimited(request, group=f"payments.{door}.per-{name}", key=key, rate=rate, increment=True)
                    for name, key, rate in LIMITS]
    except (RedisError, OSError) as exc:
        # A customer paying an invoice matters more than the throttle: Redis down lets the request through, loudly.
        logger.error("Payment page rate limits not checked, the cache is unavailable: %s", exc)
        return False
    return any(exceeded)


def limited_per_link_and_address(view):
    """429 with a sentence, as JSON: the page's script shows `error` (payments/static/payments/pay.js)."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if too_many_starts(request, view.__name__):
            return JsonResponse({"error": _("Too many payment attempts. Please wait a few minutes and try again.")}, status=429)
        return view(request, *args, **kwargs)

    return wrapped

"""POST /webhooks/stripe/<webhook_id>/: verify, store, answer. No Stripe call, one short transaction."""

import logging

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from providers.crypto import SecretDecryptionError
from providers.selectors import setting_by_webhook_id
from webhooks.services import InvalidEvent, SignatureError, parse_event, signing_key_for, store_event_with_reconnect, verify_signature_with

logger = logging.getLogger(__name__)


# The two answers of nearly every request, encoded once.
STORED = b'{"status": 200, "reason": "stored", "duplicate": false}'
DUPLICATE = b'{"status": 200, "reason": "duplicate", "duplicate": true}'


def answer(status: int, reason: str, **extra) -> JsonResponse:
    return JsonResponse({"status": status, "reason": reason, **extra}, status=status)


@csrf_exempt
@require_POST
def stripe_webhook(request, webhook_id):
    max_bytes = settings.WEBHOOK_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return answer(400, "invalid Content-Length")
    if declared > max_bytes:
        return answer(413, f"body larger than {max_bytes} bytes")
    try:
        setting = setting_by_webhook_id(webhook_id)
        if setting is None:
            return answer(404, "unknown webhook endpoint")
        try:
            key = signing_key_for(setting)
        except SecretDecryptionError:
            key = None
        if key is None:
            # Fail closed, loudly: an unverifiable event must never be accepted (and Stripe retries).
            logger.error("Webhook endpoint of setting %s has no usable webhook secret.", setting.pk)
            return answer(500, "webhook secret not configured for this endpoint")
        body = request.body
        if len(body) > max_bytes:
            return answer(413, f"body larger than {max_bytes} bytes")
        try:
            verify_signature_with(body, request.META.get("HTTP_STRIPE_SIGNATURE"), key,
                                  tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS)
            event = parse_event(body, setting=setting)
        except (SignatureError, InvalidEvent) as exc:
            return answer(400, str(exc))
        event_id, created = store_event_with_reconnect(setting, event, body)
    except DatabaseError:
        logger.warning("Database unavailable while receiving a webhook; answering 503 so Stripe retries.")
        return answer(503, "database unavailable, retry later")
    return HttpResponse(STORED if created else DUPLICATE, content_type="application/json")

"""POST /webhooks/stripe/<webhook_id>/: verify, store, answer. No Stripe call, one short transaction."""

import logging

from django.conf import settings
from django.db import DatabaseError
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from providers.crypto import SecretDecryptionError
from providers.selectors import setting_by_webhook_id
from webhooks.services import InvalidEvent, SignatureError, parse_event, store_event, verify_signature

logger = logging.getLogger(__name__)


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
            secret = setting.webhook_secret
        except SecretDecryptionError:
            secret = ""
        if not secret:
            # Fail closed, loudly: an unverifiable event must never be accepted (and Stripe retries).
            logger.error("Webhook endpoint of setting %s has no usable webhook secret.", setting.pk)
            return answer(500, "webhook secret not configured for this endpoint")
        body = request.body
        if len(body) > max_bytes:
            return answer(413, f"body larger than {max_bytes} bytes")
        try:
            verify_signature(body, request.headers.get("Stripe-Signature"), secret,
                             tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS)
            event = parse_event(body, setting=setting)
        except (SignatureError, InvalidEvent) as exc:
            return answer(400, str(exc))
        event_id, created = store_event(setting, event, raw_body=body)
    except DatabaseError:
        logger.warning("Database unavailable while receiving a webhook; answering 503 so Stripe retries.")
        return answer(503, "database unavailable, retry later")
    return answer(200, "stored" if created else "duplicate", duplicate=not created)

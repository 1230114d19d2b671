"""The customer's pages: pay an invoice (Stripe Payment Element, deferred intent), the return page, saving a method.

Card details never reach this server: the browser talks to Stripe.js; the server creates intents and
re-reads their outcome from Stripe.
"""

import json
import logging
import uuid
from functools import lru_cache, wraps
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from billing.models import BusinessEntity, Invoice
from billing.money import to_minor_units
from billing.selectors import invoice_with_open_amount
from payments.formatting import format_money
from payments.rendered_pages import page_html, scripts_read_the_csrf_cookie
from payments.services import checkout as checkout_service
from payments.services import offline
from payments.services.instruments import get_or_create_stripe_customer
from payments.throttling import limited_per_link_and_address
from payments.tokens import PAY, SAVE_METHOD, TokenError, read_token
from providers.crypto import SecretDecryptionError
from providers.stripe import gateway

logger = logging.getLogger(__name__)


@lru_cache(maxsize=8)
def csp_header(stripe_js_url: str, stripe_api_base: str) -> str:
    """Allow Stripe.js (and its frames and API) and nothing else third-party (plus local test doubles)."""
    script_sources = ["'self'", "https://js.stripe.com", "https://*.js.stripe.com"]
    js = urlsplit(stripe_js_url)
    extra_origin = f"{js.scheme}://{js.netloc}" if js.netloc and "stripe.com" not in js.netloc else ""
    if extra_origin:
        script_sources.append(extra_origin)
    connect = ["'self'", "https://api.stripe.com"] + ([extra_origin] if extra_origin else [])
    if stripe_api_base:
        connect.append(stripe_api_base)
    return "; ".join([
        "default-src 'self'", f"script-src {' '.join(script_sources)}",
        "frame-src https://js.stripe.com https://*.js.stripe.com https://hooks.stripe.com",
        f"connect-src {' '.join(connect)}", "img-src 'self' data: https://*.stripe.com", "style-src 'self' 'unsafe-inline'",
        "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
    ])


def content_security_policy(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        # Read per request (cached per value): the settings may differ between deployments and tests.
        response["Content-Security-Policy"] = csp_header(settings.STRIPE_JS_URL, settings.STRIPE_API_BASE)
        response["Referrer-Policy"] = "same-origin"
        response["Cache-Control"] = "no-store"
        return response

    return wrapped


def unavailable_while_secrets_unreadable(*, answer: str = "page"):
    """A stored Stripe secret that cannot be decrypted (its key was rotated away) is the operator's problem: the customer
    gets a polite 503 (a page, or JSON for the page's script), the log says which setting and what to do."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            try:
                return view(request, *args, **kwargs)
            except SecretDecryptionError as exc:
                logger.error("Customer payment page unavailable: %s", exc)
                message = _("Online payment is not available at the moment. Please try again later.")
                if answer == "json":
                    return JsonResponse({"error": message}, status=503)
                return message_page(request, _("Payment"), message, status=503)

        return wrapped

    return decorator


def message_page(request, title: str, message: str, status: int = 200, invoice=None, entity=None):
    entity = entity or (invoice.business_entity if invoice else None)
    return render(request, "payments/message.html", {"title": title, "message": message, "invoice": invoice, "entity": entity},
                  status=status)


def link_error_page(request, title: str, exc: TokenError, *, entity=None):
    """A tampered link: 400. An expired one: 410, in the branding of the entity it was for, saying whom to ask for a
    new one (the expired token still names its invoice; only the entity is read from it, nothing is done with it)."""
    if not exc.expired:
        return message_page(request, title, str(exc), status=400)
    if entity is None:
        entity = BusinessEntity.objects.filter(invoices__pk=exc.expired_id).first()
    if entity is None:
        return message_page(request, title, str(exc), status=410)
    if entity.support_email:
        message = _("This link has expired. Please ask %(name)s for a new one at %(email)s.") % {
            "name": entity.public_name, "email": entity.support_email}
    else:
        message = _("This link has expired. Please ask %(name)s for a new one.") % {"name": entity.public_name}
    return message_page(request, title, message, status=410, entity=entity)


def invoice_from_token(token: str, purpose: str = PAY) -> Invoice:
    """The token's invoice with its account, business entity and (as `known_open_amount`) its open amount."""
    invoice_id = read_token(token, purpose=purpose)
    found = invoice_with_open_amount(int(invoice_id)) if str(invoice_id).isdigit() else None
    if found is None:
        raise TokenError(_("This invoice no longer exists."))
    invoice, invoice.known_open_amount = found
    return invoice


@content_security_policy
@require_GET
@unavailable_while_secrets_unreadable(answer="page")
def pay(request, token):
    try:
        invoice = invoice_from_token(token)
    except TokenError as exc:
        return link_error_page(request, _("Payment link"), exc)
    try:
        checkout = checkout_service.checkout_for(invoice)
    except checkout_service.PaymentNotPossible as exc:
        return message_page(request, _("Invoice %(number)s") % {"number": invoice.number}, str(exc), invoice=invoice)
    language = get_language() or "en"
    entity = invoice.business_entity
    offline_enabled = offline.offline_demo_enabled(checkout.setting)
    # The offline demo's plain form posts the token; the page's script reads the cookie when it can (rendered_pages).
    csrf_in_page = offline_enabled or not scripts_read_the_csrf_cookie()
    # Every value the template reads (rendered_pages: a page is reused only while all of them are the same).
    facts = (language, token, request.scheme, request.get_host(), invoice.pk, invoice.number, checkout.amount,
             checkout.currency, entity.public_name, entity.logo_url, entity.support_email, checkout.setting.pk,
             checkout.setting.publishable_key, tuple(checkout.method_types), checkout.future_payments, offline_enabled,
             settings.STRIPE_JS_URL, csrf_in_page, settings.CSRF_COOKIE_NAME)

    def render_page(csrf_slot: str) -> str:
        config = {
            "publishableKey": checkout.setting.publishable_key,
            "amount": to_minor_units(checkout.amount, checkout.currency),
            "currency": checkout.currency.lower(),
            "paymentMethodTypes": checkout.method_types,
            "futurePayments": checkout.future_payments,
            "intentUrl": reverse("payments:create-intent", args=[token]),
            "returnUrl": request.build_absolute_uri(reverse("payments:return", args=[token])),
            "locale": language,
            "csrfCookieName": settings.CSRF_COOKIE_NAME,
        }
        offline_methods = offline.test_methods_for(checkout.method_types) if offline_enabled else []
        context = {"invoice": invoice, "entity": entity, "checkout": checkout, "config": config,
                   "offline_methods": offline_methods, "token": token, "csrf_token": csrf_slot if csrf_in_page else "",
                   "amount_display": format_money(checkout.amount, checkout.currency, language),
                   "stripe_js_url": settings.STRIPE_JS_URL, "future": checkout.future_payments}
        return render_to_string("payments/pay.html", context)

    return HttpResponse(page_html(request, facts, render_page))


@content_security_policy
@require_POST
@limited_per_link_and_address
@unavailable_while_secrets_unreadable(answer="json")
def create_intent(request, token):
    try:
        invoice = invoice_from_token(token)
        body = json.loads(request.body.decode("utf-8") or "{}")
        if not isinstance(body, dict):
            raise ValueError
        method_type = str(body.get("method_type") or "")
        save = bool(body.get("save_for_future"))
    except TokenError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    except (ValueError, UnicodeDecodeError):
        return JsonResponse({"error": _("The request could not be read. Please reload the page.")}, status=400)
    try:
        intent = checkout_service.create_payment_for_invoice(invoice, method_type=method_type, save_for_future=save)
    except checkout_service.PaymentNotPossible as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    except gateway.StripeGatewayError as exc:
        return JsonResponse({"error": str(exc)}, status=503 if exc.outcome_unknown else 400)
    return JsonResponse({"clientSecret": intent["client_secret"], "paymentIntentId": intent["payment_intent_id"]})


@content_security_policy
@require_POST
@unavailable_while_secrets_unreadable(answer="page")
def offline_test_payment(request, token):
    """The offline demo's stand-in for Stripe.js (payments/services/offline.py): refused outside that demo."""
    try:
        invoice = invoice_from_token(token)
        return_url = request.build_absolute_uri(reverse("payments:return", args=[token]))
        payment_intent_id = offline.pay_offline(invoice, method_key=request.POST.get("method", ""),
                                                save_for_future=bool(request.POST.get("save_for_future")), return_url=return_url)
    except TokenError as exc:
        return link_error_page(request, _("Payment link"), exc)
    except checkout_service.PaymentNotPossible as exc:
        return message_page(request, _("Payment"), str(exc), status=409, invoice=invoice)
    except gateway.StripeGatewayError as exc:
        return message_page(request, _("Payment"), str(exc), status=503 if exc.outcome_unknown else 400, invoice=invoice)
    return redirect(f"{return_url}?payment_intent={payment_intent_id}")


@content_security_policy
@require_GET
@unavailable_while_secrets_unreadable(answer="page")
def payment_return(request, token):
    try:
        invoice = invoice_from_token(token)
    except TokenError as exc:
        return link_error_page(request, _("Payment link"), exc)
    payment_intent_id = request.GET.get("payment_intent", "")
    if not payment_intent_id.startswith("pi_"):
        return message_page(request, _("Payment"), _("We could not find this payment."), status=400, invoice=invoice)
    try:
        outcome = checkout_service.payment_outcome(invoice, payment_intent_id, language=get_language() or "en")
    except checkout_service.PaymentNotPossible as exc:
        return message_page(request, _("Payment"), str(exc), status=400, invoice=invoice)
    receipt_url = f"{reverse('receipts:of-payment', args=[token])}?payment_intent={payment_intent_id}" \
        if outcome.state == "succeeded" else ""
    return render(request, "payments/result.html", {"invoice": invoice, "entity": invoice.business_entity, "outcome": outcome,
                                                    "retry_url": reverse("payments:pay", args=[token]), "receipt_url": receipt_url})


@content_security_policy
@require_GET
@unavailable_while_secrets_unreadable(answer="page")
def save_method(request, token):
    try:
        invoice = invoice_from_token(token, purpose=SAVE_METHOD)
        checkout = checkout_service.checkout_for(invoice) if invoice.status == "open" else None
        setting = checkout.setting if checkout else None
    except TokenError as exc:
        return link_error_page(request, _("Payment method"), exc)
    except checkout_service.PaymentNotPossible:
        setting = None
    if setting is None:
        from providers.selectors import NoProviderSetting, setting_for_invoice

        try:
            setting = setting_for_invoice(invoice)
        except NoProviderSetting:
            return message_page(request, _("Payment method"), _("Saving a payment method is not possible at the moment."),
                                invoice=invoice)
    if not setting.enable_future_payments:
        return message_page(request, _("Payment method"), _("Automatic payments are not offered."), invoice=invoice)
    methods = [m for m in setting.payment_method_types if m in ("card", "sepa_debit")]
    config = {"publishableKey": setting.publishable_key, "paymentMethodTypes": methods, "mode": "setup",
              "intentUrl": reverse("payments:create-setup-intent", args=[token]),
              "returnUrl": request.build_absolute_uri(reverse("payments:save-method", args=[token])), "locale": get_language() or "en"}
    saved = request.GET.get("redirect_status") == "succeeded"
    return render(request, "payments/save_method.html", {"invoice": invoice, "entity": invoice.business_entity, "config": config,
                                                         "stripe_js_url": settings.STRIPE_JS_URL, "saved": saved})


@content_security_policy
@require_POST
@limited_per_link_and_address
@unavailable_while_secrets_unreadable(answer="json")
def create_setup_intent(request, token):
    from providers.selectors import NoProviderSetting, setting_for_invoice

    try:
        invoice = invoice_from_token(token, purpose=SAVE_METHOD)
        setting = setting_for_invoice(invoice)
    except (TokenError, NoProviderSetting) as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    if not setting.enable_future_payments:
        return JsonResponse({"error": _("Automatic payments are not offered.")}, status=400)
    try:
        customer = get_or_create_stripe_customer(setting=setting, account=invoice.account)
        methods = [m for m in setting.payment_method_types if m in ("card", "sepa_debit")] or ["card"]
        intent = gateway.create_setup_intent(setting, customer=customer.stripe_customer_id, payment_method_types=methods,
                                             metadata={"account_id": invoice.account_id, "provider_setting_id": setting.pk},
                                             idempotency_key=f"seti-{invoice.account_id}-{setting.pk}-{uuid.uuid4().hex}")
    except gateway.StripeGatewayError as exc:
        return JsonResponse({"error": str(exc)}, status=503 if exc.outcome_unknown else 400)
    return JsonResponse({"clientSecret": intent["client_secret"]})

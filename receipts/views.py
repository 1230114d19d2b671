"""The customer's receipt downloads: from the payment's return page, and by the receipt's own signed link."""

from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from payments.tokens import PAY, RECEIPT, TokenError, make_token, read_token
from payments.views import content_security_policy, invoice_from_token, link_error_page, message_page
from receipts import selectors, services
from receipts.models import Receipt


@content_security_policy
@require_GET
def receipt_of_payment(request, token):
    """Linked from the return page (same pay token): the receipt of that PaymentIntent's confirmed charge, issued
    now if the books already confirmed it and the task has not run yet; else a page that looks again shortly."""
    try:
        invoice = invoice_from_token(token, PAY)
    except TokenError as exc:
        return link_error_page(request, _("Receipt"), exc)
    payment_intent_id = request.GET.get("payment_intent", "")
    charge = selectors.confirmed_charge_of_payment_intent(invoice=invoice, payment_intent_id=payment_intent_id) \
        if payment_intent_id.startswith("pi_") else None
    receipt = services.issue_payment_receipt(transaction_id=charge.pk) if charge else None
    if receipt is None:
        return render(request, "receipts/preparing.html", {"entity": invoice.business_entity, "invoice": invoice}, status=202)
    return redirect(reverse("receipts:download", args=[make_token(receipt.pk, purpose=RECEIPT)]))


@content_security_policy
@require_GET
def download(request, token):
    try:
        receipt = Receipt.objects.select_related("business_entity", "invoice", "account").filter(
            pk=read_token(token, purpose=RECEIPT)).first()
    except TokenError as exc:
        expired = Receipt.objects.select_related("business_entity").filter(pk=exc.expired_id).first() if exc.expired else None
        if expired is not None:
            return link_error_page(request, _("Receipt"), exc, entity=expired.business_entity)
        return message_page(request, _("Receipt"), str(exc), status=400)
    if receipt is None:
        return message_page(request, _("Receipt"), _("This receipt does not exist."), status=404)
    return pdf_response(receipt)


def pdf_response(receipt: Receipt) -> HttpResponse:
    response = HttpResponse(services.receipt_pdf(receipt), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{services.receipt_filename(receipt)}"'
    response["Cache-Control"] = "private, no-store"
    return response

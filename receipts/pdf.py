"""Receipts and invoices as PDFs: the Django templates receipts/receipt.html and receipts/invoice.html in the customer's
language, rendered by WeasyPrint.

WeasyPrint fetches what the HTML links to; here only the entity's logo, and only over https (or a data: URL),
without redirects and with a short timeout: a receipt never waits on, or reaches into, anything else (file:,
the local network by plain http). A logo that cannot be fetched is left out (WeasyPrint logs it).
"""

from __future__ import annotations

from django.template.loader import render_to_string
from django.utils import translation

LOGO_TIMEOUT_SECONDS = 5


def logo_only_fetcher():
    from weasyprint.urls import URLFetcher

    return URLFetcher(timeout=LOGO_TIMEOUT_SECONDS, allowed_protocols={"https", "data"}, allow_redirects=False)


def receipt_html(receipt) -> str:
    with translation.override(receipt.language):
        return render_to_string(f"receipts/{receipt.kind}.html", {"receipt": receipt, "entity": receipt.business_entity,
                                                                  "invoice": receipt.invoice})


def render_receipt_pdf(receipt) -> bytes:
    from weasyprint import HTML

    document = HTML(string=receipt_html(receipt), url_fetcher=logo_only_fetcher())
    return document.write_pdf()


def invoice_html(invoice) -> str:
    account = invoice.account
    with translation.override(account.language or "en"):
        return render_to_string("receipts/invoice.html", {
            "invoice": invoice, "account": account, "entity": invoice.business_entity, "language": account.language or "en",
            "issued_on": invoice.finalized_at or invoice.created_at})


def render_invoice_pdf(invoice) -> bytes:
    """The invoice as a PDF (e.g. the evidence of a dispute), from the Django template receipts/invoice.html."""
    from weasyprint import HTML

    return HTML(string=invoice_html(invoice), url_fetcher=logo_only_fetcher()).write_pdf()

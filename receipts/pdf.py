"""A receipt as a PDF: the Django template receipts/receipt.html in the receipt's language, rendered by WeasyPrint.

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

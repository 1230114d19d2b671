"""A receipt as a PDF: the Django template receipts/receipt.html in the receipt's language, rendered by WeasyPrint.

WeasyPrint fetches what the HTML links to; here only the entity's logo, and only over https (or a data: URL),
with a short timeout: a receipt never waits on, or reaches into, anything else (file:, the local network by
plain http).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from django.template.loader import render_to_string
from django.utils import translation

logger = logging.getLogger(__name__)

LOGO_TIMEOUT_SECONDS = 5


def _fetch_logo_only(url: str, timeout: int = LOGO_TIMEOUT_SECONDS, ssl_context=None):
    from weasyprint.urls import default_url_fetcher

    if urlsplit(url).scheme not in ("https", "data"):
        raise ValueError(f"Receipts load no {urlsplit(url).scheme or 'relative'} URLs")  # WeasyPrint logs it and skips the image
    return default_url_fetcher(url, timeout=min(timeout, LOGO_TIMEOUT_SECONDS), ssl_context=ssl_context)


def receipt_html(receipt) -> str:
    with translation.override(receipt.language):
        return render_to_string(f"receipts/{receipt.kind}.html", {"receipt": receipt, "entity": receipt.business_entity,
                                                                  "invoice": receipt.invoice})


def render_receipt_pdf(receipt) -> bytes:
    from weasyprint import HTML

    document = HTML(string=receipt_html(receipt), url_fetcher=_fetch_logo_only)
    return document.write_pdf()

import io

import pytest
from pypdf import PdfReader

from tests.webhooks.conftest import deliver_all, invoice, pay, setting  # noqa: F401 - the webhook tests' fixtures


def pdf_text(pdf: bytes) -> str:
    """The text a reader of the PDF sees (extracted with pypdf), whitespace normalised."""
    reader = PdfReader(io.BytesIO(pdf))
    return " ".join(" ".join(page.extract_text() or "" for page in reader.pages).split())


@pytest.fixture(autouse=True)
def locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

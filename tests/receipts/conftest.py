import io

import pytest
from pypdf import PdfReader


def pdf_text(pdf: bytes) -> str:
    """The text a reader of the PDF sees (extracted with pypdf), whitespace normalised."""
    reader = PdfReader(io.BytesIO(pdf))
    return " ".join(" ".join(page.extract_text() or "" for page in reader.pages).split())


@pytest.fixture(autouse=True)
def locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture(autouse=True)
def celery_join_guard_restored():
    """Celery guards eager tasks with a process-global flag that it sets and restores around each one; eager tasks
    running at once on several threads (the concurrency tests here) can leave it set, and a later `result.get()` in
    this process (tests/foundation/test_celery_worker.py) would then refuse to wait. Put it back after each test."""
    from celery._state import _set_task_join_will_block, task_join_will_block

    before = task_join_will_block()
    yield
    _set_task_join_will_block(before)

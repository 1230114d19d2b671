"""The payment page's HTML, rendered once per process for each distinct set of facts it shows.

Measured (bench/page.py, profile in the issue note): of the page's server time, rendering the template (with its
translations, `{% url %}`/`{% static %}` tags and two reversed URLs) was a third, as much as the database round trip
that reads the invoice and its open amount. The same invoice's page is opened again and again (a customer reloads,
comes back from a bank redirect, retries a declined card), and what it shows changes only when one of its facts
changes. So the page is keyed by every value the template reads (invoice number, amount due, entity branding, the
Stripe setting's key and methods, language, token, host) and rendered again whenever one differs: a stale page is
impossible by construction, not by invalidation.

The CSRF token is the only per-request value. The page's script reads it from Django's CSRF cookie (Django's
documented way for scripts; payments/static/payments/pay.js), so the page carries none: masking a fresh token into every
page (64 random characters) and sending the cookie again was a fifth of what the page costs beyond the bare
template (bench/page.py). Where a token must be in the HTML (the offline demo's plain form, or a deployment whose
CSRF cookie scripts cannot read), the page is rendered with a slot that each request fills with its own token.

Per process (no pickling, no network), bounded (least recently used pages go first), thread-safe (the web server may
run threads).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from django.conf import settings
from django.middleware.csrf import get_token

# Rendered where the CSRF token goes; replaced per request. Cannot occur in what the template escapes and prints.
CSRF_SLOT = "\x00csrf-slot\x00"
MAX_PAGES = 2048

_pages: OrderedDict[Hashable, str] = OrderedDict()
_lock = threading.Lock()


def scripts_read_the_csrf_cookie() -> bool:
    """Whether a page's script can take the CSRF token from the cookie (else the page must carry it)."""
    return not (settings.CSRF_COOKIE_HTTPONLY or settings.CSRF_USE_SESSIONS)


def page_html(request, facts: Hashable, render: Callable[[str], str]) -> str:
    """The page for `facts`: rendered by `render(csrf_slot)` the first time, then reused; with this request's CSRF
    token in place of the slot, if the page has one. `facts` must hold every value the rendering reads except the
    CSRF token. Every page gets a CSRF cookie (the first visit sets it; later ones keep the browser's)."""
    with _lock:
        html = _pages.get(facts)
        if html is not None:
            _pages.move_to_end(facts)
    if html is None:
        html = render(CSRF_SLOT)
        with _lock:
            _pages[facts] = html
            while len(_pages) > MAX_PAGES:
                _pages.popitem(last=False)
    if CSRF_SLOT in html:
        return html.replace(CSRF_SLOT, get_token(request))
    if "CSRF_COOKIE" not in request.META:  # CsrfViewMiddleware found no valid cookie: set one for the page's script
        get_token(request)
    return html


def forget_rendered_pages() -> None:
    """Drop every remembered page (tests; a process that changes templates at run time)."""
    with _lock:
        _pages.clear()

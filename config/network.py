"""The client's address, for login throttling (django-axes) and the payment page's rate limits (django-ratelimit)."""

import ipaddress

from django.conf import settings


def client_address(request) -> str:
    """REMOTE_ADDR; behind a proxy (BEHIND_PROXY) the address the proxy appended last to CLIENT_ADDRESS_HEADER.

    Only the last entry is the proxy's own word: a client can send the header itself and prepend anything. Without
    BEHIND_PROXY the header is never read, or anyone could pick a fresh address for every request.
    """
    if settings.BEHIND_PROXY:
        header = "HTTP_" + settings.CLIENT_ADDRESS_HEADER.upper().replace("-", "_")
        forwarded = request.META.get(header, "").split(",")[-1].strip()
        try:
            return str(ipaddress.ip_address(forwarded))
        except ValueError:
            pass  # no or a malformed header: the proxy's own address, one bucket for all its clients
    return request.META.get("REMOTE_ADDR") or "0.0.0.0"  # noqa: S104 - a key, never bound to

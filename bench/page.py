"""Payment page: server time to render /pay/<token>/ against a bare template of the same size; page weight."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from bench.common import ROOT


def run(env: dict, *, quick: bool = False) -> dict:
    import django

    os.environ.update(env)
    django.setup()
    from django.template import engines
    from django.test import Client

    from payments.tokens import make_token
    from tests.factories import InvoiceFactory, ProviderSettingFactory

    setting = ProviderSettingFactory(name=f"bench-page-{time.time_ns()}", method_sepa_debit=True)
    setting.business_entities.set([])
    invoice = InvoiceFactory()
    client = Client()
    url = f"/pay/{make_token(invoice.pk)}/"
    html = client.get(url).content
    bare = engines["django"].from_string("<html><body>{{ body }}</body></html>")
    filler = "x" * len(html)
    rounds = 50 if quick else 500

    def timed(fn):
        samples = []
        for _ in range(rounds):
            began = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - began) * 1000)
        return statistics.median(samples)

    page_ms = timed(lambda: client.get(url))
    bare_ms = timed(lambda: bare.render({"body": filler}))
    static = ROOT / "payments" / "static" / "payments"
    weight = len(html) + sum(Path(static / name).stat().st_size for name in ("pay.js", "pay.css"))
    return {"page_ms": round(page_ms, 3), "bare_template_ms": round(bare_ms, 3), "ratio": round(page_ms / bare_ms, 1) if bare_ms else 0,
            "html_bytes": len(html), "page_weight_bytes": weight}


def check(result: dict) -> list[str]:
    return [] if result["html_bytes"] > 0 else ["page: empty payment page"]


def table(result: dict) -> str:
    return "\n".join([
        "Payment page (Django test client, full middleware stack, PostgreSQL)",
        f"/pay/<token>/ median {result['page_ms']} ms; bare template of the same size {result['bare_template_ms']} ms "
        f"(ratio {result['ratio']}; the page does the token, invoice, open amount and setting queries)",
        f"page weight without Stripe.js: {result['page_weight_bytes'] / 1024:.1f} KB (HTML {result['html_bytes']} B; target < 30 KB)",
    ])

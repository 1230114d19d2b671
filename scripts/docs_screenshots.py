"""Take README's screenshots from a running demo (`make run` in another terminal): the payment page and the
refund preview. Usage: .venv/bin/python scripts/docs_screenshots.py [http://127.0.0.1:8000]

Needs Debian's chromium (.ci/run installs it). Writes docs/payment-page.png and docs/refund-preview.png.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]


def main(base: str = "http://127.0.0.1:8000") -> int:
    links = subprocess.run([sys.executable, "manage.py", "shell", "-c",
                            "from billing.models import Invoice\nfrom payments.selectors import payment_link_for\n"
                            "for i in Invoice.objects.filter(number__in=['DEMO-1001', 'DEMO-1003']).order_by('number'):\n"
                            "    print(i.number, payment_link_for(i).split('/pay/', 1)[1])"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout
    tokens = dict(re.findall(r"^(DEMO-\d+) (\S+)$", links, re.MULTILINE))
    (ROOT / "docs").mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(f"{base}/pay/{tokens['DEMO-1003']}")
        page.screenshot(path=str(ROOT / "docs" / "payment-page.png"), full_page=True)

        # Pay DEMO-1001 offline, then refund part of it as the finance user.
        page.goto(f"{base}/pay/{tokens['DEMO-1001']}")
        if page.locator("#offline-submit").count():
            page.click("#offline-submit")
            page.wait_for_selector("text=succeeded")
        page.goto(f"{base}/admin/login/?next=/admin/billing/balance/%3Ftype__exact%3Dpayment")
        page.fill("#id_username", "finance")
        page.fill("#id_password", "finance")
        page.click("input[type=submit]")
        for _ in range(30):  # the payment is booked when localstripe's webhooks arrive (about a second)
            if page.locator("#result_list").count():
                break
            page.wait_for_timeout(500)
            page.reload()
        page.click("#result_list tbody tr th a")
        page.click("a.historylink[href$='/refund/']")
        page.fill("input[name=amount]", "19.00")
        page.click("input[name=preview]")
        page.wait_for_selector("text=Balances after the refund")
        page.screenshot(path=str(ROOT / "docs" / "refund-preview.png"), full_page=False)
        browser.close()
    print("docs/payment-page.png, docs/refund-preview.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

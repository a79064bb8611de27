"""Take the screenshots of the three pages in docs/ (shown in the README):

    .venv/bin/python -m tests.browser.screenshots

A fresh server with the starter rulesets, a customer with context, an interaction with live
alerts, a second revision deployed with its reason and opened as a draft in the rulesets
workbench, and a decision explained.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from tests.browser.conftest import CHROMIUM
from tests.support.live_server import KEYS, ROOT, LiveServer

DOCS = ROOT / "docs"


def main() -> None:
    with tempfile.TemporaryDirectory() as directory, LiveServer(Path(directory)) as server:
        url = server.url
        httpx.put(
            url + "/v1/customers/c-4711/context",
            json={
                "values": {
                    "customer": {
                        "tier": "gold",
                        "tenure_months": 64,
                        "churn_score": 0.86,
                        "plan": "premium",
                        "monthly_spend": 89,
                        "email": "dana.reyes@example.com",
                        "tags": ["autopay"],
                        "open_cases": [],
                    },
                    "history": {"contacts_7d": 3},
                },
                "source": "crm",
            },
            headers=server.auth("integration"),
        )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(url + "/desktop")
            page.fill("#agent-key", KEYS["agent"][1])
            page.click("#signin button")
            page.wait_for_selector("#status.up")
            page.fill("#customer-id", "c-4711")
            page.fill("#context", '{"interaction": {"intent": "cancel", "channel": "voice"}}')
            page.click("#start-button")
            page.wait_for_selector("#offer-list li")
            for _ in range(3):
                httpx.post(
                    url + "/v1/customers/c-4711/events",
                    json={"type": "payment_failed"},
                    headers=server.auth("integration"),
                )
            page.wait_for_selector(".alert.critical")
            page.screenshot(path=str(DOCS / "desktop.png"), full_page=True)

            document = Path(directory) / "retention-desk.yaml"
            text = (ROOT / "rulesets" / "retention-desk.yaml").read_text(encoding="utf-8")
            document.write_text(text.replace("max_amount: 25", "max_amount: 35", 1))
            page.goto(url + "/rulesets")
            page.fill("#key", KEYS["author"][1])
            page.click("#key-form button")
            page.wait_for_selector("tr[data-ruleset='retention-desk']")
            page.set_input_files("#deploy-file", str(document))
            page.fill("#deploy-message", "a larger fee waiver for repeat callers")
            page.click("#deploy-form button")
            page.wait_for_selector(".deployed")
            page.click("tr[data-ruleset='retention-desk'] button")
            page.click("#diff-form button")
            page.wait_for_selector("#diff-output .diff-add")
            # The workbench: the new revision as a draft, checked, its table as a grid.
            page.click("tr[data-revision='2'] button:text('Edit')")
            page.wait_for_selector("#draft-status[data-state=ok]")
            page.wait_for_selector("#draft-grids figure.grid")
            page.set_viewport_size({"width": 1280, "height": 1500})
            page.evaluate("document.getElementById('detail').scrollIntoView()")
            page.screenshot(path=str(DOCS / "rulesets.png"))
            page.set_viewport_size({"width": 1280, "height": 860})

            page.goto(url + "/audit")
            page.fill("#key", KEYS["auditor"][1])
            page.click("#key-form button")
            page.wait_for_selector("#results tr")
            page.fill("input[name=customer_id]", "c-4711")
            page.click("#filters button")
            page.wait_for_selector("#results tr td:text('decision')")
            page.click("#results tr:has(td:text('decision')) button")
            page.wait_for_selector("#record:not([hidden]) .gaps")
            page.click("#verify")
            page.wait_for_selector("#verify-result.status")
            page.screenshot(path=str(DOCS / "audit.png"))
            browser.close()
    print("wrote docs/desktop.png, docs/rulesets.png, docs/audit.png")


if __name__ == "__main__":
    main()

"""The printable explanation pack in a real Chromium: opened from the /audit page's
explanation of a decision, it shows the reasons with their codes, the data used with pii
masked, the rules as stored and the counterfactuals; printed, the page's own controls are
left off the paper."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.sync_api import expect

from tests.support.live_server import KEYS, LiveServer

AGENT = KEYS["agent"][0]


def test_the_pack_opens_from_the_audit_page_and_prints(page: Any, server: LiveServer) -> None:
    response = httpx.post(
        server.url + "/v1/decisions",
        json={
            "ruleset": "retention-desk",
            "customer_id": "c-page-pack",
            "agent_id": AGENT,
            "context": {
                "customer": {
                    "tier": "gold",
                    "churn_score": 0.9,
                    "tenure_months": 20,
                    "monthly_spend": 150,
                    "email": "kim.secret@example.com",
                    "tags": [],
                },
                "history": {"contacts_7d": 3},
                "interaction": {"intent": "cancel", "channel": "voice"},
            },
        },
        headers=server.auth("agent"),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    decision_id = response.json()["decision_id"]
    page.goto(server.url + "/audit")
    page.fill("#key", KEYS["auditor"][1])
    page.click("#key-form button")
    page.wait_for_selector("#results tr")
    page.fill("input[name=customer_id]", "c-page-pack")
    page.click("#filters button")
    expect(page.locator("#results tr")).to_have_count(1)
    page.locator(f"tr[data-id='{decision_id}'] button").click()
    page.locator("#pack-link").click()
    page.wait_for_selector("#pack:not([hidden])")
    assert page.url.endswith(f"/audit/explanation?id={decision_id}")

    reasons = page.inner_text("#reasons")
    assert "HIGH_VALUE_LEAVING" in reasons and "Repeat contact from a high-tier customer" in reasons
    assert page.locator("#reasons li").count() == 3
    data = page.inner_text("#data")
    assert "customer.monthly_spend" in data and "masked" in data
    assert "kim.secret@example.com" not in page.content()
    rules = page.inner_text("#rules")
    assert "customer.monthly_spend >= 100" in rules and "retention-desk revision" in rules
    counterfactuals = page.inner_text("#counterfactuals")
    assert (
        "customer.tenure_months ≥ 24 would have made loyalty-discount eligible" in counterfactuals
    )
    assert "would not have escalated to high-value-retention" in counterfactuals

    page.emulate_media(media="print")
    assert page.is_hidden("header.bar")
    assert page.is_visible("#reasons")
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF")

"""The agent's desktop (/desktop) in a real Chromium: signed in with a key alone; alerts pushed
by API events appear within a second, only while their customer is in front of the agent, and
their acks reach the ledger; a guided tree asks each question with the control its answer
field's type calls for and says why an answer cannot be used; the customer card shows what the
decision used; the page is usable from the keyboard alone."""

from __future__ import annotations

import time
from typing import Any

import httpx

from audit.query import LedgerQuery, LedgerReader
from tests.support.live_server import KEYS, LiveServer

AGENT, AGENT_KEY = KEYS["agent"]


def sign_in(page: Any, server: LiveServer) -> None:
    page.goto(server.url + "/desktop")
    page.fill("#agent-key", AGENT_KEY)
    page.click("#signin button")
    page.wait_for_selector("#status.up")


def start(page: Any, ruleset: str, customer_id: str, context: str = "") -> None:
    page.fill("#ruleset", ruleset)
    page.fill("#customer-id", customer_id)
    page.fill("#context", context)
    page.click("#start-button")
    page.wait_for_selector("#offers:not([hidden])")


def test_an_event_raises_an_alert_on_the_desktop_within_a_second_and_its_ack_is_recorded(
    page: Any, server: LiveServer
) -> None:
    sign_in(page, server)
    start(page, "retention-desk", "c-browser-1", '{"customer": {"churn_score": 0.2}}')
    integration = server.auth("integration")
    for _ in range(2):
        httpx.post(
            server.url + "/v1/customers/c-browser-1/events",
            json={"type": "payment_failed"},
            headers=integration,
        )
    posted = time.monotonic()
    third = httpx.post(
        server.url + "/v1/customers/c-browser-1/events",
        json={"type": "payment_failed"},
        headers=integration,
    )
    (alert_id,) = third.json()["alerts_raised"]
    box = page.wait_for_selector(f'.alert.critical[data-alert-id="{alert_id}"]', timeout=1000)
    assert time.monotonic() - posted < 1.0
    assert "Third failed payment this week" in box.inner_text()
    # From the keyboard alone: the newest alert, O to override, the reason, Enter.
    page.keyboard.press("Alt+Shift+A")
    assert page.evaluate("document.activeElement.dataset.alertId") == alert_id
    page.keyboard.press("o")
    page.keyboard.type("paid by phone a minute ago")
    page.keyboard.press("Enter")
    done = page.wait_for_selector(f'[data-alert-id="{alert_id}"] .ack-done')
    assert "Overridden: paid by phone a minute ago" in done.inner_text()
    # Another alert of the interaction, accepted with A.
    patched = httpx.patch(
        server.url + "/v1/customers/c-browser-1/context",
        json={"values": {"customer": {"past_due_amount": 120}}},
        headers=integration,
    )
    (second,) = patched.json()["alerts_raised"]
    page.wait_for_selector(f'.alert[data-alert-id="{second}"]')
    page.keyboard.press("Alt+Shift+A")
    page.keyboard.press("a")
    page.wait_for_selector(f'[data-alert-id="{second}"] .ack-done')
    acks = {r.data["alert_id"]: r for r in records(server, "ack", {alert_id, second})}
    assert acks[alert_id].data["outcome"] == "overridden"
    assert acks[alert_id].data["note"] == "paid by phone a minute ago"
    assert acks[second].data["outcome"] == "accepted"
    assert acks[alert_id].agent_id == AGENT and acks[alert_id].customer_id == "c-browser-1"
    # Each answer says how long after the alert reached this desktop, which the ledger holds.
    delivered = {
        r.data["alert_id"]: r for r in records(server, "alert_delivered", {alert_id, second})
    }
    assert acks[alert_id].data["delivered_at"] == delivered[alert_id].data["delivered_at"]
    assert acks[alert_id].data["after_ms"] >= 0
    # The auditor sees it beside the decision that started the interaction.
    started = [r for r in records(server, "decision", set()) if r.customer_id == "c-browser-1"]
    page.goto(server.url + "/audit")
    page.fill("#key", KEYS["auditor"][1])
    page.click("#key-form button")
    page.fill("input[name=customer_id]", "c-browser-1")
    page.click("#filters button")
    page.click(f"tr[data-id='{started[0].id}'] button")
    side = page.wait_for_selector("#human-side li[data-kind='ack']")
    text = page.inner_text("#human-side")
    assert "overridden" in text and "paid by phone a minute ago" in text
    assert "accepted" in text and "shown on the desktop" in text
    assert side is not None


def records(server: LiveServer, kind: str, alert_ids: set[str]) -> list[Any]:
    """The ledger's records of ``kind``, once those about ``alert_ids`` are all indexed (the
    index follows the log a moment behind)."""
    deadline = time.monotonic() + 5
    while True:
        reader = LedgerReader(server.ledger_dir)
        try:
            found = list(reader.iterate(LedgerQuery(kind=kind)))
        finally:
            reader.close()
        if alert_ids <= {r.data.get("alert_id") for r in found} or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_a_tree_is_walked_to_its_outcome_from_the_keyboard(page: Any, server: LiveServer) -> None:
    sign_in(page, server)
    start(page, "billing-disputes", "c-browser-2", '{"customer": {"tier": "gold"}}')
    assert "How many days ago" in page.inner_text("#tree-question")
    # The answer field has the focus: type and press Enter, no mouse.
    assert page.evaluate("document.activeElement.id") == "tree-answer"
    page.keyboard.type("90")
    page.keyboard.press("Enter")
    outcome = page.wait_for_selector("#tree-outcome:not([hidden])")
    assert "decline" in outcome.inner_text()
    assert "60-day dispute window" in outcome.inner_text()


def test_the_customer_card_shows_each_fields_source_and_age(page: Any, server: LiveServer) -> None:
    httpx.put(
        server.url + "/v1/customers/c-browser-3/context",
        json={
            "values": {"customer": {"tier": "gold", "email": "dana@example.com"}},
            "source": "crm",
            "as_of": "2026-01-01T00:00:00Z",
        },
        headers=server.auth("integration"),
    )
    sign_in(page, server)
    start(page, "retention-desk", "c-browser-3")
    card = page.wait_for_selector("#card-fields tr")
    assert card is not None
    text = page.inner_text("#customer-card")
    assert "customer.tier" in text and "crm" in text and "days ago" in text
    assert "dana@example.com" not in text  # pii is masked for agents


def test_an_escalation_shows_its_queue_in_the_banner(page: Any, server: LiveServer) -> None:
    sign_in(page, server)
    start(
        page,
        "retention-desk",
        "c-browser-4",
        '{"customer": {"tier": "platinum", "churn_score": 0.9}}',
    )
    banner = page.wait_for_selector("#escalation:not([hidden])")
    assert "retention-specialists" in banner.inner_text()
    assert "Platinum customer at high churn risk" in banner.inner_text()
    assert banner.get_attribute("aria-live") == "assertive"

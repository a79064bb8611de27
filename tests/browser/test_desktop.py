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
    reason = f'[data-alert-id="{alert_id}"] form.override'
    assert page.is_hidden(reason)  # asked for only when overriding
    page.keyboard.press("o")
    assert page.is_visible(reason)
    assert page.evaluate("document.activeElement.name") == "reason"
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


def fail_payments(server: LiveServer, customer_id: str, times: int) -> list[str]:
    raised: list[str] = []
    for _ in range(times):
        response = httpx.post(
            server.url + f"/v1/customers/{customer_id}/events",
            json={"type": "payment_failed"},
            headers=server.auth("integration"),
        )
        raised += response.json()["alerts_raised"]
    return raised


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


def test_the_customer_card_shows_what_the_decision_used_by_name_with_source_and_age(
    page: Any, server: LiveServer
) -> None:
    """The card lists the fields the decision read: cached ones with their source and age,
    the ones the desktop sent as from the request, pii masked; missing and out-of-date ones
    by the names the ruleset gives them, not their paths."""
    httpx.put(
        server.url + "/v1/customers/c-browser-3/context",
        json={
            "values": {
                "customer": {"tier": "gold", "email": "dana@example.com", "churn_score": 0.4}
            },
            "source": "crm",
            "as_of": "2026-01-01T00:00:00Z",
        },
        headers=server.auth("integration"),
    )
    sign_in(page, server)
    start(page, "retention-desk", "c-browser-3", '{"history": {"contacts_7d": 3}}')
    tier = page.inner_text("#card-fields tr[data-field='customer.tier']")
    assert "Customer tier" in tier and "gold" in tier and "crm" in tier and "days ago" in tier
    sent = page.inner_text("#card-fields tr[data-field='history.contacts_7d']")
    assert "Contacts in the last 7 days" in sent and "3" in sent and "request" in sent
    churn = page.inner_text("#card-fields tr[data-field='customer.churn_score']")
    assert "Probability that the customer leaves within 90 days" in churn and "(stale)" in churn
    stale = page.inner_text("#card-stale")
    assert stale == "Out of date: Probability that the customer leaves within 90 days"
    missing = page.inner_text("#card-missing")
    assert missing.startswith("Missing: ") and "Months as a customer" in missing
    assert "customer.tenure_months" not in missing
    text = page.inner_text("#customer-card")
    assert "dana@example.com" not in text  # pii is masked for agents
    assert "Nothing is cached" not in text


def test_the_card_shows_the_context_sent_for_a_customer_with_nothing_cached(
    page: Any, server: LiveServer
) -> None:
    """A customer the cache has never seen: the card shows the values the desktop sent, which
    the decision used."""
    sign_in(page, server)
    start(page, "retention-desk", "c-browser-7", '{"customer": {"tier": "silver"}}')
    tier = page.inner_text("#card-fields tr[data-field='customer.tier']")
    assert "silver" in tier and "request" in tier
    assert "Nothing is cached" not in page.inner_text("#customer-card")


def test_alerts_belong_to_the_customer_in_front_of_the_agent(page: Any, server: LiveServer) -> None:
    """Switching customer takes the previous customer's alerts out of view; an alert raised
    for the previous customer afterwards is not shown either; the new customer's are."""
    sign_in(page, server)
    start(page, "retention-desk", "c-browser-8", '{"customer": {"churn_score": 0.1}}')
    (first,) = fail_payments(server, "c-browser-8", 3)
    page.wait_for_selector(f'.alert[data-alert-id="{first}"]:not([hidden])')
    assert page.is_hidden("#no-alerts")
    start(page, "retention-desk", "c-browser-9", '{"customer": {"churn_score": 0.1}}')
    page.wait_for_selector(f'.alert[data-alert-id="{first}"]', state="hidden")
    assert page.is_visible("#no-alerts")
    (second,) = fail_payments(server, "c-browser-9", 3)
    page.wait_for_selector(f'.alert[data-alert-id="{second}"]:not([hidden])')
    assert page.is_hidden(f'.alert[data-alert-id="{first}"]')
    # Alt+Shift+A reaches only the customer in front's alerts.
    page.keyboard.press("Alt+Shift+A")
    assert page.evaluate("document.activeElement.dataset.alertId") == second
    page.click("#end-button")
    page.wait_for_selector(f'.alert[data-alert-id="{second}"]', state="hidden")


def test_the_next_customer_starts_with_a_fresh_question(page: Any, server: LiveServer) -> None:
    """An answer typed, refused, for one customer is gone when the next customer's interaction
    asks the same question."""
    sign_in(page, server)
    start(page, "billing-disputes", "c-browser-11", '{"customer": {"tier": "gold"}}')
    page.fill("#tree-answer", "7.5")
    page.keyboard.press("Enter")
    page.wait_for_selector("#tree-problem:text('cannot be used')")
    start(page, "billing-disputes", "c-browser-12", '{"customer": {"tier": "gold"}}')
    page.wait_for_selector("#card-id:text('c-browser-12')")
    assert page.input_value("#tree-answer") == ""
    assert page.inner_text("#tree-problem") == ""


def test_a_refused_answer_shows_the_servers_problem_next_to_the_question(
    page: Any, server: LiveServer
) -> None:
    """An answer the server refuses (here: the interaction was ended elsewhere) shows the
    problem details' sentence beside the question."""
    sign_in(page, server)
    with page.expect_response(lambda r: r.url.endswith("/v1/interactions")) as started:
        start(page, "billing-disputes", "c-browser-10", '{"customer": {"tier": "gold"}}')
    interaction_id = started.value.json()["interaction_id"]
    ended = httpx.delete(
        server.url + f"/v1/interactions/{interaction_id}", headers=server.auth("agent")
    )
    assert ended.status_code == 204
    page.fill("#tree-answer", "10")
    page.keyboard.press("Enter")
    problem = page.wait_for_selector("#tree-problem:text('no live interaction')")
    assert interaction_id in problem.inner_text()
    assert page.is_visible("#tree-question")


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


def test_the_key_alone_signs_in_and_names_the_agent(page: Any, server: LiveServer) -> None:
    """No agent id to type: the page asks the server whose the key is. A key the server does
    not know, or one that is not an agent's, is refused with a sentence saying so."""
    page.goto(server.url + "/desktop")
    assert page.query_selector("#agent-id") is None
    page.fill("#agent-key", "not-a-key-anyone-has")
    page.keyboard.press("Enter")
    page.wait_for_selector("#signin-error:text('does not know this key')")
    page.fill("#agent-key", KEYS["auditor"][1])
    page.keyboard.press("Enter")
    page.wait_for_selector("#signin-error:text('not to an agent')")
    assert page.is_disabled("#start-button")
    page.fill("#agent-key", AGENT_KEY)
    page.keyboard.press("Enter")
    page.wait_for_selector("#status.up")
    assert page.inner_text("#agent-name") == f"Signed in as {AGENT}"
    assert page.inner_text("#signin-error") == ""
    # A reload keeps the desktop connected as the same agent.
    page.reload()
    page.wait_for_selector("#status.up")
    assert page.inner_text("#agent-name") == f"Signed in as {AGENT}"


def test_an_enum_question_offers_its_values_and_is_answered_from_the_keyboard(
    page: Any, server: LiveServer
) -> None:
    """The save conversation's first question has an enum: its values are a radio group, the
    arrow keys choose one and Enter answers; the next question takes a number."""
    sign_in(page, server)
    start(page, "retention-desk", "c-browser-5", '{"interaction": {"intent": "cancel"}}')
    assert "main reason" in page.inner_text("#tree-question")
    choices = page.eval_on_selector_all(
        "#tree-controls [role=radiogroup] input[type=radio]", "els => els.map(e => e.value)"
    )
    assert choices == [
        "price",
        "competitor_offer",
        "moving_house",
        "poor_service",
        "no_longer_needed",
        "other",
    ]
    assert not page.query_selector("#tree-form button[data-answer]")  # no Yes/No here
    assert page.evaluate("document.activeElement.value") == "price"
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.value") == "competitor_offer"
    page.keyboard.press("Enter")
    page.wait_for_selector("#tree-question:text('competitor')")
    number = page.wait_for_selector("#tree-answer")
    assert number.get_attribute("type") == "number" and number.get_attribute("step") == "any"
    assert page.evaluate("document.activeElement.id") == "tree-answer"
    page.keyboard.type("29.5")
    page.keyboard.press("Enter")
    outcome = page.wait_for_selector("#tree-outcome:not([hidden])")
    assert "Outcome" in outcome.inner_text()


def test_a_boolean_question_offers_yes_and_no_and_a_wrong_answer_says_why(
    page: Any, server: LiveServer
) -> None:
    """An integer question takes whole numbers: 7.5 comes back with the server's reason next
    to the question and the answer kept to correct; the next question, a boolean, is Yes and
    No buttons reached with Tab."""
    sign_in(page, server)
    start(page, "billing-disputes", "c-browser-6", '{"customer": {"tier": "gold"}}')
    number = page.wait_for_selector("#tree-answer")
    assert number.get_attribute("type") == "number" and number.get_attribute("step") == "1"
    page.keyboard.type("7.5")
    page.keyboard.press("Enter")
    problem = page.wait_for_selector("#tree-problem:text('cannot be used')")
    assert "expected integer, got number" in problem.inner_text()
    assert "How many days ago" in page.inner_text("#tree-question")
    assert page.input_value("#tree-answer") == "7.5"
    assert page.get_attribute("#tree-fieldset", "aria-describedby") == "tree-problem"
    page.fill("#tree-answer", "10")
    page.keyboard.press("Enter")
    page.wait_for_selector("#tree-question:text('disputed this charge with their bank')")
    assert page.inner_text("#tree-problem") == ""
    buttons = page.eval_on_selector_all(
        "#tree-controls button", "els => els.map(e => e.textContent)"
    )
    assert buttons == ["Yes", "No"]
    assert page.evaluate("document.activeElement.textContent") == "Yes"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "No"
    page.keyboard.press("Enter")
    page.wait_for_selector("#tree-outcome:not([hidden])")

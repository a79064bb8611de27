"""frontline-desktop.js on its own, as a host page would use it: over server-sent events, and
over a WebSocket that drops and comes back, resuming after the last alert it saw."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.live_server import KEYS, LiveServer

AGENT, AGENT_KEY = KEYS["agent"]

SETUP = """
async ([agent, key, transport]) => {
  const { connect } = await import("/static/frontline-desktop.js");
  window.seen = [];
  window.transports = [];
  window.desktop = connect(agent, key, { transport });
  desktop.addEventListener("alert", (e) => seen.push(e.detail));
  desktop.addEventListener("open", (e) => transports.push(e.detail.transport));
  await new Promise((ok) => desktop.addEventListener("open", ok, { once: true }));
}
"""


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


def wait_for_alert(page: Any, alert_id: str) -> None:
    page.wait_for_function(
        "(id) => window.seen.some((a) => a.alert_id === id)", arg=alert_id, timeout=5000
    )


def test_alerts_over_server_sent_events(page: Any, server: LiveServer) -> None:
    page.goto(server.url + "/desktop")
    page.evaluate(SETUP, [AGENT, AGENT_KEY, "sse"])
    decision = page.evaluate(
        """() => desktop.startInteraction({ruleset: "retention-desk", customerId: "c-plugin-1",
              context: {customer: {churn_score: 0.1}}})"""
    )
    assert decision["interaction_id"]
    (alert_id,) = fail_payments(server, "c-plugin-1", 3)
    wait_for_alert(page, alert_id)
    assert page.evaluate("window.transports") == ["sse"]
    acked = page.evaluate("(id) => desktop.ack(id, 'dismissed')", alert_id)
    assert acked["outcome"] == "dismissed"


def test_a_dropped_websocket_reconnects_and_resumes_after_the_last_alert(
    page: Any, server: LiveServer
) -> None:
    page.goto(server.url + "/desktop")
    page.evaluate(SETUP, [AGENT, AGENT_KEY, "websocket"])
    page.evaluate(
        """() => desktop.startInteraction({ruleset: "retention-desk", customerId: "c-plugin-2",
              context: {customer: {churn_score: 0.1}}})"""
    )
    (first,) = fail_payments(server, "c-plugin-2", 3)
    wait_for_alert(page, first)
    # The connection drops; while it is down the customer's balance goes past due.
    page.evaluate("() => { desktop.connected && desktop._stream.close(); }")
    page.wait_for_function("() => !desktop.connected")
    patched = httpx.patch(
        server.url + "/v1/customers/c-plugin-2/context",
        json={"values": {"customer": {"past_due_amount": 80}}},
        headers=server.auth("integration"),
    )
    (missed,) = patched.json()["alerts_raised"]
    wait_for_alert(page, missed)
    assert page.evaluate("window.transports") == ["websocket", "websocket"]
    ids = page.evaluate("window.seen.map((a) => a.alert_id)")
    assert ids.count(first) == 1 and ids.count(missed) == 1


def test_when_websockets_cannot_open_the_plugin_falls_back_to_server_sent_events(
    page: Any, server: LiveServer
) -> None:
    page.goto(server.url + "/desktop")
    # A network that refuses WebSockets: every one closes before it opens.
    page.evaluate(
        """() => { window.WebSocket = class {
             constructor() { setTimeout(() => this.onclose && this.onclose({code: 1006}), 0); }
             close() {} }; }"""
    )
    page.evaluate(SETUP, [AGENT, AGENT_KEY, "auto"])
    assert page.evaluate("window.transports") == ["sse"]
    page.evaluate(
        """() => desktop.startInteraction({ruleset: "retention-desk", customerId: "c-plugin-3",
              context: {customer: {churn_score: 0.1}}})"""
    )
    (alert_id,) = fail_payments(server, "c-plugin-3", 3)
    wait_for_alert(page, alert_id)


def test_a_key_alone_connects_as_its_agent_and_decisions_say_what_they_used(
    page: Any, server: LiveServer
) -> None:
    """connectWithKey asks whose the key is and opens that agent's stream; another role's key
    is refused with a FrontlineError. An interaction started with contextUsed keeps asking for
    it: its answers' decisions list the fields they read, and their questions what they take."""
    page.goto(server.url + "/desktop")
    refused = page.evaluate(
        """async (key) => {
             const { connectWithKey } = await import("/static/frontline-desktop.js");
             try { await connectWithKey(key); return null; }
             catch (err) { return [err.name, err.status, err.message]; } }""",
        KEYS["author"][1],
    )
    assert refused == ["FrontlineError", 403, "this key belongs to author ann, not to an agent"]
    agent = page.evaluate(
        """async (key) => {
             const { connectWithKey } = await import("/static/frontline-desktop.js");
             window.desktop = await connectWithKey(key);
             await new Promise((ok) => desktop.addEventListener("open", ok, { once: true }));
             return desktop.agentId; }""",
        AGENT_KEY,
    )
    assert agent == AGENT
    started = page.evaluate(
        """() => desktop.startInteraction({ruleset: "billing-disputes", customerId: "c-plugin-4",
              context: {customer: {tier: "gold"}}, contextUsed: true})"""
    )
    used = {u["field"]: u for u in started["context_used"]}
    assert used["customer.tier"]["value"] == "gold" and used["customer.tier"]["source"] == "request"
    assert started["next_step"]["answer_type"] == "integer"
    answered = page.evaluate("(step) => desktop.answer(step, 10)", started["next_step"])
    assert answered["next_step"]["answer_type"] == "boolean"
    assert any(u["field"] == "answers.charge_age_days" for u in answered["context_used"])

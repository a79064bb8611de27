"""Alerts pushed to an agent's desktop: raised when an interaction starts and when the
customer's context or events change, suppressed when repeated, resumable after a reconnect,
acknowledged into the ledger. On the embedded default (one process, the in-process bus)."""

from __future__ import annotations

import queue
import time
from typing import Any

import httpx
import pytest

from audit.query import LedgerQuery, LedgerReader
from audit.record import LedgerRecord
from tests.support.live_server import KEYS, LiveServer
from tests.support.streams import SocketAlerts, SseAlerts

AGENT, AGENT_KEY = KEYS["agent"]
LEAD, LEAD_KEY = KEYS["supervisor"]

ESCALATING = f"""
ruleset: escalating-desk
context:
  customer.churn_score: number
alerts:
  - id: churn-now
    when: customer.churn_score > 0.5
    severity: critical
    message: Churn risk
    require_ack: true
    ack_within: 1s
  - id: churn-mild
    when: customer.churn_score > 0.3
    severity: info
    message: Some churn risk
    require_ack: true
    ack_within: 1s
policy: {{supervisor: {LEAD}}}
"""


def start(
    client: httpx.Client, server: LiveServer, customer_id: str, **context: object
) -> dict[str, Any]:
    response = client.post(
        "/v1/interactions",
        json={
            "ruleset": "retention-desk",
            "customer_id": customer_id,
            "agent_id": AGENT,
            "context": context or None,
        },
        headers=server.auth("agent"),
    )
    assert response.status_code == 201, response.text
    return response.json()


def ledger_kinds(server: LiveServer, kind: str) -> list[LedgerRecord]:
    reader = LedgerReader(server.ledger_dir)
    try:
        return list(reader.iterate(LedgerQuery(kind=kind)))
    finally:
        reader.close()


def test_alerts_reach_the_agent_when_an_interaction_starts_and_when_context_changes(
    client: httpx.Client, server: LiveServer
) -> None:
    stream = SseAlerts(server.url, AGENT, AGENT_KEY)
    try:
        assert stream.status == 200
        started = start(client, server, "c-alert-1", customer={"churn_score": 0.9})
        first = stream.next(customer_id="c-alert-1")
        assert first["rule"] == "high-churn-caller"
        assert first["alert_id"] == started["alerts"][0]["alert_id"]
        assert first["trigger"] == "interaction_started"
        assert first["interaction_id"] == started["interaction_id"]
        # A context change fires another rule for the live interaction...
        patched = client.patch(
            "/v1/customers/c-alert-1/context",
            json={"values": {"customer": {"past_due_amount": 120}}, "source": "billing"},
            headers=server.auth("integration"),
        )
        assert patched.status_code == 200, patched.text
        second = stream.next(customer_id="c-alert-1")
        assert second["rule"] == "past-due-balance" and second["trigger"] == "context"
        assert patched.json()["alerts_raised"] == [second["alert_id"]]
        # ...and the one already raised is not raised again within the repeat interval.
        again = client.patch(
            "/v1/customers/c-alert-1/context",
            json={"values": {"customer": {"past_due_amount": 130}}},
            headers=server.auth("integration"),
        )
        assert again.json()["alerts_raised"] == []
        with pytest.raises(queue.Empty):
            stream.next(timeout=0.5)
    finally:
        stream.close()
    delivered = {r.data["alert_id"] for r in ledger_kinds(server, "alert")}
    assert {first["alert_id"], second["alert_id"]} <= delivered
    figures = client.get("/metrics").text
    raised = [line for line in figures.splitlines() if line.startswith("frontline_alerts_")]
    assert any(line.startswith("frontline_alerts_raised_total") for line in raised), raised
    assert any(
        line.startswith("frontline_alerts_dropped_total") and line.endswith(" 0.0")
        for line in raised
    ), raised
    # Per rule: what reached the desktop, and the repeat held back.
    per_rule = 'instance="local",rule="past-due-balance",ruleset="retention-desk"'
    assert f"frontline_alert_rule_delivered_total{{{per_rule}}} 1.0" in figures, figures
    assert (
        'frontline_alert_rule_suppressed_total{instance="local",reason="repeat",'
        'rule="past-due-balance",ruleset="retention-desk"} 1.0' in figures
    ), figures


def test_events_raise_count_based_alerts_over_a_websocket(
    client: httpx.Client, server: LiveServer
) -> None:
    socket = SocketAlerts(server.url, AGENT, AGENT_KEY)
    try:
        start(client, server, "c-alert-2", customer={"churn_score": 0.1})
        for n in range(3):
            response = client.post(
                "/v1/customers/c-alert-2/events",
                json={"type": "payment_failed"},
                headers=server.auth("integration"),
            )
            assert response.status_code == 202, response.text
            raised = response.json()["alerts_raised"]
            assert len(raised) == (1 if n == 2 else 0)
        alert = socket.next(customer_id="c-alert-2")
        assert alert["rule"] == "repeat-failed-payments" and alert["severity"] == "critical"
        assert alert["trigger"] == "event:payment_failed"
    finally:
        socket.close()


def test_a_desktop_that_reconnects_gets_what_it_missed(
    client: httpx.Client, server: LiveServer
) -> None:
    stream = SseAlerts(server.url, AGENT, AGENT_KEY)
    start(client, server, "c-alert-3", customer={"churn_score": 0.95})
    seen = stream.next(customer_id="c-alert-3")
    stream.close()
    # While the desktop is away, the customer's balance goes past due.
    client.patch(
        "/v1/customers/c-alert-3/context",
        json={"values": {"customer": {"past_due_amount": 50}}},
        headers=server.auth("integration"),
    )
    resumed = SseAlerts(server.url, AGENT, AGENT_KEY, last_event_id=seen["id"])
    try:
        missed = resumed.next(customer_id="c-alert-3")
        assert missed["rule"] == "past-due-balance" and missed["customer_id"] == "c-alert-3"
        with pytest.raises(queue.Empty):  # what it had seen is not sent again
            resumed.next(timeout=0.5)
    finally:
        resumed.close()


def test_only_that_agents_key_may_subscribe(client: httpx.Client, server: LiveServer) -> None:
    headers = {"Accept": "text/event-stream"}
    other = client.get(f"/v1/agents/{AGENT}/alerts", headers={**headers, **server.auth("agent2")})
    assert other.status_code == 403
    admin = client.get(f"/v1/agents/{AGENT}/alerts", headers={**headers, **server.auth("admin")})
    assert admin.status_code == 403
    anonymous = client.get(f"/v1/agents/{AGENT}/alerts", headers=headers)
    assert anonymous.status_code == 401


def test_an_ack_is_recorded_and_only_the_alerted_agent_may_give_it(
    client: httpx.Client, server: LiveServer
) -> None:
    started = start(client, server, "c-alert-4", customer={"churn_score": 0.8})
    alert_id = started["alerts"][0]["alert_id"]
    # Delivery runs beside the answer: wait until the alert is known.
    for _ in range(50):
        response = client.post(
            f"/v1/alerts/{alert_id}/ack",
            json={"outcome": "acted", "note": "offered a plan"},
            headers=server.auth("agent2"),
        )
        if response.status_code != 404:
            break
    assert response.status_code == 403, response.text
    ack = client.post(
        f"/v1/alerts/{alert_id}/ack",
        json={"outcome": "acted", "note": "offered a plan"},
        headers=server.auth("agent"),
    )
    assert ack.status_code == 200, ack.text
    bad = client.post(
        f"/v1/alerts/{alert_id}/ack", json={"outcome": "ignored"}, headers=server.auth("agent")
    )
    assert bad.status_code == 400
    unknown = client.post(
        "/v1/alerts/nope/ack", json={"outcome": "acted"}, headers=server.auth("agent")
    )
    assert unknown.status_code == 404
    acks = [r for r in ledger_kinds(server, "ack") if r.data["alert_id"] == alert_id]
    assert len(acks) == 1
    assert acks[0].data["outcome"] == "acted" and acks[0].agent_id == AGENT
    assert acks[0].customer_id == "c-alert-4"


def test_an_agent_reads_the_context_only_of_a_customer_it_is_handling(
    client: httpx.Client, server: LiveServer
) -> None:
    client.put(
        "/v1/customers/c-card/context",
        json={"values": {"customer": {"tier": "gold", "email": "dana@example.com"}}},
        headers=server.auth("integration"),
    )
    before = client.get("/v1/customers/c-card/context", headers=server.auth("agent"))
    assert before.status_code == 403
    start(client, server, "c-card")
    mine = client.get("/v1/customers/c-card/context", headers=server.auth("agent"))
    assert mine.status_code == 200
    assert mine.json()["values"]["customer"]["tier"] == "gold"
    assert mine.json()["values"]["customer"]["email"].startswith("hmac-sha256:")
    other = client.get("/v1/customers/c-card/context", headers=server.auth("agent2"))
    assert other.status_code == 403


def test_an_unanswered_alert_reaches_the_supervisor_and_an_answered_one_does_not(
    client: httpx.Client, server: LiveServer
) -> None:
    deployed = client.post(
        "/v1/rulesets",
        params={"allow_untested": "true"},
        content=ESCALATING,
        headers={**server.auth("author"), "Content-Type": "application/yaml"},
    )
    assert deployed.status_code == 201, deployed.text
    lead = SocketAlerts(server.url, LEAD, LEAD_KEY, of="supervisors")
    try:
        response = client.post(
            "/v1/interactions",
            json={
                "ruleset": "escalating-desk",
                "customer_id": "c-escalate",
                "agent_id": AGENT,
                "context": {"customer": {"churn_score": 0.9}},
            },
            headers=server.auth("agent"),
        )
        assert response.status_code == 201, response.text
        alerts = {a["rule"]: a["alert_id"] for a in response.json()["alerts"]}
        answered = client.post(
            f"/v1/alerts/{alerts['churn-mild']}/ack",
            json={"outcome": "acknowledged"},
            headers=server.auth("agent"),
        )
        assert answered.status_code == 200, answered.text
        escalation = lead.next(timeout=6, customer_id="c-escalate")
        assert escalation["type"] == "escalation" and escalation["rule"] == "churn-now"
        assert escalation["alert_id"] == alerts["churn-now"] and escalation["agent_id"] == AGENT
        with pytest.raises(queue.Empty):  # the answered one is not escalated
            lead.next(timeout=2.0, customer_id="c-escalate")
    finally:
        lead.close()
    # Another supervisor's key may not open this stream.
    refused = client.get(
        f"/v1/supervisors/{LEAD}/alerts", headers={"Authorization": "Bearer " + AGENT_KEY}
    )
    assert refused.status_code == 403
    escalated = ledger_kinds(server, "alert_escalated")
    assert [r.data["alert_id"] for r in escalated] == [alerts["churn-now"]]
    figures = client.get("/metrics").text
    assert (
        'frontline_alert_rule_escalated_total{instance="local",rule="churn-now",'
        'ruleset="escalating-desk"} 1.0' in figures
    ), figures


ON_A_TIMER = f"""
ruleset: long-calls
context:
  interaction.started_at: datetime
escalation:
  - id: long-call
    when: hours_since(interaction.started_at) * 3600 >= 1.5
    queue: team-lead
    priority: 1
    because: The call has run too long
    reason_code: LONG_CALL
    on: [timer]
    every: 1s
policy: {{supervisor: {LEAD}}}
"""


def test_a_timer_escalation_reaches_the_desktop_and_the_supervisor_once(
    client: httpx.Client, server: LiveServer
) -> None:
    deployed = client.post(
        "/v1/rulesets",
        params={"allow_untested": "true"},
        content=ON_A_TIMER,
        headers={**server.auth("author"), "Content-Type": "application/yaml"},
    )
    assert deployed.status_code == 201, deployed.text
    desktop = SocketAlerts(server.url, AGENT, AGENT_KEY)
    lead = SocketAlerts(server.url, LEAD, LEAD_KEY, of="supervisors")
    try:
        started = client.post(
            "/v1/interactions",
            json={"ruleset": "long-calls", "customer_id": "c-long", "agent_id": AGENT},
            headers=server.auth("agent"),
        )
        assert started.status_code == 201, started.text
        assert started.json()["escalation"] is None  # not a decision's rule
        began = time.monotonic()
        shown = desktop.next(timeout=6, customer_id="c-long")
        # Not on the first period (1 s into the call): on the second, once it held.
        assert time.monotonic() - began >= 1.5
        assert shown["rule"] == "long-call" and shown["trigger"] == "timer"
        assert shown["escalation"] == {
            "queue": "team-lead",
            "priority": 1,
            "because": "The call has run too long",
            "reason_code": "LONG_CALL",
        }
        told = lead.next(timeout=6, customer_id="c-long")
        assert told["type"] == "escalation" and told["alert_id"] == shown["alert_id"]
        assert told["agent_id"] == AGENT and told["escalation"]["queue"] == "team-lead"
        with pytest.raises(queue.Empty):  # later periods, still true: not raised again
            lead.next(timeout=2.5, customer_id="c-long")
    finally:
        desktop.close()
        lead.close()
    deadline = time.monotonic() + 10
    while not (raised := ledger_kinds(server, "escalation_raised")):
        assert time.monotonic() < deadline, "the escalation never reached the index"
        time.sleep(0.2)
    (record,) = raised
    assert record.data["alert_id"] == shown["alert_id"] and record.data["due_at"]
    assert record.data["supervisor"] == LEAD and record.outputs["escalation"]["rule"] == "long-call"
    assert 'frontline_escalations_raised_total{instance="local"} 1.0' in client.get("/metrics").text


def test_a_stream_opens_with_a_ticket_and_no_key_reaches_the_log(
    client: httpx.Client, server: LiveServer
) -> None:
    issued = client.post("/v1/stream-tickets", headers=server.auth("agent"))
    assert issued.status_code == 201, issued.text
    ticket = issued.json()["ticket"]
    assert AGENT_KEY not in ticket
    # The ticket opens this agent's stream (a WebSocket here), not another agent's.
    socket = SocketAlerts(server.url, AGENT, "", query=f"ticket={ticket}")
    try:
        started = start(client, server, "c-ticket", customer={"churn_score": 0.9})
        assert socket.next(customer_id="c-ticket")["alert_id"] == started["alerts"][0]["alert_id"]
    finally:
        socket.close()
    other = client.get(f"/v1/agents/agent-8/alerts?ticket={ticket}")
    assert other.status_code == 403
    forged = client.get(f"/v1/agents/{AGENT}/alerts?ticket={ticket[:-2]}AA")
    assert forged.status_code == 401 and "stream ticket" in forged.json()["detail"]
    # The old way, the key in the URL, still opens a stream; the log shows it redacted.
    SocketAlerts(server.url, AGENT, AGENT_KEY).close()
    time.sleep(0.3)
    log = server.log.read_text(encoding="utf-8")
    assert "access_token=[redacted]" in log and "ticket=[redacted]" in log
    for _, (_, key) in KEYS.items():
        assert key not in log
    assert ticket not in log


def test_an_agent_holding_its_most_streams_is_refused_another_alone(
    client: httpx.Client, server: LiveServer
) -> None:
    other, other_key = KEYS["agent2"]
    held = [SseAlerts(server.url, other, other_key) for _ in range(5)]
    try:
        assert all(s.status == 200 for s in held)
        refused = client.get(
            f"/v1/agents/{other}/alerts",
            headers={"Authorization": f"Bearer {other_key}", "Accept": "text/event-stream"},
        )
        assert refused.status_code == 429, refused.text
        assert "already has 5 alert streams open" in refused.json()["detail"]
        assert refused.headers["retry-after"] == "5"
        # Decisions, and other agents' streams, are untouched.
        mine = SseAlerts(server.url, AGENT, AGENT_KEY)
        assert mine.status == 200
        mine.close()
        assert start(client, server, "c-streams")["decision_id"]
    finally:
        for stream in held:
            stream.close()

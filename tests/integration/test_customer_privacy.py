"""A customer's values reach only the agent handling the customer, and pii reaches no agent:
alert messages, tree prompts, decision answers, alert streams and the customer card, through
a real HTTP client to a real server."""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit.query import LedgerQuery, LedgerReader
from audit.record import LedgerRecord
from tests.support.live_server import KEYS, LiveServer
from tests.support.streams import SseAlerts

AGENT, AGENT_KEY = KEYS["agent"]
OTHER, OTHER_KEY = KEYS["agent2"]
EMAIL = "ann.privacy@example.com"

PRIVACY_DESK = """
ruleset: privacy-desk
context:
  customer.email: {type: string, classification: pii}
  customer.churn_score: number
  answers.confirmed: boolean
alerts:
  - id: confirm-address
    when: customer.churn_score > 0.5
    severity: warning
    message: "Confirm {customer.email} before the offer (risk {customer.churn_score})"
    on: [decision, context_change]
  - id: risk-rising
    when: customer.churn_score > 0.8
    severity: critical
    message: "Risk now {customer.churn_score} for {lower(customer.email)}"
    on: [context_change]
trees:
  - id: follow-up
    start: confirm
    nodes:
      confirm:
        ask: Did the customer confirm the address?
        answer: answers.confirmed
        next:
          - {when: answers.confirmed == true, goto: send}
          - {goto: stop}
      send: {outcome: send, say: "Send the form to {customer.email}"}
      stop: {outcome: stop, say: Nothing to send}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(tmp_path_factory.mktemp("privacy")) as live:
        deploy(live)
        yield live


def deploy(server: LiveServer) -> None:
    deployed = httpx.post(
        server.url + "/v1/rulesets",
        params={"allow_untested": "true"},
        content=PRIVACY_DESK,
        headers={**server.auth("author"), "content-type": "application/yaml"},
    )
    assert deployed.status_code == 201, deployed.text


def put_context(
    client: httpx.Client, server: LiveServer, customer_id: str, **customer: Any
) -> None:
    stored = client.put(
        f"/v1/customers/{customer_id}/context",
        json={"values": {"customer": customer}, "source": "crm"},
        headers=server.auth("integration"),
    )
    assert stored.status_code == 200, stored.text


def asked(customer_id: str, role: str) -> dict[str, Any]:
    """What the desktop sends, starting an interaction or deciding, as ``role``'s agent."""
    return {
        "ruleset": "privacy-desk",
        "customer_id": customer_id,
        "agent_id": KEYS[role][0],
        "tree": "follow-up",
        "answers": {"confirmed": True},
    }


def start(
    client: httpx.Client, server: LiveServer, customer_id: str, role: str = "agent"
) -> dict[str, Any]:
    started = client.post(
        "/v1/interactions", json=asked(customer_id, role), headers=server.auth(role)
    )
    assert started.status_code == 201, started.text
    body: dict[str, Any] = started.json()
    return body


def decide(
    client: httpx.Client, server: LiveServer, customer_id: str, role: str, **extra: Any
) -> httpx.Response:
    return client.post(
        "/v1/decisions", json={**asked(customer_id, role), **extra}, headers=server.auth(role)
    )


def ledger_records(server: LiveServer, customer_id: str) -> list[LedgerRecord]:
    reader = LedgerReader(server.ledger_dir)
    try:
        return list(reader.iterate(LedgerQuery(customer_id=customer_id)))
    finally:
        reader.close()


def ledger_bytes(server: LiveServer) -> bytes:
    return b"".join(p.read_bytes() for p in server.ledger_dir.rglob("*") if p.is_file())


def test_alert_messages_and_tree_prompts_reach_the_agent_with_pii_masked(
    client: httpx.Client, server: LiveServer
) -> None:
    """pii is masked in the answer, on the alert stream and in the ledger, part by part: the
    rest of the text, and values that are not pii, read as they are."""
    put_context(client, server, "c-priv-1", email=EMAIL, churn_score=0.6)
    stream = SseAlerts(server.url, AGENT, AGENT_KEY)
    try:
        started = start(client, server, "c-priv-1")
        (alert,) = started["alerts"]
        mask = alert["message"].split()[1]
        assert mask.startswith("hmac-sha256:")
        assert alert["message"] == f"Confirm {mask} before the offer (risk 0.6)"
        assert started["next_step"]["say"] == f"Send the form to {mask}"
        pushed = stream.next(customer_id="c-priv-1")
        assert pushed["message"] == alert["message"]
        # A context change raises an alert for the live interaction: pushed masked too.
        changed = client.patch(
            "/v1/customers/c-priv-1/context",
            json={"values": {"customer": {"churn_score": 0.9}}},
            headers=server.auth("integration"),
        )
        assert changed.status_code == 200, changed.text
        rising = stream.next(customer_id="c-priv-1")
        assert rising["rule"] == "risk-rising"
        assert rising["message"].startswith("Risk now 0.9 for hmac-sha256:")
    finally:
        stream.close()
    # The agent sees the mask the ledger keeps, and the ledger keeps what the agent saw, in
    # every kind of record: the decision, the alerts and their deliveries to the desktop.
    for _ in range(100):
        records = ledger_records(server, "c-priv-1")
        if sum(r.kind == "alert_delivered" for r in records) >= 2:
            break
        time.sleep(0.05)
    kinds = {r.kind for r in records}
    assert {"decision", "alert", "alert_delivered"} <= kinds, kinds
    decided = next(r.outputs for r in records if r.kind == "decision")
    assert decided["alerts"][0]["message"] == alert["message"]
    assert decided["next_step"]["say"] == started["next_step"]["say"]
    kept = {r.outputs["alerts"][0]["message"] for r in records if r.kind == "alert"}
    assert kept == {pushed["message"], rising["message"]}
    assert EMAIL.encode() not in ledger_bytes(server)


def test_an_agent_not_handling_the_customer_sees_none_of_its_values(
    client: httpx.Client, server: LiveServer
) -> None:
    """Another agent may ask for a decision about the customer, and gets one, but every
    value its messages and prompts would show is masked; the agent handling it sees them."""
    put_context(client, server, "c-priv-2", email=EMAIL, churn_score=0.7)
    start(client, server, "c-priv-2")
    other = decide(client, server, "c-priv-2", "agent2")
    assert other.status_code == 200, other.text
    (alert,) = other.json()["alerts"]
    assert alert["rule"] == "confirm-address"
    assert "0.7" not in alert["message"] and EMAIL not in other.text
    assert alert["message"].count("hmac-sha256:") == 2
    assert other.json()["next_step"]["say"].startswith("Send the form to hmac-sha256:")
    # Nor does a bad value it sent come back in clear, nor a trace at all.
    traced = decide(client, server, "c-priv-2", "agent2", trace=True)
    assert traced.status_code == 403
    invalid = decide(
        client, server, "c-priv-2", "agent2", context={"customer": {"churn_score": "very high"}}
    )
    assert invalid.status_code == 200, invalid.text
    (bad,) = invalid.json()["invalid_fields"]
    assert bad["got"].startswith("hmac-sha256:")
    mine = decide(client, server, "c-priv-2", "agent")
    assert mine.status_code == 200, mine.text
    assert mine.json()["alerts"][0]["message"].endswith("(risk 0.7)")


def test_alerts_kept_for_a_reconnecting_desktop_are_not_sent_once_the_interaction_ended(
    client: httpx.Client, server: LiveServer
) -> None:
    """A desktop that reconnects asking for everything it may have missed gets the alerts of
    its live interactions, not those of a customer it no longer handles."""
    put_context(client, server, "c-priv-3", email=EMAIL, churn_score=0.9)
    put_context(client, server, "c-priv-4", email=EMAIL, churn_score=0.9)
    stream = SseAlerts(server.url, AGENT, AGENT_KEY)
    try:
        ended = start(client, server, "c-priv-3")
        gone = stream.next(customer_id="c-priv-3")  # pushed while the interaction was live
    finally:
        stream.close()
    deleted = client.delete(
        f"/v1/interactions/{ended['interaction_id']}", headers=server.auth("agent")
    )
    assert deleted.status_code in (200, 204), deleted.text
    start(client, server, "c-priv-4")
    resumed = SseAlerts(server.url, AGENT, AGENT_KEY, last_event_id="0")  # the whole history
    try:
        seen: list[dict[str, Any]] = []
        while not any(m["customer_id"] == "c-priv-4" for m in seen):
            seen.append(resumed.next())
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                seen.append(resumed.next(timeout=0.1))
    finally:
        resumed.close()
    assert gone["id"] not in {m["id"] for m in seen}
    assert "c-priv-3" not in {m["customer_id"] for m in seen}


def test_the_customer_card_is_for_the_agent_handling_the_customer_while_it_does(
    client: httpx.Client, server: LiveServer
) -> None:
    """Starting an interaction opens the card to that agent alone, with pii masked; ending
    it closes the card again. Another agent's interaction opens nothing to this one."""
    put_context(client, server, "c-priv-5", email=EMAIL, churn_score=0.2)
    started = start(client, server, "c-priv-5")
    card = client.get("/v1/customers/c-priv-5/context", headers=server.auth("agent"))
    assert card.status_code == 200, card.text
    assert card.json()["values"]["customer"]["email"].startswith("hmac-sha256:")
    assert card.json()["values"]["customer"]["churn_score"] == 0.2
    other = client.get("/v1/customers/c-priv-5/context", headers=server.auth("agent2"))
    assert other.status_code == 403 and EMAIL not in other.text
    client.delete(f"/v1/interactions/{started['interaction_id']}", headers=server.auth("agent"))
    after = client.get("/v1/customers/c-priv-5/context", headers=server.auth("agent"))
    assert after.status_code == 403


def test_an_interaction_is_used_and_ended_only_by_its_own_agent(
    client: httpx.Client, server: LiveServer
) -> None:
    """Another agent can neither decide within an agent's interaction (to read through it)
    nor end it."""
    put_context(client, server, "c-priv-6", email=EMAIL, churn_score=0.9)
    started = start(client, server, "c-priv-6")
    pinned = decide(
        client, server, "c-priv-6", "agent2", interaction=started["interaction_id"], trace=True
    )
    assert pinned.status_code == 403 and EMAIL not in pinned.text and "0.9" not in pinned.text
    ended = client.delete(
        f"/v1/interactions/{started['interaction_id']}", headers=server.auth("agent2")
    )
    assert ended.status_code == 403
    mine = decide(client, server, "c-priv-6", "agent", interaction=started["interaction_id"])
    assert mine.status_code == 200, mine.text


def test_a_deployment_may_show_pii_to_agents_and_the_ledger_still_masks_it(
    tmp_path: Path,
) -> None:
    """With FRONTLINE_SHOW_PII_TO_AGENTS=1 the agent handling the customer reads pii in
    clear; the ledger keeps it masked all the same."""
    env = {"FRONTLINE_SHOW_PII_TO_AGENTS": "1"}
    with (
        LiveServer(tmp_path / "d", env=env) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        deploy(server)
        put_context(client, server, "c-shown", email=EMAIL, churn_score=0.6)
        started = start(client, server, "c-shown")
        assert started["alerts"][0]["message"] == f"Confirm {EMAIL} before the offer (risk 0.6)"
        assert started["next_step"]["say"] == f"Send the form to {EMAIL}"
        card = client.get("/v1/customers/c-shown/context", headers=server.auth("agent"))
        assert card.json()["values"]["customer"]["email"] == EMAIL
        other = decide(client, server, "c-shown", "agent2")  # not handling: still nothing
        assert EMAIL not in other.text and "0.6" not in other.text
        for _ in range(50):  # the alert's own record is written beside the answer
            if any(r.kind == "alert" for r in ledger_records(server, "c-shown")):
                break
            time.sleep(0.1)
        assert EMAIL.encode() not in ledger_bytes(server)

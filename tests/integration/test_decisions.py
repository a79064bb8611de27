"""Decisions, interactions, context and events, through a real HTTP client to a real server."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit.query import LedgerReader
from tests.support.live_server import ROOT, LiveServer

RETENTION = (ROOT / "rulesets" / "retention-desk.yaml").read_text(encoding="utf-8")


def decide(client: httpx.Client, server: LiveServer, **body: Any) -> httpx.Response:
    payload = {"ruleset": "retention-desk", "customer_id": "c-1", "agent_id": "agent-7", **body}
    return client.post("/v1/decisions", json=payload, headers=server.auth("agent"))


def test_a_decision_reads_cached_context_with_overrides_on_top(
    client: httpx.Client, server: LiveServer
) -> None:
    """The cached context and the request's overrides both reach the rules; the response
    carries the documented decision shape and its record is in the ledger."""
    put = client.put(
        "/v1/customers/c-ctx/context",
        json={
            "values": {"customer": {"tier": "gold", "tenure_months": 70}},
            "source": "crm",
            "as_of": "2026-11-22T09:00:00Z",
        },
        headers=server.auth("integration"),
    )
    assert put.status_code == 200, put.text
    response = decide(
        client,
        server,
        customer_id="c-ctx",
        context={"history": {"contacts_7d": 3}, "interaction": {"intent": "billing"}},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert {e["rule"] for e in body["eligible"]} >= {"fee-waiver", "long-tenure-fee-waiver"}
    assert body["ruleset"] == "retention-desk" and body["revision"] >= 1
    assert body["customer_id"] == "c-ctx" and body["agent_id"] == "agent-7"
    assert body["evaluated_at"].endswith("Z")
    reader = LedgerReader(server.ledger_dir)
    try:
        record = reader.get(body["decision_id"])
    finally:
        reader.close()
    assert record is not None
    assert record.context["customer.tier"].source == "crm"
    assert record.context["history.contacts_7d"].source == "request"
    assert record.outputs["eligible"] == body["eligible"]


def test_context_patch_merges_and_get_reports_sources_and_ages(
    client: httpx.Client, server: LiveServer
) -> None:
    auth = server.auth("integration")
    client.put(
        "/v1/customers/c-merge/context",
        json={"values": {"customer": {"tier": "silver", "plan": "basic"}}, "source": "crm"},
        headers=auth,
    )
    patched = client.patch(
        "/v1/customers/c-merge/context",
        json={
            "values": {"customer": {"churn_score": 0.4}},
            "source": "churn-model",
            "as_of": "2026-11-22T00:00:00Z",
        },
        headers=auth,
    )
    assert patched.status_code == 200, patched.text
    read = client.get("/v1/customers/c-merge/context", headers=auth).json()
    assert read["values"]["customer"] == {"tier": "silver", "plan": "basic", "churn_score": 0.4}
    assert read["fields"]["customer.tier"]["source"] == "crm"
    assert read["fields"]["customer.churn_score"]["source"] == "churn-model"
    assert read["fields"]["customer.churn_score"]["age_ms"] > 0
    missing = client.get("/v1/customers/nobody/context", headers=auth)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


def test_events_feed_count_in_the_next_decision(client: httpx.Client, server: LiveServer) -> None:
    """Three failed payments in a week raise the retention desk's payment alert."""
    for _ in range(3):
        posted = client.post(
            "/v1/customers/c-pay/events",
            json={"type": "payment_failed"},
            headers=server.auth("integration"),
        )
        assert posted.status_code == 202, posted.text
    body = decide(client, server, customer_id="c-pay").json()
    assert "repeat-failed-payments" in {a["rule"] for a in body["alerts"]}
    other = decide(client, server, customer_id="c-no-events").json()
    assert "repeat-failed-payments" not in {a["rule"] for a in other["alerts"]}


def test_keys_and_roles(client: httpx.Client, server: LiveServer) -> None:
    """401 without a valid key, 403 for the wrong role or another agent's id."""
    body = {"ruleset": "retention-desk", "customer_id": "c-1", "agent_id": "agent-7"}
    assert client.post("/v1/decisions", json=body).status_code == 401
    bad = client.post("/v1/decisions", json=body, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and "WWW-Authenticate" in bad.headers
    wrong_role = client.post("/v1/decisions", json=body, headers=server.auth("auditor"))
    assert wrong_role.status_code == 403
    other_agent = client.post("/v1/decisions", json=body, headers=server.auth("agent2"))
    assert other_agent.status_code == 403
    assert "cannot act on agent 'agent-7'" in other_agent.json()["detail"]
    deploy = client.post(
        "/v1/rulesets",
        content=RETENTION,
        headers={**server.auth("auditor"), "content-type": "application/yaml"},
    )
    assert deploy.status_code == 403
    admin = client.post("/v1/decisions", json=body, headers=server.auth("admin"))
    assert admin.status_code == 200


def test_an_interaction_stays_on_the_revision_it_started_with(
    client: httpx.Client, server: LiveServer
) -> None:
    started = client.post(
        "/v1/interactions",
        json={"ruleset": "retention-desk", "customer_id": "c-pin", "agent_id": "agent-7"},
        headers=server.auth("agent"),
    )
    assert started.status_code == 201, started.text
    interaction = started.json()["interaction_id"]
    first = started.json()["revision"]
    changed = RETENTION.replace("max_amount: 25", "max_amount: 30", 1)
    deployed = client.post(
        "/v1/rulesets",
        content=changed,
        headers={**server.auth("author"), "content-type": "application/yaml"},
    )
    assert deployed.status_code == 201, deployed.text
    newer = deployed.json()["revision"]
    assert newer > first
    pinned = decide(client, server, customer_id="c-pin", interaction=interaction).json()
    fresh = decide(client, server, customer_id="c-other").json()
    assert (pinned["revision"], fresh["revision"]) == (first, newer)
    assert pinned["interaction_id"] == interaction
    mismatch = decide(client, server, customer_id="c-else", interaction=interaction)
    assert mismatch.status_code == 409
    ended = client.delete(f"/v1/interactions/{interaction}", headers=server.auth("agent"))
    assert ended.status_code == 204
    gone = decide(client, server, customer_id="c-pin", interaction=interaction)
    assert gone.status_code == 404
    explicit = decide(client, server, revision=first)
    assert explicit.status_code == 200 and explicit.json()["revision"] == first
    client.post(
        "/v1/rulesets/retention-desk/activate",
        json={"revision": first},
        headers=server.auth("author"),
    )


def test_twenty_deploys_under_concurrent_decisions(tmp_path: Path) -> None:
    """While 20 revisions are deployed, concurrent clients get only 2xx, and each response
    names a revision that was active at some moment between its request and its answer."""
    with LiveServer(tmp_path / "data") as server:
        # revision → (deploy request sent, deploy answered): it became active in between.
        deployed: dict[int, tuple[float, float]] = {}
        with httpx.Client(base_url=server.url, timeout=30) as c:
            first = c.get("/v1/rulesets/retention-desk", headers=server.auth("author")).json()
        deployed[first["active_revision"]] = (0.0, 0.0)
        lock = threading.Lock()
        stop = threading.Event()
        failures: list[str] = []
        answers: list[tuple[float, float, int]] = []

        def agent(n: int) -> None:
            with httpx.Client(base_url=server.url, timeout=30) as c:
                k = 0
                while not stop.is_set():
                    k += 1
                    sent = time.monotonic()
                    r = c.post(
                        "/v1/decisions",
                        json={
                            "ruleset": "retention-desk",
                            "customer_id": f"c-{n}-{k}",
                            "agent_id": "agent-7",
                        },
                        headers=server.auth("agent"),
                    )
                    got = time.monotonic()
                    if r.status_code != 200:
                        failures.append(f"{r.status_code}: {r.text[:200]}")
                    else:
                        with lock:
                            answers.append((sent, got, r.json()["revision"]))

        threads = [threading.Thread(target=agent, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        try:
            with httpx.Client(base_url=server.url, timeout=60) as c:
                for n in range(20):
                    text = RETENTION.replace("max_amount: 25", f"max_amount: {26 + n}", 1)
                    before = time.monotonic()
                    r = c.post(
                        "/v1/rulesets",
                        content=text,
                        headers={**server.auth("author"), "content-type": "application/yaml"},
                    )
                    after = time.monotonic()
                    assert r.status_code == 201, r.text
                    assert r.json()["activated"] is True
                    deployed[r.json()["revision"]] = (before, after)
                    time.sleep(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join()
    assert failures == []
    assert len(deployed) == 21
    revisions = sorted(deployed)
    for sent, got, revision in answers:
        # Revision R became active at some moment in its deploy's [before, after] and stayed
        # active until R+1's deploy did. The answer is consistent with "R was active at some
        # moment between the request and the answer" iff R could have been activated before
        # the answer (before_R <= got) and could still be active when the request was sent
        # (sent <= after_{R+1}).
        assert revision in deployed, revision
        index = revisions.index(revision)
        assert deployed[revision][0] <= got, (revision, sent, got)
        if index + 1 < len(revisions):
            assert sent <= deployed[revisions[index + 1]][1], (revision, sent, got)
    assert len({r for _, _, r in answers}) >= 10  # decisions really ran across the deploys


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        pytest.param(
            {"ruleset": "nope"}, 404, "no active revision of ruleset 'nope'", id="ruleset"
        ),
        pytest.param({"revision": 999}, 404, "has no revision 999", id="revision"),
        pytest.param({"interaction": "none"}, 404, "no live interaction", id="interaction"),
        pytest.param({"trace": "yes"}, 400, "Expected `bool`", id="wrong-type"),
        pytest.param({"customer": "c-1"}, 400, "unknown field `customer`", id="unknown-field"),
    ],
)
def test_bad_decision_requests_are_problem_details(
    client: httpx.Client, server: LiveServer, body: dict[str, Any], status: int, detail: str
) -> None:
    response = decide(client, server, **body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert detail in response.json()["detail"]


def test_canary_and_shadow_through_the_api(tmp_path: Path) -> None:
    """A canary serves its share of customers by a stable hash; a shadow's differences are
    recorded in the ledger and never returned; both changes are recorded with their author."""
    with LiveServer(tmp_path / "data") as server, httpx.Client(base_url=server.url) as c:
        author = {**server.auth("author"), "content-type": "application/yaml"}
        changed = RETENTION.replace("max_amount: 25", "max_amount: 40", 1)
        second = c.post("/v1/rulesets?activate=false", content=changed, headers=author)
        assert second.status_code == 201 and second.json()["activated"] is False
        rollout = c.post(
            "/v1/rulesets/retention-desk/rollout",
            json={"revision": 2, "percent": 30},
            headers=server.auth("author"),
        )
        assert rollout.status_code == 200, rollout.text
        assert rollout.json()["canary"] == {"revision": 2, "percent": 30}
        context = {"customer": {"tier": "gold"}, "history": {"contacts_7d": 3}}
        served = {}
        for k in range(200):
            r = c.post(
                "/v1/decisions",
                json={
                    "ruleset": "retention-desk",
                    "customer_id": f"cust-{k}",
                    "agent_id": "agent-7",
                    "context": context,
                },
                headers=server.auth("agent"),
            )
            served[f"cust-{k}"] = r.json()["revision"]
        share = sum(v == 2 for v in served.values()) / len(served)
        assert 0.18 < share < 0.42, share
        again = c.post(
            "/v1/decisions",
            json={"ruleset": "retention-desk", "customer_id": "cust-7", "agent_id": "agent-7"},
            headers=server.auth("agent"),
        )
        assert again.json()["revision"] == served["cust-7"]  # stable per customer
        c.post(
            "/v1/rulesets/retention-desk/rollout",
            json={"revision": 2, "percent": 0},
            headers=server.auth("author"),
        )
        # The shadow escalates repeat callers from their third contact instead of the fourth.
        escalating = RETENTION.replace(
            "when: history.contacts_7d >= 4", "when: history.contacts_7d >= 3", 1
        )
        assert escalating != RETENTION
        third = c.post("/v1/rulesets?activate=false", content=escalating, headers=author)
        assert third.status_code == 201, third.text
        shadow = c.post(
            "/v1/rulesets/retention-desk/rollout",
            json={"shadow": 3},
            headers=server.auth("author"),
        )
        assert shadow.json()["shadow"] == 3 and shadow.json()["canary"] is None
        decided = c.post(
            "/v1/decisions",
            json={
                "ruleset": "retention-desk",
                "customer_id": "cust-shadowed",
                "agent_id": "agent-7",
                "context": context,
            },
            headers=server.auth("agent"),
        ).json()
        assert decided["revision"] == 1
        assert decided["escalation"] is None  # the shadow's answer is not returned
        time.sleep(0.3)
        audit = server.auth("auditor")
        shadows = c.get("/v1/audit/decisions", params={"kind": "shadow"}, headers=audit).json()
        (record,) = shadows["records"]
        assert record["data"]["decision_id"] == decided["decision_id"]
        assert record["data"]["differences"]["escalation"] == {
            "served": None,
            "shadow": "repeat-caller",
        }
        changes = c.get("/v1/audit/decisions", params={"kind": "ruleset"}, headers=audit).json()
        actions = [r["data"]["action"] for r in changes["records"]]
        assert actions[:4] == ["shadow", "deploy", "rollout", "rollout"]
        assert all(r["actor"]["principal"] == "ann" for r in changes["records"][:4])


def test_workers_sharing_a_data_directory_serve_what_any_of_them_activated(
    tmp_path: Path,
) -> None:
    with (
        LiveServer(tmp_path / "data", workers=2) as server,
        httpx.Client(base_url=server.url, timeout=30) as c,
    ):
        changed = RETENTION.replace("max_amount: 25", "max_amount: 40", 1)
        deployed = c.post(
            "/v1/rulesets",
            content=changed,
            headers={**server.auth("author"), "content-type": "application/yaml"},
        )
        assert deployed.status_code == 201, deployed.text
        newer = deployed.json()["revision"]
        time.sleep(0.6)  # two routing polls
        served = set()
        for k in range(40):  # new connections: spread over both workers
            with httpx.Client(base_url=server.url, timeout=30) as fresh:
                served.add(decide(fresh, server, customer_id=f"c-w{k}").json()["revision"])
        assert served == {newer}


def test_a_trace_is_only_for_the_agent_handling_the_customer_and_pii_stays_masked(
    client: httpx.Client, server: LiveServer
) -> None:
    phone = "+447700900123"
    stored = client.put(
        "/v1/customers/c-trace/context",
        json={"values": {"customer": {"phone": phone, "tier": "gold"}}, "source": "crm"},
        headers=server.auth("integration"),
    )
    assert stored.status_code == 200, stored.text
    body = {
        "ruleset": "billing-disputes",
        "customer_id": "c-trace",
        "trace": True,
        "context": {"interaction": {"amount": 42}},
    }
    refused = decide(client, server, **body)
    assert refused.status_code == 403
    assert "not handling that customer" in refused.json()["detail"]
    assert phone not in refused.text
    started = client.post(
        "/v1/interactions",
        json={"ruleset": "billing-disputes", "customer_id": "c-trace", "agent_id": "agent-7"},
        headers=server.auth("agent"),
    )
    assert started.status_code == 201, started.text
    traced = decide(client, server, **body)
    assert traced.status_code == 200, traced.text
    reads = {
        path: value
        for rule in traced.json()["trace"]["rules"]
        for path, value in rule["reads"].items()
    }
    assert reads["customer.phone"].startswith("hmac-sha256:")
    assert reads["interaction.amount"] == 42  # not classified pii: shown as it is
    assert phone not in traced.text


def test_a_shadow_and_a_replay_see_an_offer_whose_parameters_changed(tmp_path: Path) -> None:
    """A candidate that only raises an offer's limit fires the same rules: the agent would
    still see another offer. The shadow records the difference for each decision, and a
    replay of the deployed revision over the last week counts each of them changed."""
    with LiveServer(tmp_path / "data") as server, httpx.Client(base_url=server.url) as c:
        author = {**server.auth("author"), "content-type": "application/yaml"}
        raised = RETENTION.replace("params: {max_amount: 25}", "params: {max_amount: 31}", 1)
        assert raised != RETENTION
        deployed = c.post("/v1/rulesets?activate=false", content=raised, headers=author)
        assert deployed.status_code == 201 and deployed.json()["revision"] == 2
        coverage = deployed.json()["coverage"]  # what the document's own tests reached
        assert 0 < coverage["reached"] < coverage["total"]
        assert coverage["unreached"]["tree_nodes"] == {
            "save-conversation": ["service-recovery", "let-go"]
        }
        shadow = c.post(
            "/v1/rulesets/retention-desk/rollout",
            json={"shadow": 2},
            headers=server.auth("author"),
        )
        assert shadow.status_code == 200, shadow.text
        waived = []
        for k in range(20):
            contacts = 2 + k % 2 if k % 4 else 0  # every fourth customer: no waiver
            body = c.post(
                "/v1/decisions",
                json={
                    "ruleset": "retention-desk",
                    "customer_id": f"cust-{k}",
                    "agent_id": "agent-7",
                    "context": {"customer": {"tier": "gold"}, "history": {"contacts_7d": contacts}},
                },
                headers=server.auth("agent"),
            ).json()
            assert body["revision"] == 1
            if any(e["rule"] == "fee-waiver" for e in body["eligible"]):
                waived.append(body["decision_id"])
        assert len(waived) == 15
        audit = server.auth("auditor")
        deadline = time.monotonic() + 10
        while True:
            shadows = c.get(
                "/v1/audit/decisions", params={"kind": "shadow", "limit": 100}, headers=audit
            ).json()["records"]
            if len(shadows) >= len(waived) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert sorted(r["data"]["decision_id"] for r in shadows) == sorted(waived)
        assert all(
            r["data"]["differences"]
            == {
                "params": {
                    "served": {"fee-waiver": {"max_amount": 25}},
                    "shadow": {"fee-waiver": {"max_amount": 31}},
                }
            }
            for r in shadows
        )
        report = c.post(
            "/v1/replays",
            json={"ruleset": "retention-desk", "revision": 2, "since": "7d"},
            headers=audit,
            timeout=60,
        )
        assert report.status_code == 200, report.text
        flips = report.json()
        assert (flips["replayed"], flips["changed"]) == (20, 15)
        assert [(p["change"], p["count"]) for p in flips["params"]] == [
            ('fee-waiver: {"max_amount":25} → {"max_amount":31}', 15)
        ]
        for body, detail in (
            ({"revision": 2, "since": "7d"}, "as a ruleset and a revision"),
            ({"ruleset": "retention-desk", "revision": 9, "since": "7d"}, "has no revision 9"),
            ({"ruleset": "retention-desk", "revision": 2, "since": "soon"}, "nor an age"),
        ):
            refused = c.post("/v1/replays", json=body, headers=audit)
            assert refused.status_code in (400, 404), refused.text
            assert detail in refused.json()["detail"]


def test_a_tree_question_says_what_its_answer_takes(
    client: httpx.Client, server: LiveServer
) -> None:
    """A question's answer field's type comes with it, and its allowed values when it has an
    enum, in the document's order: what a desktop needs to offer choices."""
    asked = decide(client, server, customer_id="c-ask").json()["next_step"]
    assert asked["answer"] == "answers.leave_reason"
    assert asked["answer_type"] == "string"
    assert asked["answer_enum"] == [
        "price",
        "competitor_offer",
        "moving_house",
        "poor_service",
        "no_longer_needed",
        "other",
    ]
    price = decide(
        client, server, customer_id="c-ask", answers={"leave_reason": "competitor_offer"}
    )
    following = price.json()["next_step"]
    assert following["answer"] == "answers.competitor_price"
    assert following["answer_type"] == "number" and "answer_enum" not in following


def test_a_decision_asked_for_lists_the_context_it_used_with_sources_and_ages(
    client: httpx.Client, server: LiveServer
) -> None:
    """With ``context_used``, the answer lists each field the decision read: its value, where
    it came from (the cache's source, or the request) and how old it was; a field it lacked
    is missing; each has a person's label. An agent handling the customer sees pii masked;
    one who is not sees every value masked."""
    client.put(
        "/v1/customers/c-used/context",
        json={
            "values": {"customer": {"tier": "gold", "churn_score": 0.9, "email": "a@b.example"}},
            "source": "crm",
            "as_of": "2026-01-01T00:00:00Z",
        },
        headers=server.auth("integration"),
    )
    body = {
        "ruleset": "retention-desk",
        "customer_id": "c-used",
        "agent_id": "agent-7",
        "context": {"history": {"contacts_7d": 3}},
        "context_used": True,
    }
    started = client.post("/v1/interactions", json=body, headers=server.auth("agent")).json()
    used = {u["field"]: u for u in started["context_used"]}
    assert used["customer.tier"]["value"] == "gold" and used["customer.tier"]["source"] == "crm"
    assert used["customer.tier"]["age_ms"] > 24 * 3600 * 1000
    assert used["history.contacts_7d"] == {
        "field": "history.contacts_7d",
        "label": "Contacts in the last 7 days",
        "value": 3,
        "source": "request",
        "age_ms": 0,
        "missing": False,
        "stale": False,
    }
    churn = used["customer.churn_score"]
    assert (
        churn["stale"] and churn["label"] == "Probability that the customer leaves within 90 days"
    )
    assert used["customer.email"]["value"].startswith("hmac-sha256:")
    tenure = used["customer.tenure_months"]
    assert tenure["missing"] and tenure["value"] is None
    assert tenure["label"] == "Months as a customer"
    assert set(started["missing_fields"]) <= {f for f, u in used.items() if u["missing"]}
    # Not asked for: not there.
    plain = decide(client, server, customer_id="c-used")
    assert "context_used" not in plain.json()
    # Another agent, not handling the customer: values masked, sources and ages still told.
    other = client.post(
        "/v1/decisions", json={**body, "agent_id": "agent-8"}, headers=server.auth("agent2")
    ).json()
    tier = next(u for u in other["context_used"] if u["field"] == "customer.tier")
    assert tier["value"].startswith("hmac-sha256:") and tier["source"] == "crm"

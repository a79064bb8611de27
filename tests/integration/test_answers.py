"""Every answer the server gives matches what its own /schema says, field by field: a real
session of each role (integration, agent, author, auditor) against a live server, each 2xx
body validated against the route's documented response schema. The server requires a second
author's approval of every deploy, so that pending revisions, approvals and rejections are
answered too.

schemathesis (tests/integration/test_schema_fuzz.py) checks the same for generated requests;
generated requests rarely make a decision that raises alerts or walks a tree, which this
session does on purpose.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest

from tests.support.documents import TINY
from tests.support.live_server import KEYS, LiveServer

AGENT = KEYS["agent"][0]
DOCUMENT = TINY


class Checked:
    """Requests to a live server whose 2xx answers are validated against its OpenAPI."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.client = httpx.Client(base_url=server.url, timeout=30)
        self.doc: dict[str, Any] = self.client.get("/schema/openapi.json").json()
        self.checked: set[tuple[str, str]] = set()

    def call(
        self, role: str, method: str, path: str, template: str | None = None, **kwargs: Any
    ) -> Any:
        response = self.client.request(method, path, headers=self.server.auth(role), **kwargs)
        assert response.is_success, (method, path, response.status_code, response.text)
        operation = self.doc["paths"][template or path][method.lower()]
        content = operation["responses"][str(response.status_code)]["content"]
        schema = {**content["application/json"]["schema"], "components": self.doc["components"]}
        body = response.json()
        errors = [
            f"{e.instance_path}: {e.message}"
            for e in jsonschema_rs.validator_for(schema).iter_errors(body)
        ]
        assert not errors, (method, template or path, errors[:5], body)
        self.checked.add((method, template or path))
        return body


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> Any:
    data = tmp_path_factory.mktemp("answers") / "data"
    env = {"FRONTLINE_RATE_LIMIT": "10000000", "FRONTLINE_REQUIRE_APPROVAL": "1"}
    with LiveServer(data, env=env) as server:
        yield Checked(server)


def test_every_answer_matches_the_schema(checked: Checked) -> None:
    c = checked
    context = "/v1/customers/{customer_id}/context"
    c.call(
        "integration",
        "PUT",
        "/v1/customers/c-1/context",
        context,
        json={
            "values": {"customer": {"tier": "gold", "churn_score": 0.95, "tenure_months": 40}},
            "source": "crm",
            "as_of": "2026-12-01T10:00:00Z",
        },
    )
    c.call(
        "integration",
        "PATCH",
        "/v1/customers/c-1/context",
        context,
        json={"values": {"history": {"contacts_7d": 3}}},
    )
    c.call(
        "integration",
        "POST",
        "/v1/customers/c-1/events",
        "/v1/customers/{customer_id}/events",
        json={"type": "payment_failed"},
    )
    started = c.call(
        "agent",
        "POST",
        "/v1/interactions",
        json={"ruleset": "retention-desk", "customer_id": "c-1", "agent_id": AGENT},
    )
    assert started["alerts"] and started["next_step"]["ask"]
    interaction = started["interaction_id"]
    decided = c.call(
        "agent",
        "POST",
        "/v1/decisions",
        json={
            "ruleset": "retention-desk",
            "customer_id": "c-1",
            "agent_id": AGENT,
            "interaction": interaction,
            "answers": {"leave_reason": "price"},
            "context": {"customer": {"monthly_spend": "a lot"}},  # invalid: reads as unknown
            "trace": True,
        },
    )
    assert decided["invalid_fields"] and decided["trace"] is not None
    c.call("agent", "GET", "/v1/customers/c-1/context", context)
    alert_id = started["alerts"][0]["alert_id"]
    deadline = time.monotonic() + 10
    while True:  # the interaction's alerts are delivered just after its answer
        response = c.client.post(
            f"/v1/alerts/{alert_id}/ack",
            json={"outcome": "acknowledged"},
            headers=c.server.auth("agent"),
        )
        if response.status_code != 404 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    c.call(
        "agent",
        "POST",
        f"/v1/alerts/{alert_id}/ack",
        "/v1/alerts/{alert_id}/ack",
        json={"outcome": "acted", "note": "offered the discount"},
    )
    c.call("agent", "POST", "/v1/stream-tickets")

    checked = c.call("author", "POST", "/v1/rulesets", content=DOCUMENT, params={"dry_run": 1})
    assert checked["dry_run"] and checked["revision"] is None
    deployed = c.call("author", "POST", "/v1/rulesets", content=DOCUMENT.encode())
    assert deployed["status"] == "pending"
    revision = "/v1/rulesets/{name}/revisions/{revision}"
    c.call("author2", "POST", "/v1/rulesets/tiny/revisions/1/approve", revision + "/approve")
    second = DOCUMENT.replace("offer: credit", "offer: bigger-credit")
    c.call("author", "POST", "/v1/rulesets", content=second.encode(), params={"activate": False})
    listed = c.call("author", "GET", "/v1/rulesets")
    assert any(r["pending"] for r in listed["rulesets"])
    detail = c.call("author2", "GET", "/v1/rulesets/tiny", "/v1/rulesets/{name}")
    assert detail["pending"][0]["diff"] and detail["pending"][0]["can_review"]
    c.call("author", "GET", "/v1/rulesets/tiny/revisions/2", revision)
    c.call("author", "GET", "/v1/rulesets/tiny/revisions/2/tests", revision + "/tests")
    c.call("author2", "POST", "/v1/rulesets/tiny/revisions/2/approve", revision + "/approve")
    c.call(
        "author",
        "POST",
        "/v1/rulesets/tiny/activate",
        "/v1/rulesets/{name}/activate",
        json={"revision": 1},
    )
    third = DOCUMENT.replace("offer: credit", "offer: third-credit")
    c.call("author", "POST", "/v1/rulesets", content=third, params={"message": "a third"})
    c.call(
        "author2",
        "POST",
        "/v1/rulesets/tiny/revisions/3/reject",
        revision + "/reject",
        json={"reason": "not this one"},
    )
    c.call(
        "author",
        "POST",
        "/v1/rulesets/tiny/rollout",
        "/v1/rulesets/{name}/rollout",
        json={"revision": 2, "percent": 10},
    )
    c.call(
        "author",
        "POST",
        "/v1/rulesets/tiny/rollout",
        "/v1/rulesets/{name}/rollout",
        json={"shadow": 2},
    )
    c.call(
        "author",
        "POST",
        "/v1/rulesets/tiny/activate",
        "/v1/rulesets/{name}/activate",
        json={"revision": deployed["revision"] + 1},
    )
    retired = c.call(
        "author",
        "POST",
        "/v1/rulesets/tiny/retire",
        "/v1/rulesets/{name}/retire",
        json={"reason": "replaced by the winter offers"},
    )
    assert retired["retired"]["retired_by"] == "ann"
    assert c.call("auditor", "GET", "/v1/rulesets")["rulesets"]
    assert c.call("auditor", "GET", "/v1/rulesets/tiny", "/v1/rulesets/{name}")["retired"]

    deadline = time.monotonic() + 10
    while True:  # the index follows the ledger within a fraction of a second
        page = c.call("auditor", "GET", "/v1/audit/decisions", params={"kind": "decision"})
        if len(page["records"]) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert any(r["context"] for r in page["records"])
    c.call("auditor", "GET", "/v1/audit/decisions", params={"kind": "ack"})
    c.call(
        "auditor",
        "GET",
        f"/v1/audit/decisions/{decided['decision_id']}",
        "/v1/audit/decisions/{decision_id}",
    )
    pack = c.call(
        "auditor",
        "GET",
        f"/v1/audit/decisions/{decided['decision_id']}/explanation",
        "/v1/audit/decisions/{decision_id}/explanation",
    )
    assert pack["reasons"] and pack["data"] and pack["rules"]
    c.call("auditor", "GET", "/v1/audit/verify")
    c.call(
        "auditor",
        "GET",
        f"/v1/audit/decisions/{decided['decision_id']}/proof",
        "/v1/audit/decisions/{decision_id}/proof",
    )
    erased = c.call(
        "admin",
        "POST",
        "/v1/audit/erasures",
        json={"customer_id": "c-never-seen", "reason": "a request with nothing to erase"},
    )
    assert erased["records"] == 0
    latest = c.call("auditor", "GET", "/v1/audit/checkpoints/latest")
    (head,) = latest["checkpoints"]
    c.call(
        "auditor",
        "GET",
        "/v1/audit/consistency",
        params={"instance": head["instance"], "from": 1, "to": head["tree_size"]},
    )
    document = (Path(__file__).parents[2] / "rulesets" / "retention-desk.yaml").read_text()
    c.call(
        "auditor",
        "POST",
        "/v1/replays",
        json={"document": document, "since": "2020-01-01T00:00:00Z"},
    )
    rerun = c.call(
        "author",
        "POST",
        f"/v1/audit/decisions/{decided['decision_id']}/rerun",
        "/v1/audit/decisions/{decision_id}/rerun",
        json={"document": document.replace("max_amount: 25", "max_amount: 35", 1)},
    )
    assert rerun["served"]["shown"]["eligible"] and rerun["changed"] == ["params"]
    every_json_route = {
        (method.upper(), path)
        for path, item in c.doc["paths"].items()
        for method, operation in item.items()
        if path.startswith("/v1/")
        and "application/json"
        in str(operation["responses"].get("200", {}).get("content", ""))
        + str(operation["responses"].get("201", {}).get("content", ""))
        + str(operation["responses"].get("202", {}).get("content", ""))
    }
    assert every_json_route <= c.checked, every_json_route - c.checked

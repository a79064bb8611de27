"""No access outside a role: every operation of the live OpenAPI document, called with a key
of every role and with none, is refused (401 without a key, 403 with a key of a role that
the HTTP API does not give it) or let through (anything but 401/403) exactly as the table
below says. A route added without a line here fails this test."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.support.live_server import LiveServer

ROLES = ("agent", "supervisor", "author", "auditor", "integration")

# (method, path template) → roles let through; admin is let through everywhere but the alert
# streams, which only their own agent or supervisor may open.
ALLOWED: dict[tuple[str, str], set[str]] = {
    ("post", "/v1/decisions"): {"agent"},
    ("post", "/v1/interactions"): {"agent"},
    ("delete", "/v1/interactions/{interaction_id}"): {"agent"},
    ("put", "/v1/customers/{customer_id}/context"): {"integration"},
    ("patch", "/v1/customers/{customer_id}/context"): {"integration"},
    # agents: only for a customer they are handling (none here), so refused too
    ("get", "/v1/customers/{customer_id}/context"): {"integration", "auditor"},
    ("post", "/v1/customers/{customer_id}/events"): {"integration"},
    ("get", "/v1/agents/{agent_id}/alerts"): {"agent"},
    ("post", "/v1/alerts/{alert_id}/ack"): {"agent"},
    ("get", "/v1/supervisors/{supervisor_id}/alerts"): {"supervisor"},
    ("post", "/v1/stream-tickets"): {"agent", "supervisor"},
    ("post", "/v1/rulesets"): {"author"},
    ("get", "/v1/rulesets"): {"author", "auditor"},
    ("get", "/v1/rulesets/{name}"): {"author", "auditor"},
    ("get", "/v1/rulesets/{name}/revisions/{revision}"): {"author", "auditor"},
    ("get", "/v1/rulesets/{name}/revisions/{revision}/tests"): {"author", "auditor"},
    ("post", "/v1/rulesets/{name}/activate"): {"author"},
    ("post", "/v1/rulesets/{name}/retire"): {"author"},
    ("post", "/v1/rulesets/{name}/rollout"): {"author"},
    # an author other than the revision's deployer; revision 1 is not pending here (409)
    ("post", "/v1/rulesets/{name}/revisions/{revision}/approve"): {"author"},
    ("post", "/v1/rulesets/{name}/revisions/{revision}/reject"): {"author"},
    ("get", "/v1/audit/decisions"): {"auditor"},
    ("get", "/v1/audit/decisions/{decision_id}"): {"auditor"},
    ("get", "/v1/audit/verify"): {"auditor"},
    ("get", "/v1/audit/decisions/{decision_id}/proof"): {"auditor"},
    ("get", "/v1/audit/decisions/{decision_id}/explanation"): {"auditor"},
    ("get", "/v1/audit/checkpoints/latest"): {"auditor"},
    ("get", "/v1/audit/consistency"): {"auditor"},
    ("post", "/v1/audit/erasures"): {"admin"},
    ("post", "/v1/replays"): {"author", "auditor"},
    ("post", "/v1/audit/decisions/{decision_id}/rerun"): {"author", "auditor"},
}
OPEN = {("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics")}
VALUES = {
    "interaction_id": "i-none",
    "customer_id": "c-roles",
    "agent_id": "agent-8",  # another agent's stream: the agent key is refused, never streamed
    "supervisor_id": "other-lead",  # likewise another supervisor's
    "alert_id": "a-none",
    "name": "retention-desk",
    "revision": "1",
    "decision_id": "d-none",
}


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: VALUES[m.group(1)], path)


def test_every_operation_admits_exactly_its_roles(server: LiveServer) -> None:
    schema: dict[str, Any] = httpx.get(server.url + "/schema/openapi.json").json()
    operations = {
        (method, path)
        for path, item in schema["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert operations - OPEN == set(ALLOWED), "the role table is out of date"
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for (method, path), allowed in ALLOWED.items():
            url = concrete(path)
            anonymous = client.request(method, url, json={})
            assert anonymous.status_code == 401, (method, path, anonymous.status_code)
            for role in ROLES:
                if (method, path, role) in (
                    ("get", "/v1/agents/{agent_id}/alerts", "agent"),
                    ("get", "/v1/supervisors/{supervisor_id}/alerts", "supervisor"),
                ):
                    url_for_role = concrete(path)  # a key on another person's stream
                    expected_refused = True
                else:
                    url_for_role = url
                    expected_refused = role not in allowed
                response = client.request(method, url_for_role, json={}, headers=server.auth(role))
                if expected_refused:
                    assert response.status_code == 403, (method, path, role, response.text)
                else:
                    assert response.status_code not in (401, 403), (method, path, role)

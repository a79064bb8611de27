"""Four-eyes deploys against a real server (FRONTLINE_REQUIRE_APPROVAL=1, two authors: ann
and bob): a deploy answers 202 and serves nobody; its deployer cannot approve it (403);
another author's approval activates it; a rejected revision is never activated; neither a
pending revision nor a rejected one can be activated or rolled out; the ledger holds the
deploy, the approval and the rejection; the pending state survives a restart and is shared
by two instances on one Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.documents import TINY
from tests.support.live_server import KEYS, ROOT, LiveServer
from tests.support.redis import URL as REDIS_URL
from tests.support.redis import delete_prefix, require_redis

RETENTION = (ROOT / "rulesets" / "retention-desk.yaml").read_text(encoding="utf-8")
AGENT = KEYS["agent"][0]
APPROVAL = {"FRONTLINE_REQUIRE_APPROVAL": "1"}
BASE = "/v1/rulesets/retention-desk"


def document(amount: int) -> bytes:
    changed = RETENTION.replace("max_amount: 25", f"max_amount: {amount}", 1)
    assert changed != RETENTION
    return changed.encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data: Path = tmp_path_factory.mktemp("approval")
    with LiveServer(data, env=APPROVAL) as live:
        yield live


class As:
    """Requests to one server with one role's key."""

    def __init__(self, server: LiveServer, role: str) -> None:
        self.server, self.role = server, role

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self._send("POST", path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self._send("GET", path, **kwargs)

    def deploy(self, body: bytes) -> httpx.Response:
        return self.post("/v1/rulesets", content=body, headers={"Content-Type": "application/yaml"})

    def _send(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        sent = {**self.server.auth(self.role), **(headers or {})}
        return httpx.request(method, self.server.url + path, headers=sent, timeout=30, **kwargs)


def served(server: LiveServer, customer_id: str = "c-approval") -> int:
    response = httpx.post(
        server.url + "/v1/decisions",
        json={"ruleset": "retention-desk", "customer_id": customer_id, "agent_id": AGENT},
        headers=server.auth("agent"),
    )
    assert response.status_code == 200, response.text
    revision: int = response.json()["revision"]
    return revision


def pending_of(reader: As, path: str = BASE) -> list[dict[str, Any]]:
    response = reader.get(path)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["pending"]
    return found


def test_a_deploy_waits_for_another_authors_approval(server: LiveServer) -> None:
    ann, bob = As(server, "author"), As(server, "author2")
    before = served(server)
    response = ann.deploy(document(30))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "pending" and body["name"] == "retention-desk"
    assert body["digest"].startswith("sha256:") and body["tests"]["failed"] == 0
    assert body["test_results"] and all(t["passed"] for t in body["test_results"])
    revision = body["revision"]
    assert served(server) == before  # stored, not serving

    # Who deployed it, when, what it changes and its tests, for the reviewers to read.
    (pending,) = pending_of(bob)
    assert pending["revision"] == revision and pending["deployed_by"] == "ann"
    assert pending["deployed_at"] and pending["against"] == before
    removed = [line for line in pending["diff"].splitlines() if line.startswith("-  ")]
    added = [line for line in pending["diff"].splitlines() if line.startswith("+  ")]
    assert pending["diff"].startswith(f"--- retention-desk revision {before}\n")
    assert len(removed) == len(added) == 1
    assert "max_amount: 25" in removed[0] and "max_amount: 30" in added[0]
    assert pending["tests"]["failed"] == 0 and pending["can_review"] is True
    assert pending_of(ann)[0]["can_review"] is False
    listed = {r["name"]: r for r in bob.get("/v1/rulesets").json()["rulesets"]}
    assert [p["revision"] for p in listed["retention-desk"]["pending"]] == [revision]

    # Neither activated nor rolled out while pending, by anyone.
    for who in (ann, bob):
        refused = who.post(BASE + "/activate", json={"revision": revision})
        assert refused.status_code == 409 and "needs approval" in refused.json()["detail"]
        refused = who.post(BASE + "/rollout", json={"revision": revision, "percent": 50})
        assert refused.status_code == 409 and "needs approval" in refused.json()["detail"]
    refused = ann.post(BASE + "/rollout", json={"shadow": revision})
    assert refused.status_code == 409
    # Nor does it decide when a decision names it.
    named = httpx.post(
        server.url + "/v1/decisions",
        json={
            "ruleset": "retention-desk",
            "customer_id": "c-approval",
            "agent_id": AGENT,
            "revision": revision,
        },
        headers=server.auth("agent"),
    )
    assert named.status_code == 409 and "needs approval" in named.json()["detail"]

    # The deployer approving their own revision: a plain 403.
    own = ann.post(f"{BASE}/revisions/{revision}/approve")
    assert own.status_code == 403, own.text
    assert own.json()["detail"] == (
        f"revision {revision} of ruleset 'retention-desk' was deployed by 'ann', who cannot "
        "approve it: another author must"
    )
    assert ann.post(f"{BASE}/revisions/{revision}/reject").status_code == 403
    assert served(server) == before

    # Another author approves: it serves.
    approved = bob.post(f"{BASE}/revisions/{revision}/approve")
    assert approved.status_code == 200, approved.text
    answer = approved.json()
    assert answer["status"] == "approved" and answer["decided_by"] == "bob"
    assert answer["active_revision"] == revision and answer["deployed_by"] == "ann"
    assert served(server) == revision
    assert pending_of(bob) == []
    again = bob.post(f"{BASE}/revisions/{revision}/approve")
    assert again.status_code == 409 and "not pending approval" in again.json()["detail"]

    # Rolling back to the revision that served before is allowed.
    back = ann.post(BASE + "/activate", json={"revision": before})
    assert back.status_code == 200 and served(server) == before
    assert ann.post(BASE + "/activate", json={"revision": revision}).status_code == 200


def test_a_rejected_revision_can_never_be_activated(server: LiveServer) -> None:
    ann, bob = As(server, "author"), As(server, "author2")
    before = served(server)
    revision = ann.deploy(document(40)).json()["revision"]
    rejected = bob.post(
        f"{BASE}/revisions/{revision}/reject", json={"reason": "forty is more than we give"}
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["reason"] == "forty is more than we give"
    for attempt in (
        ann.post(BASE + "/activate", json={"revision": revision}),
        bob.post(BASE + "/rollout", json={"revision": revision, "percent": 10}),
        bob.post(f"{BASE}/revisions/{revision}/approve"),
        bob.post(f"{BASE}/revisions/{revision}/reject"),
        ann.deploy(document(40)),
    ):
        assert attempt.status_code == 409, attempt.text
    refused = ann.post(BASE + "/activate", json={"revision": revision})
    assert "rejected by 'bob'" in refused.json()["detail"]
    assert "approv" in refused.json()["detail"]
    assert served(server) == before
    states = {r["revision"]: r["review"] for r in bob.get(BASE).json()["revisions"]}
    assert states[revision]["status"] == "rejected" and states[revision]["decided_by"] == "bob"
    assert states[1] is None  # the starter revision: deployed without approval being asked
    # A reject without a body (no reason) is taken too.
    second = ann.deploy(document(41)).json()["revision"]
    plain = bob.post(f"{BASE}/revisions/{second}/reject")
    assert plain.status_code == 200 and plain.json()["reason"] is None


def test_unknown_rulesets_and_revisions_answer_404(server: LiveServer) -> None:
    bob = As(server, "author2")
    assert bob.post(f"{BASE}/revisions/999/approve").status_code == 404
    assert bob.post("/v1/rulesets/no-such-ruleset/revisions/1/reject").status_code == 404
    starter = bob.post(f"{BASE}/revisions/1/approve")  # deployed without approval asked
    assert starter.status_code == 409


def test_the_ledger_holds_the_deploy_the_approval_and_the_rejection(server: LiveServer) -> None:
    ann, bob = As(server, "author"), As(server, "author2")
    approved = ann.deploy(document(33)).json()["revision"]
    assert bob.post(f"{BASE}/revisions/{approved}/approve").status_code == 200
    rejected = ann.deploy(document(34)).json()["revision"]
    assert bob.post(f"{BASE}/revisions/{rejected}/reject", json={"reason": "no"}).status_code
    auditor = As(server, "auditor")
    deadline = time.monotonic() + 10
    while True:  # the index follows the ledger within a fraction of a second
        records = auditor.get(
            "/v1/audit/decisions",
            params={"kind": "ruleset", "ruleset": "retention-desk", "limit": 50},
        ).json()["records"]
        actions = {(r["data"]["action"], r["ruleset"]["revision"]): r for r in records}
        if ("reject", rejected) in actions or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    deploy = actions[("deploy", approved)]
    assert deploy["actor"] == {"principal": "ann", "role": "author"}
    assert deploy["data"]["status"] == "pending" and deploy["ruleset"]["digest"]
    approval = actions[("approve", approved)]
    assert approval["actor"]["principal"] == "bob" and approval["data"]["decision"] == "approved"
    assert approval["data"]["deployed_by"] == "ann" and approval["recorded_at"]
    assert approval["data"]["routing"]["active"] == approved
    rejection = actions[("reject", rejected)]
    assert rejection["actor"]["principal"] == "bob"
    assert rejection["data"]["decision"] == "rejected" and rejection["data"]["reason"] == "no"
    assert rejection["ruleset"]["digest"] == actions[("deploy", rejected)]["ruleset"]["digest"]
    verified = auditor.get("/v1/audit/verify")
    assert verified.status_code == 200 and verified.json()["ok"], verified.text


def test_a_pending_revision_stays_pending_across_a_restart(tmp_path: Path) -> None:
    with LiveServer(tmp_path / "data", env=APPROVAL) as live:
        before = served(live)
        revision = As(live, "author").deploy(document(35)).json()["revision"]
    with LiveServer(tmp_path / "data", env=APPROVAL) as live:
        (pending,) = pending_of(As(live, "author2"))
        assert pending["revision"] == revision and pending["deployed_by"] == "ann"
        assert served(live) == before
        refused = As(live, "author").post(BASE + "/activate", json={"revision": revision})
        assert refused.status_code == 409
        approved = As(live, "author2").post(f"{BASE}/revisions/{revision}/approve")
        assert approved.status_code == 200 and served(live) == revision


def test_two_instances_on_one_redis_share_what_is_pending(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Deployed through one instance, pending on both; approved through the other, served by
    both."""
    require_redis()
    prefix = f"t-{uuid.uuid4().hex[:8]}:"
    servers: list[LiveServer] = []
    try:
        for name in ("a", "b"):
            env = {
                **APPROVAL,
                "REDIS_URL": REDIS_URL,
                "FRONTLINE_REDIS_PREFIX": prefix,
                "FRONTLINE_INSTANCE": f"approval-{name}-{prefix[2:-1]}",
            }
            servers.append(LiveServer(tmp_path_factory.mktemp(name), env=env).start())
        a, b = servers
        before = served(a)
        revision = As(a, "author").deploy(document(36)).json()["revision"]
        (pending,) = pending_of(As(b, "author2"))
        assert pending["revision"] == revision and served(b) == before
        refused = As(b, "author").post(f"{BASE}/revisions/{revision}/approve")
        assert refused.status_code == 403
        assert As(b, "author2").post(f"{BASE}/revisions/{revision}/approve").status_code == 200
        deadline = time.monotonic() + 2
        while served(a) != revision:
            assert time.monotonic() < deadline, "the approval did not reach the other instance"
            time.sleep(0.01)
        assert pending_of(As(a, "author")) == []
    finally:
        for server in servers:
            server.stop()
        delete_prefix(prefix)


def test_a_new_ruleset_waiting_for_its_first_approval_keeps_the_server_ready(
    server: LiveServer,
) -> None:
    ann, bob = As(server, "author"), As(server, "author2")
    deployed = ann.deploy(TINY.encode())
    assert deployed.status_code == 202, deployed.text
    ready = httpx.get(server.url + "/readyz")
    assert ready.status_code == 200, ready.text
    (pending,) = pending_of(bob, "/v1/rulesets/tiny")
    assert pending["against"] is None and pending["diff"].startswith("--- /dev/null")
    decided = bob.post("/v1/rulesets/tiny/revisions/1/approve")
    assert decided.status_code == 200 and decided.json()["active_revision"] == 1

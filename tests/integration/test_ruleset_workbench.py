"""What the rulesets page builds on, over HTTP: a dry run checks a draft as a deploy would and
stores nothing; errors name the author's file; every revision says who deployed it, when and
why; a retired ruleset serves nobody until a revision is activated again; a draft runs
against a recorded decision's inputs beside the answer that was served."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.support.documents import TINY
from tests.support.live_server import KEYS, LiveServer

YAML = {"content-type": "application/yaml"}
BROKEN = TINY.replace('customer.tier == "gold"', 'customer.tier == "gold" and customer.tenur > 3')
FAILING = TINY.replace("expect: {eligible: [gold-credit]}", "expect: {eligible: []}")


def post_document(
    client: httpx.Client, server: LiveServer, text: str, role: str = "author", **params: object
) -> httpx.Response:
    return client.post(
        "/v1/rulesets",
        content=text,
        params=params,
        headers={**server.auth(role), **YAML},
    )


def listed(client: httpx.Client, server: LiveServer) -> dict[str, dict[str, object]]:
    found = client.get("/v1/rulesets", headers=server.auth("author")).json()["rulesets"]
    return {r["name"]: r for r in found}


def test_a_dry_run_answers_like_a_deploy_and_stores_nothing(
    client: httpx.Client, server: LiveServer
) -> None:
    """A dry run of a good document answers 200 with the deploy's checks, revision null and
    dry_run true; nothing is stored, so the ruleset does not exist afterwards."""
    document = TINY.replace("ruleset: tiny", "ruleset: dry-only")
    checked = post_document(client, server, document, dry_run="true")
    assert checked.status_code == 200, checked.text
    body = checked.json()
    assert body["revision"] is None and body["dry_run"] is True
    assert (body["name"], body["created"], body["activated"]) == ("dry-only", False, False)
    assert body["tests"] == {"passed": 1, "failed": 0}
    assert body["digest"].startswith("sha256:") and body["coverage"]["total"] >= 1
    assert "dry-only" not in listed(client, server)
    deployed = post_document(client, server, document).json()
    assert deployed["digest"] == body["digest"] and "dry_run" not in deployed


@pytest.mark.parametrize(
    ("document", "title", "message"),
    [
        pytest.param(BROKEN, "Invalid ruleset", "unknown field 'customer.tenur'", id="error"),
        pytest.param(FAILING, "Deploy refused", "test 'gold gets the credit' failed", id="test"),
    ],
)
def test_a_dry_run_refuses_as_a_deploy_does_naming_the_file(
    client: httpx.Client, server: LiveServer, document: str, title: str, message: str
) -> None:
    """A draft with an error or a failing test answers the deploy's 422, each problem
    located in the file the author named; nothing is stored."""
    named = document.replace("ruleset: tiny", "ruleset: dry-refused")
    for dry in ("true", "false"):
        refused = post_document(client, server, named, dry_run=dry, filename="rules.yaml")
        assert refused.status_code == 422, refused.text
        problem = refused.json()
        assert problem["title"] == title
        (error,) = problem["errors"]
        assert error["file"] == "rules.yaml" and error["message"].startswith(message)
        assert "<request>" not in problem["detail"]
    assert "dry-refused" not in listed(client, server)


def test_an_error_names_the_file_at_its_line_and_column(
    client: httpx.Client, server: LiveServer
) -> None:
    """The 422 of a deploy sent with filename= reads rules.yaml:line:col in its detail."""
    refused = post_document(client, server, BROKEN, filename="rules.yaml")
    assert refused.status_code == 422
    error = refused.json()["errors"][0]
    assert error["line"] == 7 and error["file"] == "rules.yaml"
    assert f"rules.yaml:7:{error['column']}: unknown field" in refused.json()["detail"]


@pytest.mark.parametrize(
    "filename",
    [
        pytest.param("../etc/passwd", id="a path"),
        pytest.param("dir/rules.yaml", id="a directory"),
        pytest.param(".hidden.yaml", id="hidden"),
        pytest.param("r" * 101, id="too long"),
        pytest.param("rules\n.yaml", id="a line break"),
    ],
)
def test_a_filename_that_is_not_a_plain_file_name_is_refused(
    client: httpx.Client, server: LiveServer, filename: str
) -> None:
    """filename= takes a plain file name of at most 100 characters: anything else is a 400,
    for a deploy and a dry run alike."""
    for dry in ("true", "false"):
        refused = post_document(client, server, TINY, dry_run=dry, filename=filename)
        assert refused.status_code == 400, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")


def test_a_dry_run_needs_no_second_author(tmp_path: Path) -> None:
    """With approval required, a dry run still answers 200 at once, and nothing waits for
    approval afterwards."""
    env = {"FRONTLINE_REQUIRE_APPROVAL": "1"}
    with LiveServer(tmp_path / "data", env=env) as live, httpx.Client(base_url=live.url) as c:
        document = TINY.replace("ruleset: tiny", "ruleset: dry-approval")
        checked = post_document(c, live, document, dry_run="true")
        assert checked.status_code == 200, checked.text
        assert "status" not in checked.json()
        assert "dry-approval" not in listed(c, live)


def test_every_revision_says_who_deployed_it_when_and_why(
    client: httpx.Client, server: LiveServer
) -> None:
    """A deploy's message is kept with its revision: the history and the revision's document
    name the key's principal, an RFC 3339 time and the message (null without one); the
    starter library's revisions say where they came from."""
    first = TINY.replace("ruleset: tiny", "ruleset: told")
    second = first.replace("offer: credit", "offer: bigger-credit")
    why = "credit for gold customers, as agreed with retention on 3 Dec"
    assert post_document(client, server, first, message=why).status_code == 201
    assert post_document(client, server, second).status_code == 201
    author = server.auth("author")
    history = client.get("/v1/rulesets/told", headers=author).json()["revisions"]
    assert [(r["deployed_by"], r["message"]) for r in history] == [("ann", why), ("ann", None)]
    assert all(datetime.fromisoformat(r["deployed_at"]).tzinfo for r in history)
    document = client.get("/v1/rulesets/told/revisions/1", headers=author).json()
    assert (document["deployed_by"], document["message"]) == ("ann", why)
    assert document["deployed_at"] == history[0]["deployed_at"]
    starter = client.get("/v1/rulesets/retention-desk", headers=author).json()["revisions"][0]
    assert starter["deployed_by"] is None
    assert starter["message"] == "the starter library: retention-desk.yaml"


def test_a_message_longer_than_500_characters_is_refused(
    client: httpx.Client, server: LiveServer
) -> None:
    """message= is at most 500 characters: a longer one is a 400 and nothing is stored."""
    document = TINY.replace("ruleset: tiny", "ruleset: too-told")
    refused = post_document(client, server, document, message="x" * 501)
    assert refused.status_code == 400, refused.text
    assert "too-told" not in listed(client, server)


def test_an_activation_says_who_made_it_and_when(client: httpx.Client, server: LiveServer) -> None:
    """After a rollback, the ruleset names who made what serves now, and when."""
    first = TINY.replace("ruleset: tiny", "ruleset: rolled")
    assert post_document(client, server, first).status_code == 201
    second = first.replace("offer: credit", "offer: bigger-credit")
    assert post_document(client, server, second).status_code == 201
    rolled = client.post(
        "/v1/rulesets/rolled/activate", json={"revision": 1}, headers=server.auth("author2")
    )
    assert rolled.status_code == 200, rolled.text
    detail = client.get("/v1/rulesets/rolled", headers=server.auth("auditor")).json()
    assert (detail["active_revision"], detail["changed_by"]) == (1, "bob")
    assert detail["changed_at"] == rolled.json()["changed_at"] and detail["retired"] is None
    assert [(c["action"], c["changed_by"], c["active_revision"]) for c in detail["changes"]] == [
        ("rollback", "bob", 1),
        ("deploy", "ann", 2),
        ("deploy", "ann", 1),
    ]
    assert detail["changes"][0]["changed_at"] == detail["changed_at"]


def decide(client: httpx.Client, server: LiveServer, ruleset: str) -> httpx.Response:
    return client.post(
        "/v1/decisions",
        json={"ruleset": ruleset, "customer_id": "c-retired", "agent_id": "agent-7"},
        headers=server.auth("agent"),
    )


def test_a_retired_ruleset_serves_nobody_until_a_revision_is_activated(
    client: httpx.Client, server: LiveServer
) -> None:
    """Retired: decisions and interactions get a 409 naming the ruleset, when and by whom;
    the list shows it retired, its revisions stay readable, a canary is refused; activating
    a revision brings it back, and so does deploying its document again."""
    document = TINY.replace("ruleset: tiny", "ruleset: retiring")
    assert post_document(client, server, document).status_code == 201
    assert decide(client, server, "retiring").status_code == 200
    author = server.auth("author")
    why = "replaced by the winter offers"
    retired = client.post("/v1/rulesets/retiring/retire", json={"reason": why}, headers=author)
    assert retired.status_code == 200, retired.text
    state = retired.json()["retired"]
    assert (state["reason"], state["retired_by"]) == (why, "ann")
    refused = decide(client, server, "retiring")
    assert refused.status_code == 409
    assert refused.json()["title"] == "Ruleset retired"
    assert refused.json()["detail"] == (
        f"ruleset 'retiring' was retired at {state['retired_at']} by ann ({why}) and serves "
        "no decisions; an author brings it back by activating a revision"
    )
    started = client.post(
        "/v1/interactions",
        json={"ruleset": "retiring", "customer_id": "c-retired", "agent_id": "agent-7"},
        headers=server.auth("agent"),
    )
    assert started.status_code == 409 and "retired" in started.json()["detail"]
    assert listed(client, server)["retiring"]["retired"] == state
    assert client.get("/v1/rulesets/retiring/revisions/1", headers=author).status_code == 200
    canary = client.post(
        "/v1/rulesets/retiring/rollout", json={"revision": 1, "percent": 10}, headers=author
    )
    assert canary.status_code == 409, canary.text
    again = client.post("/v1/rulesets/retiring/retire", json={"reason": why}, headers=author)
    assert again.status_code == 409
    back = client.post("/v1/rulesets/retiring/activate", json={"revision": 1}, headers=author)
    assert back.status_code == 200 and back.json()["retired"] is None
    changes = client.get("/v1/rulesets/retiring", headers=author).json()["changes"]
    assert [(c["action"], c["retired"]) for c in changes] == [
        ("activate", None),
        ("retire", why),
        ("deploy", None),
    ]
    assert decide(client, server, "retiring").status_code == 200
    client.post("/v1/rulesets/retiring/retire", json={"reason": why}, headers=author)
    redeployed = post_document(client, server, document)
    assert redeployed.status_code == 200 and redeployed.json()["activated"] is True
    assert decide(client, server, "retiring").status_code == 200


@pytest.mark.parametrize(
    ("name", "body", "status"),
    [
        pytest.param("no-such-ruleset", {"reason": "gone"}, 404, id="unknown ruleset"),
        pytest.param("retention-desk", {}, 400, id="no reason"),
        pytest.param("retention-desk", {"reason": ""}, 400, id="empty reason"),
        pytest.param("retention-desk", {"reason": "x" * 501}, 400, id="long reason"),
    ],
)
def test_a_retirement_needs_a_ruleset_and_a_reason(
    client: httpx.Client, server: LiveServer, name: str, body: dict[str, str], status: int
) -> None:
    """Retiring an unknown ruleset is a 404; a reason is required, 1 to 500 characters."""
    refused = client.post(f"/v1/rulesets/{name}/retire", json=body, headers=server.auth("author"))
    assert refused.status_code == status, refused.text
    assert listed(client, server)["retention-desk"]["retired"] is None


RETENTION = (Path(__file__).parents[2] / "rulesets" / "retention-desk.yaml").read_text()


@pytest.fixture(scope="module")
def decided(server: LiveServer) -> str:
    """A decision of the starter retention-desk that offers the fee waiver."""
    made = httpx.post(
        server.url + "/v1/decisions",
        json={
            "ruleset": "retention-desk",
            "customer_id": "c-rerun",
            "agent_id": "agent-7",
            "context": {
                "customer": {"tier": "gold", "churn_score": 0.9, "tenure_months": 30},
                "history": {"contacts_7d": 3},
            },
        },
        headers=server.auth("agent"),
    )
    assert made.status_code == 200, made.text
    assert "fee-waiver" in {e["rule"] for e in made.json()["eligible"]}
    decision_id: str = made.json()["decision_id"]
    return decision_id


def rerun(
    client: httpx.Client, server: LiveServer, decision_id: str, role: str = "author", **body: object
) -> httpx.Response:
    return client.post(
        f"/v1/audit/decisions/{decision_id}/rerun",
        json=body,
        params={"filename": "draft.yaml"},
        headers=server.auth(role),
    )


def test_a_draft_run_on_a_recorded_decision_shows_what_it_changes(
    client: httpx.Client, server: LiveServer, decided: str
) -> None:
    """A draft that raises the fee waiver's cap, run on a recorded decision, shows the
    agent's answer beside the draft's and names the offer parameters as what differs."""
    draft = RETENTION.replace("params: {max_amount: 25}", "params: {max_amount: 35}", 1)
    ran = rerun(client, server, decided, document=draft)
    assert ran.status_code == 200, ran.text
    body = ran.json()
    assert (body["decision_id"], body["ruleset"]) == (decided, "retention-desk")
    assert body["served"]["revision"] == 1 and body["draft"]["revision"] is None
    assert body["served"]["shown"]["params"]["fee-waiver"] == {"max_amount": 25}
    assert body["draft"]["shown"]["params"]["fee-waiver"] == {"max_amount": 35}
    assert body["changed"] == ["params"]
    assert body["differences"] == {
        "params": {
            "served": {"fee-waiver": {"max_amount": 25}},
            "draft": {"fee-waiver": {"max_amount": 35}},
        }
    }


@pytest.mark.parametrize("role", ["author", "auditor"])
def test_the_served_revision_run_again_changes_nothing(
    client: httpx.Client, server: LiveServer, decided: str, role: str
) -> None:
    """The revision that served, run again on its own decision (as a document or by its
    number), shows exactly what the agent was shown."""
    for candidate in ({"document": RETENTION}, {"ruleset": "retention-desk", "revision": 1}):
        ran = rerun(client, server, decided, role, **candidate)
        assert ran.status_code == 200, ran.text
        body = ran.json()
        assert body["changed"] == [] and body["differences"] == {}
        assert body["draft"]["shown"] == body["served"]["shown"]
        assert body["draft"]["digest"] == body["served"]["digest"]
    assert body["draft"]["revision"] == 1


@pytest.mark.parametrize(
    ("decision", "body", "status", "says"),
    [
        pytest.param("d-none", {"document": RETENTION}, 404, "no record 'd-none'", id="unknown"),
        pytest.param(
            None,
            {"document": RETENTION.replace("history.contacts_7d >= 2", "history.contact >= 2")},
            422,
            "draft.yaml:",
            id="a document with an error",
        ),
        pytest.param(None, {"document": TINY}, 422, "ruleset 'tiny'", id="another ruleset"),
        pytest.param(
            None, {"ruleset": "retention-desk", "revision": 99}, 404, "no revision", id="no rev"
        ),
        pytest.param(None, {}, 400, "give the candidate", id="no candidate"),
    ],
)
def test_a_rerun_refuses_what_it_cannot_run(
    client: httpx.Client,
    server: LiveServer,
    decided: str,
    decision: str | None,
    body: dict[str, object],
    status: int,
    says: str,
) -> None:
    """An unknown decision or revision is a 404; a document with errors (located in the
    named file) or of another ruleset a 422; no candidate a 400."""
    refused = rerun(client, server, decision or decided, **body)
    assert refused.status_code == status, refused.text
    assert says in refused.json()["detail"]


def frontline(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    """The frontline command, with an author's key, against the live server."""
    env = {**os.environ, "FRONTLINE_KEY": KEYS["author"][1], "FRONTLINE_URL": server.url}
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_the_command_line_deploys_with_a_message_and_names_the_file(
    client: httpx.Client, server: LiveServer, tmp_path: Path
) -> None:
    """frontline deploy sends the file's name and the message (a dry run stores nothing);
    its errors read FILE:line:col; frontline retire retires with a reason."""
    path = tmp_path / "cli-desk.yaml"
    path.write_text(TINY.replace("ruleset: tiny", "ruleset: cli-desk"))
    checked = frontline(server, "deploy", str(path), "--dry-run")
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["dry_run"] is True
    assert "cli-desk" not in listed(client, server)
    done = frontline(server, "deploy", str(path), "-m", "from the command line")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["revision"] == 1
    history = client.get("/v1/rulesets/cli-desk", headers=server.auth("auditor")).json()
    assert history["revisions"][0]["message"] == "from the command line"
    path.write_text(BROKEN.replace("ruleset: tiny", "ruleset: cli-desk"))
    refused = frontline(server, "deploy", str(path))
    assert refused.returncode == 1
    assert "\ncli-desk.yaml:7:39: unknown field 'customer.tenur'" in refused.stderr
    retired = frontline(server, "retire", "cli-desk", "--reason", "a test of the command")
    assert retired.returncode == 0, retired.stderr
    assert json.loads(retired.stdout)["retired"]["reason"] == "a test of the command"

"""What the rulesets page builds on, over HTTP: a dry run checks a draft as a deploy would and
stores nothing; errors name the author's file; every revision says who deployed it, when and
why; a retired ruleset serves nobody until a revision is activated again; a draft runs
against a recorded decision's inputs beside the answer that was served."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.documents import TINY
from tests.support.live_server import LiveServer

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

"""Bad input never reaches a 500: each kind gets a problem-details 4xx naming what is wrong."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.live_server import ROOT, LiveServer

DECISION = {"ruleset": "retention-desk", "customer_id": "c-1", "agent_id": "agent-7"}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with small body limits, so limits are cheap to hit."""
    data: Path = tmp_path_factory.mktemp("small")
    env = {"FRONTLINE_MAX_BODY_BYTES": "4096", "FRONTLINE_MAX_RULESET_BYTES": "1000000"}
    with LiveServer(data, env=env) as live:
        yield live


def assert_problem(response: httpx.Response, status: int, detail: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"]
    assert detail in body["detail"], body
    return body


def post_decision(server: LiveServer, content: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/decisions",
        content=content,
        headers={**server.auth("agent"), "content-type": "application/json", **headers},
        timeout=30,
    )


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        pytest.param(b"{bad", "JSON is malformed", id="malformed"),
        pytest.param(b"", "", id="empty"),
        pytest.param(b"[1, 2]", "Expected `object`", id="not-an-object"),
        pytest.param(b'{"ruleset": "retention-desk"}', "missing required field", id="missing"),
        pytest.param(
            b'{"ruleset": "retention-desk", "customer_id": 7, "agent_id": "agent-7"}',
            "Expected `str`, got `int`",
            id="wrong-type",
        ),
        pytest.param(
            b'{"ruleset": "Retention Desk", "customer_id": "c", "agent_id": "agent-7"}',
            "Expected `str` matching regex",
            id="bad-name",
        ),
        pytest.param(b'{"ruleset": "\xff\xfe"}', "UTF-8", id="invalid-utf8"),
        pytest.param(
            b'{"ruleset": "retention-desk", "customer_id": "c", "agent_id": "agent-7", '
            b'"context": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}",
            "context nests deeper than 32 levels",
            id="deep-context",
        ),
    ],
)
def test_bad_bodies_are_400s(small: LiveServer, content: bytes, detail: str) -> None:
    assert_problem(post_decision(small, content), 400, detail)


def test_nesting_deeper_than_the_json_decoder_goes_is_a_400(tmp_path: Path) -> None:
    with LiveServer(tmp_path / "d", env={"FRONTLINE_MAX_BODY_BYTES": "1000000"}) as server:
        body = post_decision(server, b"[" * 50_000 + b"]" * 50_000)
        assert_problem(body, 400, "nests too deeply")


def test_oversized_bodies_are_413s(small: LiveServer) -> None:
    big = (
        b'{"ruleset": "retention-desk", "customer_id": "c", "agent_id": "agent-7", '
        b'"context": {"x": "' + b"a" * 10_000 + b'"}}'
    )
    assert_problem(post_decision(small, big), 413, "larger than")
    document = (ROOT / "rulesets" / "retention-desk.yaml").read_bytes()
    huge = document + b"\n# " + b"x" * 1_100_000 + b"\n"
    deploy = httpx.post(
        small.url + "/v1/rulesets",
        content=huge,
        headers={**small.auth("author"), "content-type": "application/yaml"},
        timeout=30,
    )
    assert_problem(deploy, 413, "larger than 1,000,000 bytes")


def deploy(
    server: LiveServer, text: str | bytes, media: str = "application/yaml"
) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/rulesets",
        content=text,
        headers={**server.auth("author"), "content-type": media},
        timeout=30,
    )


def test_a_yaml_bomb_is_refused_quickly(small: LiveServer) -> None:
    bomb = "ruleset: bomb\na: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9)
    )
    started = time.monotonic()
    response = deploy(small, bomb)
    assert time.monotonic() - started < 2.0
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("text", "media", "status", "detail"),
    [
        pytest.param("ruleset: [unclosed", "application/yaml", 422, "error", id="broken-yaml"),
        pytest.param("{}", "application/json", 422, "error", id="empty-document"),
        pytest.param("   ", "application/yaml", 400, "empty", id="blank"),
        pytest.param("ruleset: x", "image/png", 415, "YAML or JSON", id="media-type"),
        pytest.param(b"ruleset: \xff", "application/yaml", 400, "not UTF-8", id="not-utf8"),
    ],
)
def test_bad_documents_are_4xx(
    small: LiveServer, text: str | bytes, media: str, status: int, detail: str
) -> None:
    assert_problem(deploy(small, text, media), status, detail)


def test_a_huge_ruleset_is_refused_with_its_limit(small: LiveServer) -> None:
    rules = "".join(
        f"  - {{id: r{k}, when: 'customer.tier == \"gold\"', offer: o}}\n" for k in range(6000)
    )
    text = "ruleset: huge\ncontext:\n  customer.tier: string\neligibility:\n" + rules
    body = assert_problem(deploy(small, text), 422, "error")
    assert any("at most" in e["message"] for e in body["errors"]), body["errors"][:3]


def test_unknown_routes_and_methods(small: LiveServer) -> None:
    assert_problem(httpx.get(small.url + "/v1/nothing-here"), 404, "")
    wrong = httpx.get(small.url + "/v1/decisions", headers=small.auth("agent"))
    assert_problem(wrong, 405, "")


def test_out_of_range_query_values_and_a_nul_in_a_path_are_4xx(
    client: httpx.Client, server: LiveServer
) -> None:
    auditor = server.auth("auditor")
    for query in (
        f"cursor={2**70}-1-x",
        f"cursor=1-{2**70}-x",
        f"revision={2**70}&ruleset=retention-desk",
        "limit=99999999999999999999",
    ):
        response = client.get(f"/v1/audit/decisions?{query}", headers=auditor)
        assert response.status_code == 400, (query, response.status_code, response.text)
    for path in ("/static/a%00b.js", "/v1/rulesets/a%00b"):
        response = client.get(path, headers=server.auth("author"))
        assert response.status_code == 400, (path, response.status_code)
        assert "NUL" in response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param(
            "POST",
            "/v1/customers/c-1/events",
            {"type": "payment_failed", "at": "0001-01-01T00:00:00Z"},
            id="event-at-year-1",
        ),
        pytest.param(
            "POST",
            "/v1/customers/c-1/events",
            {"type": "payment_failed", "at": "9999-12-31T23:59:59Z"},
            id="event-at-year-9999",
        ),
        pytest.param(
            "PATCH",
            "/v1/customers/c-1/context",
            {"values": {"customer": {"tier": "gold"}}, "as_of": "0001-01-01T00:00:00Z"},
            id="context-as-of-year-1",
        ),
    ],
)
def test_times_too_far_off_to_compute_with_are_400s(
    small: LiveServer, method: str, path: str, body: dict[str, Any]
) -> None:
    """A counter window before year 1 once overflowed into a 500."""
    response = httpx.request(
        method, small.url + path, json=body, headers=small.auth("integration"), timeout=30
    )
    assert_problem(response, 400, "is out of range: give a time from 1970 to 9000")

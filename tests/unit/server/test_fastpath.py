"""The fast path answers exactly as the routes do: the same statuses, the same problem details
and the same answers, decisions and events, for good requests and every kind of bad one.

Both are driven in this process: the Litestar app alone (the route), and the same app with
the fast path in front (what the server runs).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from server.app import create_app
from server.fastpath import FastPath, with_fast_path
from server.settings import Settings
from tests.support.asgi import Running, call
from tests.support.live_server import API_KEYS, KEYS

AGENT = KEYS["agent"]
BODY = {
    "ruleset": "retention-desk",
    "customer_id": "c-1",
    "agent_id": AGENT[0],
    "context": {"customer": {"tier": "gold", "tenure_months": 30, "churn_score": 0.9}},
}
# What differs between two answers to one request: ids, times and the record's place.
VOLATILE = ("decision_id", "evaluated_at", "alert_id", "at", "receipt")
DECIDE = "/v1/decisions"
EVENT = "/v1/customers/c-1/events"
INTEGRATION = KEYS["integration"]


def bearer(secret: str) -> tuple[bytes, bytes]:
    return (b"authorization", f"Bearer {secret}".encode())


JSON = (b"content-type", b"application/json")


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


CASES: list[tuple[str, bytes, list[tuple[bytes, bytes]]]] = [
    ("a decision", json.dumps(BODY).encode(), [JSON, bearer(AGENT[1])]),
    ("no content type", json.dumps(BODY).encode(), [bearer(AGENT[1])]),
    ("admin key", json.dumps(BODY).encode(), [JSON, bearer(KEYS["admin"][1])]),
    ("no key", json.dumps(BODY).encode(), [JSON]),
    ("wrong key", json.dumps(BODY).encode(), [JSON, bearer("not-a-key")]),
    ("author key", json.dumps(BODY).encode(), [JSON, bearer(KEYS["author"][1])]),
    ("another agent", json.dumps(BODY).encode(), [JSON, bearer(KEYS["agent2"][1])]),
    ("not JSON", b"{nope", [JSON, bearer(AGENT[1])]),
    ("unknown field", json.dumps({**BODY, "custmer": 1}).encode(), [JSON, bearer(AGENT[1])]),
    ("bad id", json.dumps({**BODY, "customer_id": "a b"}).encode(), [JSON, bearer(AGENT[1])]),
    (
        "unknown ruleset",
        json.dumps({**BODY, "ruleset": "no-such"}).encode(),
        [JSON, bearer(AGENT[1])],
    ),
    (
        "unknown interaction",
        json.dumps({**BODY, "interaction": "i-404"}).encode(),
        [JSON, bearer(AGENT[1])],
    ),
    ("too deep", json.dumps({**BODY, "context": nested(40)}).encode(), [JSON, bearer(AGENT[1])]),
    ("too large", b" " * 2_000_000 + json.dumps(BODY).encode(), [JSON, bearer(AGENT[1])]),
    (
        "YAML",
        b"ruleset: retention-desk",
        [(b"content-type", b"application/yaml"), bearer(AGENT[1])],
    ),
]


EVENT_CASES: list[tuple[str, str, bytes, list[tuple[bytes, bytes]]]] = [
    ("an event", EVENT, b'{"type": "payment_failed"}', [JSON, bearer(INTEGRATION[1])]),
    (
        "an event at a time",
        EVENT,
        b'{"type": "contact", "at": "2026-12-01T10:00:00Z"}',
        [JSON, bearer(INTEGRATION[1])],
    ),
    ("an event, bad time", EVENT, b'{"type": "x", "at": "soon"}', [JSON, bearer(INTEGRATION[1])]),
    ("an event, bad type", EVENT, b'{"type": "Bad Type"}', [JSON, bearer(INTEGRATION[1])]),
    ("an event, agent key", EVENT, b'{"type": "contact"}', [JSON, bearer(AGENT[1])]),
    ("an event, no key", EVENT, b'{"type": "contact"}', [JSON]),
    (
        "an event, odd customer",
        "/v1/customers/c!1/events",
        b'{"type": "contact"}',
        [JSON, bearer(INTEGRATION[1])],
    ),
    ("an event, unknown field", EVENT, b'{"type": "a", "x": 1}', [JSON, bearer(INTEGRATION[1])]),
]
ALL = [(name, DECIDE, body, headers) for name, body, headers in CASES] + EVENT_CASES


def stable(status: int, body: bytes) -> tuple[int, Any]:
    """The answer without what differs from one evaluation to the next."""
    try:
        found = json.loads(body)
    except ValueError:
        return status, body
    if isinstance(found, dict):
        if "decision_id" in found:
            assert found["receipt"]["seq"] >= 1  # every decision answers with its receipt
        for key in VOLATILE:
            found.pop(key, None)
        for alert in found.get("alerts") or ():
            alert.pop("alert_id", None)
    return status, found


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, tuple[int, Any]]]:
    data: Path = tmp_path_factory.mktemp("fastpath")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FRONTLINE_API_KEYS", API_KEYS)
        env.setenv("FRONTLINE_MASKING_KEY", "test-masking-key-0123456789")
        env.setenv("FRONTLINE_MAX_BODY_BYTES", "1000000")
        settings = dataclasses.replace(Settings.from_env(), data_dir=data)

    async def both() -> dict[str, dict[str, tuple[int, Any]]]:
        app = create_app(settings)
        served = with_fast_path(app)
        assert isinstance(served, FastPath)
        out: dict[str, dict[str, tuple[int, Any]]] = {"route": {}, "fast": {}}
        async with Running(app):
            for name, path, body, headers in ALL:
                request = ("POST", path, body, headers)
                out["route"][name] = stable(*await call(app, request))
                out["fast"][name] = stable(*await call(served, request))
        return out

    return asyncio.run(both())


@pytest.mark.parametrize("case", [c[0] for c in ALL])
def test_the_fast_path_answers_as_the_route_does(
    answers: dict[str, dict[str, tuple[int, Any]]], case: str
) -> None:
    assert answers["fast"][case] == answers["route"][case]


def test_the_cases_cover_answers_of_every_kind(
    answers: dict[str, dict[str, tuple[int, Any]]],
) -> None:
    statuses = {status for status, _ in answers["route"].values()}
    assert {200, 202, 400, 401, 403, 404, 413} <= statuses, statuses

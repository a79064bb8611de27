"""A replay streamed to a client that accepts JSON lines: progress against a total known from
the start, then the same report the JSON answer holds; refusals stay problem responses."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit.index import reindex
from audit.recording import decision_record
from audit.segments import SegmentLog
from audit.writer import LedgerWriter
from engine import compile_ruleset
from tests.support.live_server import ROOT, LiveServer

RETENTION = (ROOT / "rulesets" / "retention-desk.yaml").read_text(encoding="utf-8")
ARCHIVED = 5_000  # decisions of an earlier instance, in the index before the server starts
LIVE = 6  # decisions the server makes, followed by its own indexer
SINCE = "2000-01-01T00:00:00Z"
LINES = {"Accept": "application/x-ndjson"}
FEE_RULE = 'customer.tier in ["gold", "platinum"] and history.contacts_7d >= 2'
CANDIDATE = RETENTION.replace(FEE_RULE, FEE_RULE.replace(">= 2", ">= 1"))


def archive(ledger_dir: Path) -> None:
    """ARCHIVED retention-desk decisions in the log of instance ``archive``, indexed."""
    compiled = compile_ruleset(RETENTION)
    rng = random.Random(3)
    log = SegmentLog(ledger_dir, "archive", durable=False)
    writer = LedgerWriter(log)
    now = datetime.now(UTC)
    pending = []
    for k in range(ARCHIVED):
        context: dict[str, Any] = {
            "customer": {
                "tier": rng.choice(["bronze", "silver", "gold", "platinum"]),
                "tenure_months": rng.randint(0, 80),
                "churn_score": round(rng.random(), 2),
            },
            "interaction": {"channel": "voice", "intent": rng.choice(["cancel", "billing"])},
            "history": {"contacts_7d": rng.randint(0, 4)},
        }
        record = decision_record(
            compiled.evaluate(context, now=now), record_id=f"a-{k}", context=context
        )
        pending.append(writer.submit(record))
    for done in pending:
        done.result(30)
    writer.close()
    log.close()
    reindex(ledger_dir)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data: Path = tmp_path_factory.mktemp("replays")
    archive(data / "ledger")
    with LiveServer(data) as live, httpx.Client(base_url=live.url, timeout=30) as c:
        for k in range(LIVE):
            r = c.post(
                "/v1/decisions",
                json={
                    "ruleset": "retention-desk",
                    "customer_id": f"c-{k}",
                    "agent_id": "agent-7",
                    "context": {"customer": {"tier": "gold"}, "history": {"contacts_7d": 1}},
                },
                headers=live.auth("agent"),
            )
            assert r.status_code == 200, r.text
        yield live


def streamed(server: LiveServer, body: dict[str, Any]) -> tuple[httpx.Response, list[Any]]:
    """The response and its lines, each parsed as it arrives."""
    headers = {**server.auth("author"), **LINES}
    with httpx.stream(
        "POST", server.url + "/v1/replays", json=body, headers=headers, timeout=60
    ) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]
    return response, lines


def test_a_streamed_replay_shows_progress_and_ends_with_the_report(server: LiveServer) -> None:
    body = {"document": CANDIDATE, "since": SINCE, "examples": 3}
    response, lines = streamed(server, body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert "content-length" not in response.headers  # sent as it is made
    *progress, last = lines
    total = ARCHIVED + LIVE
    assert progress[0] == {"progress": {"done": 0, "total": total}}
    assert progress[-1] == {"progress": {"done": total, "total": total}}
    done = [p["progress"]["done"] for p in progress]
    assert done == sorted(done) and all(p["progress"]["total"] == total for p in progress)
    report = last["report"]
    assert report["replayed"] == total and report["skipped"] == 0
    # The live decisions (gold, one contact this week) all gain the fee waiver.
    gained = {c["change"]: c["count"] for c in report["offers"]}["gained:waive-fee"]
    assert gained >= LIVE
    # Without asking for lines, the same report comes back as one JSON document.
    plain = httpx.post(
        server.url + "/v1/replays", json=body, headers=server.auth("author"), timeout=60
    )
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("application/json")
    assert plain.json() == report


def test_a_streamed_replay_of_an_empty_range_says_zero_of_zero(server: LiveServer) -> None:
    response, lines = streamed(server, {"document": CANDIDATE, "since": "2999-01-01T00:00:00Z"})
    assert response.status_code == 200
    assert lines[0] == {"progress": {"done": 0, "total": 0}}
    assert lines[-1]["report"]["replayed"] == 0
    assert len(lines) == 2


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"document": "ruleset: [", "since": SINCE}, 422, "the candidate has"),
        ({"document": CANDIDATE, "since": "last week"}, 400, "since 'last week' is neither"),
    ],
    ids=["does-not-compile", "bad-since"],
)
def test_what_fails_before_the_replay_starts_is_a_problem_response(
    server: LiveServer, body: dict[str, Any], status: int, detail: str
) -> None:
    r = httpx.post(
        server.url + "/v1/replays",
        json=body,
        headers={**server.auth("author"), **LINES},
        timeout=30,
    )
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"].startswith(detail)


def test_agents_cannot_stream_a_replay(server: LiveServer) -> None:
    r = httpx.post(
        server.url + "/v1/replays",
        json={"document": CANDIDATE, "since": SINCE},
        headers={**server.auth("agent"), **LINES},
        timeout=30,
    )
    assert r.status_code == 403


def test_the_schema_documents_both_answers(server: LiveServer) -> None:
    schema = httpx.get(server.url + "/schema/openapi.json", timeout=30).json()
    answers = schema["paths"]["/v1/replays"]["post"]["responses"]["200"]["content"]
    assert {"application/json", "application/x-ndjson"} <= set(answers)

"""The auditor's routes on a live server: filters, pages, exports, explanations, verification,
replays, and pii that never leaves masked."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit.index import INDEX_FILE
from tests.support.live_server import KEYS, ROOT, LiveServer

RETENTION = (ROOT / "rulesets" / "retention-desk.yaml").read_text(encoding="utf-8")
EMAIL = "ann.secret@example.com"


@pytest.fixture(scope="module")
def audited(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LiveServer, list[dict[str, Any]]]]:
    """A server holding 24 decisions for 4 customers, some with a pii e-mail in context."""
    data: Path = tmp_path_factory.mktemp("audit")
    with LiveServer(data) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        decisions = []
        for k in range(24):
            context: dict[str, Any] = {
                "customer": {"tier": ["bronze", "gold"][k % 2], "tenure_months": 3 * k},
                "history": {"contacts_7d": k % 5},
                "interaction": {"channel": "voice", "intent": "cancel"},
            }
            if k % 3 == 0:
                context["customer"]["email"] = EMAIL
            r = c.post(
                "/v1/decisions",
                json={
                    "ruleset": "retention-desk",
                    "customer_id": f"c-{k % 4}",
                    "agent_id": "agent-7",
                    "context": context,
                    "trace": k == 5,
                },
                # The trace by an admin: an agent may trace only a customer it is handling.
                headers=server.auth("admin" if k == 5 else "agent"),
            )
            assert r.status_code == 200, r.text
            decisions.append(r.json())
        yield server, decisions


def get(server: LiveServer, path: str, role: str = "auditor", **params: Any) -> httpx.Response:
    return httpx.get(server.url + path, params=params, headers=server.auth(role), timeout=30)


def test_filters_narrow_the_records(audited: tuple[LiveServer, list[dict[str, Any]]]) -> None:
    server, decisions = audited
    page = get(server, "/v1/audit/decisions", customer_id="c-1", kind="decision").json()
    expected = [d["decision_id"] for d in reversed(decisions) if d["customer_id"] == "c-1"]
    assert [r["id"] for r in page["records"]] == expected
    waived = [
        d["decision_id"]
        for d in reversed(decisions)
        if "waive-fee" in {e["offer"] for e in d["eligible"]}
    ]
    assert waived
    offers = get(server, "/v1/audit/decisions", outcome="offer:waive-fee").json()
    assert [r["id"] for r in offers["records"]] == waived
    revision = get(
        server, "/v1/audit/decisions", ruleset="retention-desk", revision=1, kind="decision"
    ).json()
    assert len(revision["records"]) == 24
    nothing = get(server, "/v1/audit/decisions", since="2999-01-01T00:00:00Z").json()
    assert nothing == {"records": [], "next_cursor": None}


def test_cursor_pages_walk_every_record_once(
    audited: tuple[LiveServer, list[dict[str, Any]]],
) -> None:
    server, decisions = audited
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"kind": "decision", "limit": 5}
        if cursor is not None:
            params["cursor"] = cursor
        page = get(server, "/v1/audit/decisions", **params).json()
        seen.extend(r["id"] for r in page["records"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [d["decision_id"] for d in reversed(decisions)]


def test_exports_stream_jsonl_and_csv(audited: tuple[LiveServer, list[dict[str, Any]]]) -> None:
    server, decisions = audited
    jsonl = get(server, "/v1/audit/decisions", kind="decision", format="jsonl")
    assert jsonl.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in jsonl.text.splitlines()]
    assert [x["id"] for x in lines] == [d["decision_id"] for d in reversed(decisions)]
    # Each line is the record's stored bytes: its hash is SHA-256(0x00 || line), the hash
    # the JSON page reports and the next record's prev_hash.
    page = get(server, "/v1/audit/decisions", kind="decision", limit=100).json()
    hashes = [r["hash"] for r in page["records"]]
    assert [
        "sha256:" + hashlib.sha256(b"\x00" + line).hexdigest()
        for line in jsonl.content.splitlines()
    ] == hashes
    assert all("hash" not in x for x in lines)
    # Each line's prev_hash is the hash of the record before it in its instance's chain,
    # which may be of another kind (a signed tree head written between two decisions).
    chain = get(server, "/v1/audit/decisions", limit=1000).json()["records"]
    hash_of = {(r["instance"], r["seq"]): r["hash"] for r in chain}
    assert [x["prev_hash"] for x in lines] == [hash_of[x["instance"], x["seq"] - 1] for x in lines]
    exported = get(server, "/v1/audit/decisions", customer_id="c-2", format="csv")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["id"] for r in rows] == [
        d["decision_id"] for d in reversed(decisions) if d["customer_id"] == "c-2"
    ]
    empty = get(server, "/v1/audit/decisions", customer_id="nobody", format="csv")
    assert empty.text.splitlines() == [empty.text.splitlines()[0]]
    assert empty.text.startswith("instance,seq,id")


def test_an_export_opens_with_an_auditors_stream_ticket_and_never_with_a_key_in_its_url(
    audited: tuple[LiveServer, list[dict[str, Any]]],
) -> None:
    """A browser saves an export by itself, with no Authorization header: an auditor's
    one-minute ticket in the URL opens it, as an attachment; an agent's ticket, a forged one
    and the key itself in the URL do not, and the ticket never reaches the log."""
    server, decisions = audited
    with httpx.Client(base_url=server.url, timeout=30) as c:
        issued = c.post("/v1/stream-tickets", headers=server.auth("auditor"))
        assert issued.status_code == 201, issued.text
        ticket = issued.json()["ticket"]
        query = {"kind": "decision", "format": "jsonl"}
        saved = c.get("/v1/audit/decisions", params={**query, "ticket": ticket})
        assert saved.status_code == 200, saved.text
        assert saved.headers["content-disposition"] == 'attachment; filename="decisions.jsonl"'
        ids = [json.loads(line)["id"] for line in saved.text.splitlines()]
        assert ids == [d["decision_id"] for d in reversed(decisions)]
        agents = c.post("/v1/stream-tickets", headers=server.auth("agent")).json()["ticket"]
        refused = c.get("/v1/audit/decisions", params={**query, "ticket": agents})
        assert refused.status_code == 403
        forged = c.get("/v1/audit/decisions", params={**query, "ticket": ticket[:-2] + "AA"})
        assert forged.status_code == 401 and "stream ticket" in forged.json()["detail"]
        key = c.get("/v1/audit/decisions", params={**query, "access_token": KEYS["auditor"][1]})
        assert key.status_code == 401
    assert ticket not in server.log.read_text(encoding="utf-8")


def test_one_decision_with_its_explanation(
    audited: tuple[LiveServer, list[dict[str, Any]]],
) -> None:
    server, decisions = audited
    traced = decisions[5]
    body = get(server, f"/v1/audit/decisions/{traced['decision_id']}").json()
    explanation = body["explanation"]
    assert body["record"]["id"] == traced["decision_id"]
    assert [f["rule"] for f in explanation["fired"] if f["section"] == "eligibility"] == [
        e["rule"] for e in traced["eligible"]
    ]
    assert explanation["context"]["customer.tier"]["value"] == "gold"
    assert explanation["context"]["customer.tier"]["source"] == "request"
    assert explanation["ruleset"]["name"] == "retention-desk"
    assert explanation["rules_evaluated"]  # the decision was traced
    assert "customer.churn_score" in explanation["missing_fields"]
    missing = get(server, "/v1/audit/decisions/no-such-decision")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


def test_pii_never_leaves_in_clear(audited: tuple[LiveServer, list[dict[str, Any]]]) -> None:
    server, decisions = audited
    with_email = decisions[0]["decision_id"]
    one = get(server, f"/v1/audit/decisions/{with_email}")
    assert EMAIL not in one.text
    value, source, *_ = one.json()["record"]["context"]["customer.email"]
    assert value.startswith("hmac-sha256:") and source == "request"
    assert one.json()["explanation"]["context"]["customer.email"]["value"] == value
    export = get(server, "/v1/audit/decisions", format="jsonl")
    assert EMAIL not in export.text and export.text.count(value) >= 8


def test_verify_reports_every_chain_intact(
    audited: tuple[LiveServer, list[dict[str, Any]]],
) -> None:
    server, _ = audited
    report = wait_until_indexed(server)
    assert report["ok"] is True and report["broken_at"] is None
    assert report["records"] >= 27  # 24 decisions and 3 starter deploys
    (chain,) = report["instances"].values()
    assert chain["ok"] is True and chain["records"] == report["records"]
    assert chain["index"] == {"ok": True, "indexed": chain["records"], "problems": []}


def wait_until_indexed(server: LiveServer, timeout: float = 10.0) -> dict[str, Any]:
    """The verify report once every record is indexed (or after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        report: dict[str, Any] = get(server, "/v1/audit/verify").json()
        if time.monotonic() > deadline or all(
            c["index"]["indexed"] == c["records"] for c in report["instances"].values()
        ):
            return report
        time.sleep(0.1)


def test_verify_reports_a_tampered_index_and_reindex_repairs_it(tmp_path: Path) -> None:
    """An index row changed behind the ledger's back is reported by verify, with the
    record it concerns, while the chain itself stays intact; reindex builds it again."""
    with LiveServer(tmp_path / "d") as server:
        seqs = []
        for k in range(3):
            r = httpx.post(
                server.url + "/v1/decisions",
                json={"ruleset": "retention-desk", "customer_id": f"c-{k}", "agent_id": "agent-7"},
                headers=server.auth("agent"),
            )
            assert r.status_code == 200, r.text
            seqs.append(r.json()["receipt"]["seq"])
        assert wait_until_indexed(server)["ok"] is True
        seq = seqs[1]  # the decision about c-1
        with sqlite3.connect(server.ledger_dir / INDEX_FILE) as index:
            changed = index.execute(
                "UPDATE records SET customer_id = 'c-forged' WHERE seq = ?", (seq,)
            ).rowcount
        assert changed == 1
        report = get(server, "/v1/audit/verify").json()
        (chain,) = report["instances"].values()
        assert report["ok"] is False and chain["broken_at"] is None
        assert chain["index"]["ok"] is False
        assert chain["index"]["problems"] == [
            f"index row for record {seq} differs from the record: "
            "customer_id 'c-forged' in the index, 'c-1' in the record"
        ]
        assert report["reason"] == chain["index"]["problems"][0]
        rebuilt = subprocess.run(
            [sys.executable, "-m", "server.cli", "audit", "reindex", "--data-dir", server.data_dir],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert wait_until_indexed(server)["ok"] is True
        found = get(server, "/v1/audit/decisions", customer_id="c-1").json()["records"]
        assert [r["customer_id"] for r in found] == ["c-1"]


def test_a_replay_reports_what_a_candidate_would_change(
    audited: tuple[LiveServer, list[dict[str, Any]]],
) -> None:
    server, decisions = audited
    # Waive the fee from the second contact: gold customers (odd k) with one contact this
    # week (k % 5 == 1) gain the offer.
    rule = 'customer.tier in ["gold", "platinum"] and history.contacts_7d >= 2'
    candidate = RETENTION.replace(rule, rule.replace(">= 2", ">= 1"))
    for role in ("author", "auditor"):
        r = httpx.post(
            server.url + "/v1/replays",
            json={"document": candidate, "since": "2000-01-01T00:00:00Z", "examples": 3},
            headers=server.auth(role),
            timeout=60,
        )
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["replayed"] == 24
        gained = {c["change"]: c for c in report["offers"]}.get("gained:waive-fee")
        # gold customers with exactly one contact this week gain the waiver
        ones = [d for k, d in enumerate(decisions) if k % 2 == 1 and k % 5 == 1]
        assert gained is not None and gained["count"] == len(ones)
        assert set(gained["examples"]) <= {d["decision_id"] for d in ones}
    broken = httpx.post(
        server.url + "/v1/replays",
        json={"document": "ruleset: [", "since": "2000-01-01T00:00:00Z"},
        headers=server.auth("author"),
        timeout=30,
    )
    assert broken.status_code == 422 and broken.json()["errors"]


@pytest.mark.parametrize("role", ["agent", "author", "integration"])
def test_only_auditors_read_the_ledger(
    audited: tuple[LiveServer, list[dict[str, Any]]], role: str
) -> None:
    server, _ = audited
    for path in ("/v1/audit/decisions", "/v1/audit/verify"):
        assert get(server, path, role=role).status_code == 403
    assert httpx.get(server.url + "/v1/audit/decisions").status_code == 401


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"since": "yesterday"}, "since 'yesterday' is neither an RFC 3339 time nor an age"),
        ({"outcome": "waive-fee"}, "outcome must look like offer:<offer>"),
        ({"revision": 2}, "revision needs ruleset"),
        ({"kind": "vote"}, "unknown kind 'vote'"),
        ({"limit": 0}, "limit"),
        ({"format": "xml"}, "format"),
    ],
)
def test_bad_filters_are_400_problems(
    audited: tuple[LiveServer, list[dict[str, Any]]], params: dict[str, Any], detail: str
) -> None:
    server, _ = audited
    r = get(server, "/v1/audit/decisions", **params)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert detail in json.dumps(r.json())

"""Replay: a candidate revision re-evaluated on recorded decisions, and the flip report."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from audit.masking import Masker
from audit.query import LedgerReader
from audit.recording import decision_record
from audit.replay import replay, replay_range
from audit.sqlite import SqliteLedgerStore
from audit.writer import LedgerWriter
from engine import compile_ruleset

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
CURRENT: dict[str, Any] = {
    "ruleset": "desk",
    "context": {
        "customer.tier": {"type": "string", "enum": ["bronze", "silver", "gold"]},
        "customer.tenure_months": "integer",
        "customer.churn_score": {"type": "number", "max_age": "24h"},
        "customer.email": {"type": "string", "classification": "pii"},
        "history.contacts_7d": "integer",
    },
    "eligibility": [
        {"id": "loyalty", "when": "customer.tenure_months > 24", "offer": "loyalty-10"},
        {"id": "gold", "when": 'customer.tier == "gold"', "offer": "upgrade"},
    ],
    "escalation": [
        {"id": "churn", "when": "customer.churn_score > 0.8", "queue": "retention", "priority": 1},
        {"id": "repeat", "when": "history.contacts_7d >= 3", "queue": "complaints", "priority": 2},
    ],
    "alerts": [
        {
            "id": "frequent",
            "when": 'count("login", within="1h") > 5',
            "severity": "warning",
            "message": "Many logins",
        }
    ],
}


def candidate_document() -> dict[str, Any]:
    """Loyalty from 12 months, repeat contacts go to retention, and a new e-mail rule."""
    doc = copy.deepcopy(CURRENT)
    doc["eligibility"][0]["when"] = "customer.tenure_months > 12"
    doc["escalation"][1]["queue"] = "retention"
    doc["eligibility"].append(
        {"id": "staff", "when": 'endswith(customer.email, "@corp.example")', "offer": "staff"}
    )
    return doc


def contexts(n: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    rng = random.Random(7)
    out = []
    for _ in range(n):
        context = {
            "customer": {
                "tier": rng.choice(["bronze", "silver", "gold"]),
                "tenure_months": rng.randint(0, 40),
                "churn_score": rng.random(),
            },
            "history": {"contacts_7d": rng.randint(0, 5)},
        }
        counters = {"login": {"1h": rng.randint(0, 8)}}
        out.append((context, counters))
    return out


def write_ledger(path: Path, masker: Masker | None = None) -> list[str]:
    current = compile_ruleset(CURRENT)
    store = SqliteLedgerStore(path)
    writer = LedgerWriter(store)
    ids = []
    for k, (context, counters) in enumerate(contexts(300)):
        now = NOW + timedelta(minutes=k)
        as_of = {"customer": now - timedelta(hours=30 if k % 10 == 0 else 1)}
        decision = current.evaluate(context, now=now, counters=counters, as_of=as_of)
        record = decision_record(
            decision,
            record_id=f"d-{k}",
            context=context,
            inputs={"counters": counters},
            as_of=as_of,
            masker=masker,
        )
        ids.append(writer.append_blocking(record).id)
    writer.close()
    store.close()
    return ids


def test_the_flip_report_counts_what_the_candidate_changes(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    write_ledger(path)
    current, candidate = compile_ruleset(CURRENT), compile_ruleset(candidate_document())
    # What the report must say, worked out by evaluating both revisions directly.
    lost_loyalty = gained_loyalty = queue_moves = changed = 0
    for k, (context, counters) in enumerate(contexts(300)):
        now = NOW + timedelta(minutes=k)
        old = current.evaluate(context, now=now, counters=counters).to_dict()
        new = candidate.evaluate(context, now=now, counters=counters).to_dict()
        old_offers = {e["offer"] for e in old["eligible"]}
        new_offers = {e["offer"] for e in new["eligible"]}
        gained_loyalty += "loyalty-10" in new_offers - old_offers
        lost_loyalty += "loyalty-10" in old_offers - new_offers
        old_q = (old["escalation"] or {}).get("queue")
        new_q = (new["escalation"] or {}).get("queue")
        queue_moves += old_q == "complaints" and new_q == "retention"
        changed += old["eligible"] != new["eligible"] or old_q != new_q
    assert gained_loyalty > 0 and queue_moves > 0 and lost_loyalty == 0

    reader = LedgerReader(path)
    try:
        report = replay_range(reader, candidate, examples=3).to_dict()
    finally:
        reader.close()
    assert report["replayed"] == 300 and report["skipped"] == 0
    assert report["changed"] == changed
    offers = {c["change"]: c for c in report["offers"]}
    assert offers["gained:loyalty-10"]["count"] == gained_loyalty
    assert len(offers["gained:loyalty-10"]["examples"]) == 3
    assert "lost:loyalty-10" not in offers
    queues = {c["change"]: c["count"] for c in report["queues"]}
    assert queues == {"complaints → retention": queue_moves}
    rules = {c["change"]: c["count"] for c in report["rules"]}
    assert rules["started:eligibility:loyalty"] == gained_loyalty
    assert report["alerts"] == []  # counters were replayed as recorded
    # The candidate reads customer.email, which the current revision never read.
    assert report["read_unrecorded_fields"] == 300
    assert report["unrecorded_fields"] == ["customer.email"]


def test_the_current_revision_replayed_on_its_own_records_changes_nothing(
    tmp_path: Path,
) -> None:
    """Stale flags, counters and ages come back exactly: a faithful replay is a no-op."""
    path = tmp_path / "ledger.db"
    write_ledger(path)
    reader = LedgerReader(path)
    try:
        records = list(reader.iterate(_all()))
    finally:
        reader.close()
    assert any(r.stale_fields for r in records)
    report = replay(records, compile_ruleset(CURRENT))
    assert (report.replayed, report.changed, report.skipped) == (300, 0, 0)


def test_records_of_other_rulesets_are_ignored_and_masked_reads_are_flagged(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"
    doc = copy.deepcopy(CURRENT)
    doc["eligibility"].append(
        {"id": "mail", "when": "not missing(customer.email)", "offer": "mail"}
    )
    compiled = compile_ruleset(doc)
    masker = Masker(b"m" * 32)
    store = SqliteLedgerStore(path)
    writer = LedgerWriter(store)
    for k in range(4):
        context = {"customer": {"email": f"u{k}@example.com", "tier": "gold"}}
        decision = compiled.evaluate(context, now=NOW)
        writer.append_blocking(
            decision_record(decision, record_id=f"m-{k}", context=context, masker=masker)
        )
    other = compile_ruleset({**CURRENT, "ruleset": "other"})
    writer.append_blocking(
        decision_record(other.evaluate({}, now=NOW), record_id="o-1", context={})
    )
    writer.close()
    store.close()
    reader = LedgerReader(path)
    try:
        report = replay(reader.iterate(_all()), compiled)
    finally:
        reader.close()
    assert report.replayed == 4
    assert report.read_masked == 4
    assert report.changed == 0  # presence of a masked value is still presence


def _all() -> Any:
    from audit.query import LedgerQuery

    return LedgerQuery()

"""Replay: a candidate revision re-evaluated on recorded decisions, the flip report, and the
progress a long replay reports, over the index and the log's not-yet-indexed tail alike."""

from __future__ import annotations

import copy
import itertools
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from audit import replay as replay_module
from audit.index import LedgerIndex
from audit.masking import Masker
from audit.query import LedgerQuery, LedgerReader
from audit.record import LedgerRecord
from audit.recording import decision_record
from audit.replay import replay, replay_range
from audit.segments import SegmentLog
from audit.writer import LedgerWriter
from engine import compile_ruleset

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
COUNT = 300
INDEXED = 180  # the first 180 records are in the index, the last 120 only in the log
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
    """Varied contexts and login counters; one in four has no contact history."""
    rng = random.Random(7)
    out = []
    for k in range(n):
        context: dict[str, Any] = {
            "customer": {
                "tier": rng.choice(["bronze", "silver", "gold"]),
                "tenure_months": rng.randint(0, 40),
                "churn_score": rng.random(),
            },
            "history": {"contacts_7d": rng.randint(0, 5)},
        }
        if k % 4 == 3:
            del context["history"]
        counters = {"login": {"1h": rng.randint(0, 8)}}
        out.append((context, counters))
    return out


def minute(k: int) -> str:
    """The ``k``-th minute from NOW, as the ledger writes times."""
    when = NOW + timedelta(minutes=k)
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


def write_records(ledger_dir: Path, records: list[LedgerRecord], *, indexed: int) -> None:
    """Append ``records`` to one log, one a minute from NOW, the first ``indexed`` of them
    brought into the index."""
    log = SegmentLog(ledger_dir, "local", durable=False)
    writer = LedgerWriter(log, clock=map(minute, itertools.count()).__next__)
    for k, record in enumerate(records, start=1):
        writer.append_blocking(record)
        if k == indexed:
            index = LedgerIndex(ledger_dir)
            reading = SegmentLog(ledger_dir, "local", readonly=True)
            index.catch_up(reading)
            reading.close()
            index.close()
    writer.close()
    log.close()


def write_ledger(ledger_dir: Path, *, indexed: int = INDEXED) -> None:
    """COUNT decisions of the current revision, one a minute from NOW."""
    current = compile_ruleset(CURRENT)
    records = []
    for k, (context, counters) in enumerate(contexts(COUNT)):
        now = NOW + timedelta(minutes=k)
        as_of = {"customer": now - timedelta(hours=30 if k % 10 == 0 else 1)}
        decision = current.evaluate(context, now=now, counters=counters, as_of=as_of)
        records.append(
            decision_record(
                decision,
                record_id=f"d-{k}",
                context=context,
                inputs={"counters": counters},
                as_of=as_of,
            )
        )
    write_records(ledger_dir, records, indexed=indexed)


def read_all(ledger_dir: Path) -> list[LedgerRecord]:
    reader = LedgerReader(ledger_dir)
    try:
        return list(reader.iterate(LedgerQuery()))
    finally:
        reader.close()


def test_the_flip_report_counts_what_the_candidate_changes(tmp_path: Path) -> None:
    write_ledger(tmp_path)
    current, candidate = compile_ruleset(CURRENT), compile_ruleset(candidate_document())
    # What the report must say, worked out by evaluating both revisions directly.
    lost_loyalty = gained_loyalty = queue_moves = changed = 0
    for k, (context, counters) in enumerate(contexts(COUNT)):
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

    reader = LedgerReader(tmp_path)
    try:
        report = replay_range(reader, candidate, examples=3).to_dict()
    finally:
        reader.close()
    assert report["replayed"] == COUNT and report["skipped"] == 0
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
    # The candidate reads customer.email, which the current revision never read; the contact
    # history it did read and did not have is named in the records, not unrecorded.
    assert report["read_unrecorded_fields"] == COUNT
    assert report["unrecorded_fields"] == ["customer.email"]


def test_the_current_revision_replayed_on_its_own_records_changes_nothing(
    tmp_path: Path,
) -> None:
    """Stale flags, counters, ages and missing fields come back exactly: a faithful replay
    is a no-op, and flags nothing."""
    write_ledger(tmp_path)
    records = read_all(tmp_path)
    assert any(r.stale_fields for r in records)
    assert any("history.contacts_7d" in r.missing_fields for r in records)
    assert not any("history.contacts_7d" in r.context for r in records if r.missing_fields)
    current = compile_ruleset(CURRENT)
    from_records = replay(records, current)
    reader = LedgerReader(tmp_path)
    try:
        from_bytes = replay_range(reader, current)
    finally:
        reader.close()
    for report in (from_records, from_bytes):
        assert (report.replayed, report.changed, report.skipped) == (COUNT, 0, 0)
        assert (report.read_unrecorded, report.unrecorded_fields) == (0, set())


def test_replaying_decoded_records_and_stored_bytes_gives_the_same_report(
    tmp_path: Path,
) -> None:
    write_ledger(tmp_path)
    candidate = compile_ruleset(candidate_document())
    reader = LedgerReader(tmp_path)
    try:
        from_bytes = replay_range(reader, candidate, examples=4).to_dict()
    finally:
        reader.close()
    records = read_all(tmp_path)
    assert replay(records, candidate, examples=4).to_dict() == from_bytes


def test_records_of_other_rulesets_are_ignored_and_masked_reads_are_flagged(
    tmp_path: Path,
) -> None:
    doc = copy.deepcopy(CURRENT)
    doc["eligibility"].append(
        {"id": "mail", "when": "not missing(customer.email)", "offer": "mail"}
    )
    compiled = compile_ruleset(doc)
    masker = Masker(b"m" * 32)
    records = []
    for k in range(4):
        context = {"customer": {"email": f"u{k}@example.com", "tier": "gold"}}
        decision = compiled.evaluate(context, now=NOW)
        records.append(
            decision_record(decision, record_id=f"m-{k}", context=context, masker=masker)
        )
    other = compile_ruleset({**CURRENT, "ruleset": "other"})
    records.append(decision_record(other.evaluate({}, now=NOW), record_id="o-1", context={}))
    write_records(tmp_path, records, indexed=2)
    report = replay(read_all(tmp_path), compiled)
    assert report.replayed == 4
    assert report.read_masked == 4
    assert report.changed == 0  # presence of a masked value is still presence
    reader = LedgerReader(tmp_path)
    try:
        assert replay_range(reader, compiled).to_dict() == report.to_dict()
    finally:
        reader.close()


@pytest.mark.parametrize("indexed", [COUNT, INDEXED, 0], ids=["indexed", "part", "none"])
def test_a_replay_reports_its_progress_against_the_total(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, indexed: int
) -> None:
    """The total is known before the first decision is replayed, whether the records are in
    the index or only in the log; the last call says every record was read."""
    monkeypatch.setattr(replay_module, "PROGRESS_EVERY", 100)
    write_ledger(tmp_path, indexed=indexed)
    calls: list[tuple[int, int | None]] = []
    reader = LedgerReader(tmp_path)
    try:
        report = replay_range(
            reader,
            compile_ruleset(candidate_document()),
            since=minute(50),
            progress=lambda done, total: calls.append((done, total)),
        )
    finally:
        reader.close()
    assert report.replayed == COUNT - 50
    assert calls == [(0, 250), (100, 250), (200, 250), (250, 250)]


def test_progress_without_a_total_learns_it_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replay_module, "PROGRESS_EVERY", 100)
    write_ledger(tmp_path)
    calls: list[tuple[int, int | None]] = []
    replay(
        read_all(tmp_path),
        compile_ruleset(CURRENT),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(0, None), (100, None), (200, None), (300, None), (300, 300)]


SHOWN: dict[str, Any] = {
    "ruleset": "shown",
    "context": {
        "customer.tier": {"type": "string", "enum": ["bronze", "gold"]},
        "customer.email": {"type": "string", "classification": "pii"},
        "bill.amount": "number",
    },
    "eligibility": [
        {
            "id": "fee-waiver",
            "when": 'customer.tier == "gold"',
            "offer": "waive-fee",
            "params": {"max_amount": 25},
            "because": "Gold customer",
        }
    ],
    "escalation": [
        {"id": "big-bill", "when": "bill.amount > 100", "queue": "billing", "priority": 2}
    ],
    "alerts": [
        {
            "id": "high-bill",
            "when": "bill.amount > 50",
            "severity": "info",
            "message": "Bill of {bill.amount}",
        },
        {
            "id": "mail",
            "when": "not missing(customer.email)",
            "severity": "info",
            "message": "Write to {customer.email}",
        },
    ],
    "tables": [
        {
            "id": "credit",
            "hit": "first",
            "inputs": ["customer.tier"],
            "outputs": ["amount"],
            "rows": [['"gold"', 40], ["-", 10]],
        }
    ],
}


def _changed(**edits: Any) -> dict[str, Any]:
    doc = copy.deepcopy(SHOWN)
    for path, value in edits.items():
        section, index, key = path.split("__")
        doc[section][int(index)][key] = value
    return doc


@pytest.mark.parametrize(
    ("edits", "part", "change"),
    [
        (
            {"eligibility__0__params": {"max_amount": 31}},
            "params",
            'fee-waiver: {"max_amount":25} → {"max_amount":31}',
        ),
        ({"tables__0__rows": [['"gold"', 45], ["-", 10]]}, "tables", "credit.amount: 40 → 45"),
        ({"alerts__0__severity": "critical"}, "severities", "high-bill: info → critical"),
        ({"alerts__0__message": "Bill now {bill.amount}"}, "texts", "changed:message:high-bill"),
        ({"eligibility__0__because": "Loyal"}, "texts", "changed:because:eligibility:fee-waiver"),
        ({"escalation__0__priority": 1}, "priorities", "big-bill: 2 → 1"),
    ],
)
def test_the_flip_report_sees_every_change_an_agent_would_see(
    tmp_path: Path, edits: dict[str, Any], part: str, change: str
) -> None:
    """A candidate that fires the same rules but shows the agent something else (an offer's
    parameters, a table output, a severity, a text, a priority) changes the decision."""
    current = compile_ruleset(SHOWN)
    masker = Masker(b"k" * 32)
    context = {"customer": {"tier": "gold", "email": "a@example.com"}, "bill": {"amount": 120}}
    record = decision_record(
        current.evaluate(context, now=NOW), record_id="d-1", context=context, masker=masker
    )
    write_records(tmp_path, [record], indexed=0)
    assert replay(read_all(tmp_path), current).changed == 0  # itself: nothing changes
    report = replay(read_all(tmp_path), compile_ruleset(_changed(**edits))).to_dict()
    assert report["changed"] == 1
    assert [c["change"] for c in report[part]] == [change]
    assert report[part][0]["examples"] == ["d-1"]
    others = ("params", "priorities", "severities", "tables", "tree", "texts", "rules", "offers")
    assert all(report[p] == [] for p in others if p != part)
    assert "a@example.com" not in json.dumps(report)


def test_a_text_that_shows_a_masked_value_is_compared_only_where_it_can_be(
    tmp_path: Path,
) -> None:
    """The candidate sees the keyed hash of a masked field: a message that transforms it would
    differ for that reason alone, so it is not compared; the decision is flagged instead."""
    current = compile_ruleset(SHOWN)
    masker = Masker(b"k" * 32)
    context = {"customer": {"tier": "bronze", "email": "a@example.com"}, "bill": {"amount": 1}}
    record = decision_record(
        current.evaluate(context, now=NOW), record_id="d-1", context=context, masker=masker
    )
    write_records(tmp_path, [record], indexed=0)
    candidate = _changed(alerts__1__message="Write to {upper(customer.email)}")
    report = replay(read_all(tmp_path), compile_ruleset(candidate)).to_dict()
    assert report["read_masked_values"] == 1
    assert (report["changed"], report["texts"]) == (0, [])


def test_the_flip_report_sees_a_tree_ending_elsewhere(tmp_path: Path) -> None:
    tree = {
        "id": "route",
        "start": "tier",
        "nodes": {
            "tier": {"next": [{"when": 'customer.tier == "gold"', "goto": "vip"}, {"goto": "std"}]},
            "vip": {"outcome": "vip-line", "say": "Thank you"},
            "std": {"outcome": "standard"},
        },
    }
    current = compile_ruleset({**SHOWN, "trees": [tree]})
    context = {"customer": {"tier": "gold"}, "bill": {"amount": 1}}
    decision = current.evaluate(context, now=NOW, tree="route")
    record = decision_record(decision, record_id="d-1", context=context, inputs={"tree": "route"})
    write_records(tmp_path, [record], indexed=0)
    moved = copy.deepcopy(tree)
    moved["nodes"]["tier"]["next"][0]["when"] = 'customer.tier == "bronze"'
    candidate = compile_ruleset({**SHOWN, "trees": [moved]})
    report = replay(read_all(tmp_path), candidate).to_dict()
    assert report["changed"] == 1
    assert [c["change"] for c in report["tree"]] == ["vip-line → standard"]

"""``frontline audit query``, ``verify``, ``reindex``, ``migrate`` and ``replay`` on a local
data directory."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from audit.index import LedgerIndex
from audit.record import decode
from audit.recording import decision_record
from audit.segments import SegmentLog, segment_name
from audit.writer import LedgerWriter
from engine import compile_ruleset
from tests.unit.audit.test_migrate import legacy_ledger_db

from .test_cli import ROOT, run

RULESET = ROOT / "rulesets" / "retention-desk.yaml"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose ledger holds 30 retention-desk decisions for three customers,
    the first 20 in the query index and the last 10 only in the log."""
    directory = tmp_path_factory.mktemp("data")
    ledger_dir = directory / "ledger"
    compiled = compile_ruleset(RULESET.read_text(encoding="utf-8"))
    store = SegmentLog(ledger_dir, "local")
    writer = LedgerWriter(store)
    now = datetime.now(UTC)
    for k in range(30):
        context: dict[str, Any] = {
            "customer": {"tier": ["bronze", "gold"][k % 2], "tenure_months": k * 3},
            "interaction": {"channel": "voice", "intent": "cancel"},
            "history": {"contacts_7d": k % 5},
        }
        decision = compiled.evaluate(context, now=now - timedelta(minutes=30 - k))
        writer.append_blocking(
            decision_record(
                decision,
                record_id=f"d-{k}",
                context=context,
                customer_id=f"c-{k % 3}",
                agent_id="agent-7",
            )
        )
        if k == 19:
            index = LedgerIndex(ledger_dir)
            index.catch_up(SegmentLog(ledger_dir, "local", readonly=True))
            index.close()
    writer.close()
    store.close()
    return directory


def copy_of(data_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(data_dir, copy)
    return copy


def test_query_prints_jsonl_newest_first_with_filters(data_dir: Path) -> None:
    """Records print as JSONL newest first, filtered, with a count on stderr."""
    result = run("audit", "query", "--data-dir", str(data_dir), "--customer", "c-1")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in records] == [f"d-{k}" for k in range(28, 0, -3)]
    assert result.stderr.strip() == "frontline: 10 records"
    limited = run("audit", "query", "--data-dir", str(data_dir), "--limit", "4", "--since", "1h")
    assert [json.loads(x)["seq"] for x in limited.stdout.splitlines()] == [30, 29, 28, 27]
    assert limited.stderr.strip() == "frontline: 4 records"


def test_query_lines_are_the_stored_bytes(data_dir: Path) -> None:
    """Each JSONL line is a record's stored bytes: hashing it gives the record's hash."""
    result = run("audit", "query", "--data-dir", str(data_dir), "--limit", "25")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.encode().splitlines()
    log = SegmentLog(data_dir / "ledger", "local", readonly=True)
    frames = {f.seq: f for f in log.frames()}
    log.close()
    assert len(lines) == 25
    for line in lines:
        frame = frames[json.loads(line)["seq"]]
        assert line == frame.body
        assert hashlib.sha256(b"\x00" + line).digest() == frame.leaf


def test_query_as_csv_has_a_header_and_one_row_per_record(data_dir: Path) -> None:
    """CSV output has a header and one row per matching record, newest first."""
    result = run(
        "audit", "query", "--data-dir", str(data_dir), "--agent", "agent-7", "--format", "csv"
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 30
    assert rows[0]["id"] == "d-29" and rows[0]["ruleset"] == "retention-desk"
    assert [int(r["seq"]) for r in rows] == list(range(30, 0, -1))
    assert all(r["hash"].startswith("sha256:") for r in rows)
    assert result.stderr.strip() == "frontline: 30 records"


def test_outcome_filter_finds_the_decisions_with_that_offer(data_dir: Path) -> None:
    """--outcome finds exactly the decisions whose outputs hold that offer or rule."""
    found = run("audit", "query", "--data-dir", str(data_dir), "--outcome", "offer:waive-fee")
    assert found.returncode == 0, found.stderr
    records = [decode(line) for line in found.stdout.encode().splitlines()]
    everything = run("audit", "query", "--data-dir", str(data_dir))
    offered = [
        r.id
        for r in map(decode, everything.stdout.encode().splitlines())
        if any(e["offer"] == "waive-fee" for e in r.outputs.get("eligible", ()))
    ]
    assert records and [r.id for r in records] == offered
    by_rule = run("audit", "query", "--data-dir", str(data_dir), "--outcome", "rule:fee-waiver")
    fired = [decode(line) for line in by_rule.stdout.encode().splitlines()]
    assert fired and all(any(f.rule == "fee-waiver" for f in r.fired) for r in fired)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--outcome", "price"], "outcome must look like offer:<offer>"),
        (["--revision", "3"], "revision needs ruleset"),
        (["--since", "last tuesday"], "--since 'last tuesday' is neither an RFC 3339 time"),
        (["--limit", "0"], "--limit must be at least 1"),
        (["--kind", "vote"], "unknown kind 'vote'"),
    ],
)
def test_bad_filters_fail_with_one_sentence(data_dir: Path, args: list[str], message: str) -> None:
    """A filter that cannot apply fails with exit 1 and one sentence naming it."""
    result = run("audit", "query", "--data-dir", str(data_dir), *args)
    assert result.returncode == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_verify_passes_and_then_finds_a_changed_record(tmp_path: Path, data_dir: Path) -> None:
    """verify reports chain and index ok, then names the record whose bytes were changed."""
    ok = run("audit", "verify", "--data-dir", str(data_dir))
    assert ok.returncode == 0, ok.stderr
    ledger = data_dir / "ledger"
    assert f"{ledger} [local]: ok — 30 records, head seq 30" in ok.stdout
    assert f"{ledger} [local]: index ok — 20 records indexed" in ok.stdout
    copy = copy_of(data_dir, tmp_path)
    segment = copy / "ledger" / "local" / segment_name(1)
    data = segment.read_bytes()
    at = data.index(b'"id":"d-11"')
    end = data.index(b'"agent-7"', at)
    segment.write_bytes(data[:end] + b'"agent-8"' + data[end + 9 :])
    broken = run("audit", "verify", "--data-dir", str(copy))
    assert broken.returncode == 1
    assert f"[local]: broken at record 12: record 12 in {segment.name} at byte " in broken.stdout
    assert "its bytes do not match its hash" in broken.stdout


def test_verify_reports_a_tampered_index_and_reindex_repairs_it(
    tmp_path: Path, data_dir: Path
) -> None:
    """A changed index row fails verify with a pointer to reindex, which builds it again."""
    copy = copy_of(data_dir, tmp_path)
    with sqlite3.connect(copy / "ledger" / "index.db") as conn:
        conn.execute("UPDATE records SET customer_id = 'c-9' WHERE seq = 5")
    broken = run("audit", "verify", "--data-dir", str(copy))
    assert broken.returncode == 1
    ledger = copy / "ledger"
    assert f"{ledger} [local]: ok — 30 records" in broken.stdout  # the chain itself is fine
    assert (
        f"{ledger} [local]: index: index row for record 5 differs from the record: "
        "customer_id 'c-9' in the index, 'c-1' in the record"
    ) in broken.stdout
    assert (
        f"{ledger} [local]: the index disagrees with the segments; "
        f"`frontline audit reindex --data-dir {copy}` builds it again"
    ) in broken.stdout
    rebuilt = run("audit", "reindex", "--data-dir", str(copy))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.strip() == f"{ledger} [local]: 30 records indexed"
    lines = rebuilt.stderr.strip().splitlines()
    assert lines[-2].startswith("indexing ") and "100%" in lines[-2]
    assert "30 records" in lines[-2]
    assert lines[-1].startswith("frontline: the index of 30 records was built again in ")
    ok = run("audit", "verify", "--data-dir", str(copy))
    assert ok.returncode == 0, ok.stdout
    assert f"{ledger} [local]: index ok — 30 records indexed" in ok.stdout


def test_a_deleted_index_is_rebuilt_and_loses_nothing(tmp_path: Path, data_dir: Path) -> None:
    """Without index.db, query still finds every record and reindex builds it again."""
    copy = copy_of(data_dir, tmp_path)
    for path in (copy / "ledger").glob("index.db*"):
        path.unlink()
    found = run("audit", "query", "--data-dir", str(copy))
    assert found.returncode == 0, found.stderr
    assert found.stderr.strip() == "frontline: 30 records"
    assert run("audit", "reindex", "--data-dir", str(copy)).returncode == 0
    ok = run("audit", "verify", "--data-dir", str(copy))
    assert ok.returncode == 0 and "index ok — 30 records indexed" in ok.stdout


def test_a_missing_ledger_is_one_sentence(tmp_path: Path) -> None:
    """Each audit command on a data directory with no ledger fails with one sentence."""
    for command in ("verify", "query", "reindex"):
        result = run("audit", command, "--data-dir", str(tmp_path))
        assert result.returncode == 1
        assert result.stderr.strip() == (
            f"frontline: there is no ledger at {tmp_path / 'ledger'}; start the server once, "
            "or pass --data-dir"
        )


def test_an_earlier_ledger_must_be_migrated_first(tmp_path: Path) -> None:
    """A data directory holding only ledger.db is refused with the command that moves it."""
    legacy_ledger_db(tmp_path, {"local": 3})
    result = run("audit", "query", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"frontline: {tmp_path} holds a ledger of the earlier layout (ledger.db); run "
        f"`frontline audit migrate --data-dir {tmp_path}` or start the server once to move "
        "it into segments"
    )


def test_migrate_moves_an_earlier_ledger_and_then_it_verifies(tmp_path: Path) -> None:
    """audit migrate moves ledger.db into segments; verify and query then read them."""
    legacy_ledger_db(tmp_path, {"fl-a-0": 4, "fl-b-1": 2})
    moved = run("audit", "migrate", "--data-dir", str(tmp_path))
    assert moved.returncode == 0, moved.stderr
    ledger = tmp_path / "ledger"
    assert moved.stdout.splitlines() == [
        f"{ledger} [fl-a-0]: 4 records moved",
        f"{ledger} [fl-b-1]: 2 records moved",
    ]
    assert "frontline: 6 records moved" in moved.stderr
    assert (tmp_path / "ledger.db.migrated").exists()
    ok = run("audit", "verify", "--data-dir", str(tmp_path))
    assert ok.returncode == 0, ok.stdout
    assert f"{ledger} [fl-a-0]: ok — 5 records, head seq 5" in ok.stdout
    found = run("audit", "query", "--data-dir", str(tmp_path), "--kind", "checkpoint")
    assert found.stderr.strip() == "frontline: 2 records"
    again = run("audit", "migrate", "--data-dir", str(tmp_path))
    assert again.returncode == 1
    assert again.stderr.strip() == (
        f"frontline: {tmp_path} holds no ledger of the earlier layout (ledger.db)"
    )


def test_migrate_refuses_a_broken_earlier_chain(tmp_path: Path) -> None:
    """A broken old chain is refused in one sentence and left where it was."""
    legacy_ledger_db(tmp_path, {"local": 5})
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        conn.execute("DELETE FROM ledger WHERE seq = 3")
    result = run("audit", "migrate", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"frontline: record 4 of instance 'local' in {tmp_path / 'ledger.db'} does not verify; "
        "the earlier version's `frontline audit verify` shows where its chain breaks"
    )
    assert (tmp_path / "ledger.db").exists() and not (tmp_path / "ledger").exists()


def test_replay_prints_the_flip_report(tmp_path: Path, data_dir: Path) -> None:
    """replay re-evaluates the recorded decisions and reports what a candidate would change."""
    text = RULESET.read_text(encoding="utf-8")
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(text, encoding="utf-8")
    same = run("replay", str(candidate), "--data-dir", str(data_dir), "--since", "2h")
    assert same.returncode == 0, same.stderr
    report = json.loads(same.stdout)
    assert (report["replayed"], report["changed"]) == (30, 0)
    assert same.stderr.strip().splitlines()[-1] == "frontline: 0 of 30 decisions would change"
    # Waive the fee from the second contact instead of the third: gold customers (odd k) with
    # one contact this week (k % 5 == 1) gain the offer: k = 1, 11, 21.
    old = 'customer.tier in ["gold", "platinum"] and history.contacts_7d >= 2'
    assert old in text
    candidate.write_text(text.replace(old, old.replace(">= 2", ">= 1")), encoding="utf-8")
    changed = run(
        "replay", str(candidate), "--data-dir", str(data_dir), "--since", "2h", "--examples", "2"
    )
    assert changed.returncode == 0, changed.stderr
    report = json.loads(changed.stdout)
    assert report["changed"] == 3
    assert report["offers"] == [
        {"change": "gained:waive-fee", "count": 3, "examples": ["d-21", "d-11"]}
    ]
    assert report["rules"] == [
        {"change": "started:eligibility:fee-waiver", "count": 3, "examples": ["d-21", "d-11"]}
    ]


def test_replay_takes_a_deployed_revision(tmp_path: Path, data_dir: Path) -> None:
    """--ruleset and --revision replay a revision the server stored under the data directory;
    a revision that is not there, or both a document and a revision, is one plain sentence."""
    from adapters.files import FileRulesetStore

    copy = copy_of(data_dir, tmp_path)
    text = RULESET.read_text(encoding="utf-8")
    store = FileRulesetStore(copy / "rulesets")
    store.put_revision("retention-desk", "sha256:a", text)
    raised = text.replace("params: {max_amount: 25}", "params: {max_amount: 31}", 1)
    store.put_revision("retention-desk", "sha256:b", raised)
    common = ("--data-dir", str(copy), "--since", "2h")
    result = run("replay", "--ruleset", "retention-desk", "--revision", "2", *common)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    waived = report["changed"]
    assert waived > 0 and report["rules"] == [] and report["offers"] == []
    assert [(p["change"], p["count"]) for p in report["params"]] == [
        ('fee-waiver: {"max_amount":25} → {"max_amount":31}', waived)
    ]
    missing = run("replay", "--ruleset", "retention-desk", "--revision", "7", *common)
    assert missing.returncode != 0
    assert missing.stderr.strip().endswith("holds no revision 7 of ruleset 'retention-desk'")
    both = run("replay", str(RULESET), "--ruleset", "retention-desk", "--revision", "1", *common)
    assert both.returncode != 0 and "not both" in both.stderr
    neither = run("replay", *common)
    assert neither.returncode != 0 and "give the candidate" in neither.stderr

"""``frontline audit query``, ``audit verify`` and ``replay`` on a local data directory."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from audit.recording import decision_record
from audit.sqlite import SqliteLedgerStore
from audit.writer import LedgerWriter
from engine import compile_ruleset

from .test_cli import ROOT, run

RULESET = ROOT / "rulesets" / "retention-desk.yaml"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose ledger holds 30 retention-desk decisions for three customers."""
    directory = tmp_path_factory.mktemp("data")
    compiled = compile_ruleset(RULESET.read_text(encoding="utf-8"))
    store = SqliteLedgerStore(directory / "ledger.db")
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
    writer.close()
    store.close()
    return directory


def test_query_prints_jsonl_newest_first_with_filters(data_dir: Path) -> None:
    result = run("audit", "query", "--data-dir", str(data_dir), "--customer", "c-1")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in records] == [f"d-{k}" for k in range(28, 0, -3)]
    assert result.stderr.strip() == "frontline: 10 records"
    limited = run("audit", "query", "--data-dir", str(data_dir), "--limit", "4", "--since", "1h")
    assert [json.loads(x)["seq"] for x in limited.stdout.splitlines()] == [30, 29, 28, 27]


def test_query_as_csv_has_a_header_and_one_row_per_record(data_dir: Path) -> None:
    result = run(
        "audit", "query", "--data-dir", str(data_dir), "--agent", "agent-7", "--format", "csv"
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 30
    assert rows[0]["id"] == "d-29" and rows[0]["ruleset"] == "retention-desk"


def test_outcome_filter_finds_the_decisions_with_that_offer(data_dir: Path) -> None:
    found = run("audit", "query", "--data-dir", str(data_dir), "--outcome", "rule:no-email-on-file")
    assert found.returncode == 0, found.stderr
    records = [json.loads(line) for line in found.stdout.splitlines()]
    assert records and all(
        any(f["rule"] == "no-email-on-file" for f in r["fired"]) for r in records
    )


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
    result = run("audit", "query", "--data-dir", str(data_dir), *args)
    assert result.returncode == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_verify_passes_and_then_finds_a_changed_record(tmp_path: Path, data_dir: Path) -> None:
    ok = run("audit", "verify", "--data-dir", str(data_dir))
    assert ok.returncode == 0, ok.stderr
    assert "ok — 30 records, head seq 30" in ok.stdout
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "ledger.db").write_bytes((data_dir / "ledger.db").read_bytes())
    conn = sqlite3.connect(copy / "ledger.db")
    body = conn.execute("SELECT body FROM ledger WHERE seq = 12").fetchone()[0]
    conn.execute(
        "UPDATE ledger SET body = ? WHERE seq = 12",
        (bytes(body).replace(b'"agent-7"', b'"agent-8"'),),
    )
    conn.commit()
    conn.close()
    broken = run("audit", "verify", "--data-dir", str(copy))
    assert broken.returncode == 1
    assert "broken at record 12: record 12 was altered" in broken.stdout


def test_a_missing_ledger_is_one_sentence(tmp_path: Path) -> None:
    result = run("audit", "verify", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"frontline: there is no ledger at {tmp_path / 'ledger.db'}; start the server once, "
        "or pass --data-dir"
    )


def test_replay_prints_the_flip_report(tmp_path: Path, data_dir: Path) -> None:
    text = RULESET.read_text(encoding="utf-8")
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(text, encoding="utf-8")
    same = run("replay", str(candidate), "--data-dir", str(data_dir), "--since", "2h")
    assert same.returncode == 0, same.stderr
    report = json.loads(same.stdout)
    assert (report["replayed"], report["changed"]) == (30, 0)
    assert same.stderr.strip() == "frontline: 0 of 30 decisions would change"
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

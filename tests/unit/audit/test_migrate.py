"""Moving a ledger of the earlier layout (one SQLite file, ``ledger.db``) into segments."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest

import audit.migrate
from audit.migrate import MigrationError, legacy_ledger, migrate
from audit.record import GENESIS, ContextValue, LedgerRecord, decode, hash_text, seal
from audit.segments import SegmentLog, instances
from audit.verify import verify, verify_ledger

_SORTED = msgspec.json.Encoder(order="sorted")

LEGACY_SCHEMA = """
CREATE TABLE ledger (
    pos INTEGER PRIMARY KEY, instance TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL,
    kind TEXT NOT NULL, recorded_at TEXT NOT NULL, customer_id TEXT, agent_id TEXT,
    ruleset TEXT, revision INTEGER, body BLOB NOT NULL, hash TEXT NOT NULL, outcomes TEXT,
    UNIQUE (instance, seq)
);
"""


def legacy_record(n: int, instance: str) -> dict[str, Any]:
    """A decision as the earlier version recorded it: every field present, context values as
    objects (null for a field read but not had), the outcome lists in outputs, fired stored."""
    return {
        "id": f"d-{n}",
        "kind": "decision" if n % 5 else "ack",
        "seq": n,
        "recorded_at": f"2026-10-{1 + n % 28:02d}T09:00:00.000000Z",
        "instance": instance,
        "actor": {"principal": "agent-7", "role": "agent"},
        "customer_id": f"c-{n % 3}",
        "agent_id": "agent-7",
        "interaction_id": None,
        "ruleset": {"name": "retention-desk", "revision": 3, "digest": "sha256:ab"},
        "evaluated_at": "2026-10-01T09:00:00.000Z",
        "context": {
            "customer.tier": {"value": "gold", "source": "crm", "age_ms": 60_000},
            "customer.vip": {"value": False, "source": None, "age_ms": None},
            "customer.churn_score": {"value": None, "source": None, "age_ms": None},
        },
        "inputs": {"answers": {"reason": "price"}} if n % 2 else {},
        "outputs": {
            "eligible": [{"rule": "fee-waiver", "offer": "waive-fee", "because": "loyal"}],
            "escalation": None,
            "alerts": [],
            "next_step": None,
            "missing_fields": ["customer.churn_score"],
            "stale_fields": [],
        },
        "fired": [{"section": "eligibility", "rule": "fee-waiver", "because": "loyal"}],
        "missing_fields": ["customer.churn_score"],
        "stale_fields": [],
        "latency_us": 80 + n,
        "data": {},
        "prev_hash": "",
        "hash": "",
    }


def legacy_ledger_db(
    data_dir: Path, chains: dict[str, int], *, first_seq: int = 1
) -> dict[str, list[dict[str, Any]]]:
    """Write ``data_dir/ledger.db`` in the earlier layout, ``chains[name]`` records each,
    hashed the earlier way: sha256 of the sorted-key JSON with ``hash`` empty. Returns the
    records written per instance."""
    written: dict[str, list[dict[str, Any]]] = {}
    conn = sqlite3.connect(data_dir / "ledger.db")
    conn.executescript(LEGACY_SCHEMA)
    for name, count in chains.items():
        prev = GENESIS
        records = []
        for n in range(first_seq, first_seq + count):
            fields = {**legacy_record(n, name), "prev_hash": prev}
            fields["hash"] = "sha256:" + hashlib.sha256(_SORTED.encode(fields)).hexdigest()
            prev = fields["hash"]
            records.append(fields)
            conn.execute(
                "INSERT INTO ledger (instance, seq, id, kind, recorded_at, customer_id, agent_id,"
                " ruleset, revision, body, hash, outcomes) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    name,
                    n,
                    fields["id"],
                    fields["kind"],
                    fields["recorded_at"],
                    fields["customer_id"],
                    fields["agent_id"],
                    "retention-desk",
                    3,
                    _SORTED.encode(fields),
                    fields["hash"],
                    '[["offer","waive-fee"],["rule","fee-waiver"]]',
                ),
            )
        written[name] = records
    conn.commit()
    conn.close()
    return written


def test_an_earlier_ledger_is_moved_into_segments(tmp_path: Path) -> None:
    """Every old record lands in its instance's log, in order, same content, chained anew."""
    old = legacy_ledger_db(tmp_path, {"fl-a-0": 12, "fl-b-1": 5})
    ledger_dir = tmp_path / "ledger"
    assert migrate(tmp_path, ledger_dir) == {"fl-a-0": 12, "fl-b-1": 5}
    assert instances(ledger_dir) == ["fl-a-0", "fl-b-1"]
    for name, records in old.items():
        log = SegmentLog(ledger_dir, name, readonly=True)
        moved = [decode(f.body, hash_text(f.leaf)) for f in log.frames()]
        log.close()
        assert len(moved) == len(records) + 1
        for new, fields in zip(moved, records, strict=False):
            assert (new.id, new.kind, new.recorded_at) == (
                fields["id"],
                fields["kind"],
                fields["recorded_at"],
            )
            assert (new.instance, new.customer_id, new.latency_us) == (
                name,
                fields["customer_id"],
                fields["latency_us"],
            )
            assert new.inputs == fields["inputs"]
            assert new.missing_fields == ["customer.churn_score"]
            assert [msgspec.to_builtins(f) for f in new.fired] == fields["fired"]
        assert [r.seq for r in moved] == list(range(1, len(records) + 2))


def test_old_records_take_the_present_schema(tmp_path: Path) -> None:
    """Context values become arrays, a value not had is dropped, empty outputs go."""
    legacy_ledger_db(tmp_path, {"local": 1})
    migrate(tmp_path, tmp_path / "ledger")
    log = SegmentLog(tmp_path / "ledger", "local", readonly=True)
    first = next(log.frames())
    log.close()
    record = decode(first.body)
    assert record.context == {
        "customer.tier": ContextValue("gold", "crm", 60_000),
        "customer.vip": ContextValue(False),
    }
    assert record.outputs == {
        "eligible": [{"rule": "fee-waiver", "offer": "waive-fee", "because": "loyal"}]
    }
    assert b'"fired"' not in first.body and b'"hash"' not in first.body
    assert b'"customer.tier":["gold","crm",60000]' in first.body


def test_the_result_verifies_and_ends_with_a_migration_checkpoint(tmp_path: Path) -> None:
    """Each new log verifies, and its last record names the old chain's range and head."""
    old = legacy_ledger_db(tmp_path, {"local": 30}, first_seq=101)  # after an old retention
    migrate(tmp_path, tmp_path / "ledger")
    report = verify_ledger(tmp_path / "ledger")
    assert report.ok and report.records == 31
    log = SegmentLog(tmp_path / "ledger", "local", readonly=True)
    assert verify(log).head_seq == 31
    last = decode(dict(log.scan(30))[31])
    log.close()
    assert last.kind == "checkpoint"
    assert last.data == {
        "reason": "migration",
        "from": "ledger.db",
        "records": 30,
        "legacy_first_seq": 101,
        "legacy_last_seq": 130,
        "legacy_head_hash": old["local"][-1]["hash"],
    }


def test_the_old_file_is_kept_renamed_and_migration_happens_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """ledger.db becomes ledger.db.migrated, a sentence says so, and a second run does nothing."""
    legacy_ledger_db(tmp_path, {"local": 3})
    with caplog.at_level(logging.WARNING, logger="frontline.ledger"):
        migrate(tmp_path, tmp_path / "ledger")
    assert legacy_ledger(tmp_path) is None
    kept = tmp_path / "ledger.db.migrated"
    with sqlite3.connect(kept) as conn:
        assert conn.execute("SELECT count(*) FROM ledger").fetchone() == (3,)
    assert [r.getMessage() for r in caplog.records if r.name == "frontline.ledger"] == [
        f"moved the earlier SQLite ledger ({tmp_path / 'ledger.db'}) into segments under "
        f"{tmp_path / 'ledger'}: 3 records of local"
    ]
    assert migrate(tmp_path, tmp_path / "ledger") == {}
    assert verify_ledger(tmp_path / "ledger").records == 4


def _break(data_dir: Path, sql: str, *params: object) -> None:
    with sqlite3.connect(data_dir / "ledger.db") as conn:
        conn.execute(sql, params)


@pytest.mark.parametrize(
    ("damage", "seq"),
    [
        pytest.param(
            lambda d, old: _break(
                d,
                "UPDATE ledger SET body = CAST(replace(CAST(body AS TEXT), 'c-1', 'c-9') AS BLOB)"
                " WHERE seq = 4",
            ),
            4,
            id="changed-record",
        ),
        pytest.param(
            lambda d, old: _break(d, "DELETE FROM ledger WHERE seq = 6"), 7, id="deleted-record"
        ),
    ],
)
def test_a_broken_old_chain_is_refused_in_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: Any, seq: int
) -> None:
    """An old chain that does not verify is refused, and nothing is written or renamed."""
    monkeypatch.setattr(audit.migrate, "BATCH", 2)  # the break comes after batches are due
    old = legacy_ledger_db(tmp_path, {"fl-a-0": 3, "fl-b-1": 10})
    damage(tmp_path, old)
    with pytest.raises(MigrationError) as refused:
        migrate(tmp_path, tmp_path / "ledger")
    assert str(refused.value) == (
        f"record {seq} of instance 'fl-b-1' in {tmp_path / 'ledger.db'} does not verify; the "
        "earlier version's `frontline audit verify` shows where its chain breaks"
    )
    assert "\n" not in str(refused.value)
    assert legacy_ledger(tmp_path) is not None
    assert not (tmp_path / "ledger").exists()  # not even the intact chain of fl-a-0


def test_an_instance_that_already_has_a_log_is_refused(tmp_path: Path) -> None:
    """Migration never writes into an existing log: it says which instance to move aside."""
    legacy_ledger_db(tmp_path, {"local": 2})
    log = SegmentLog(tmp_path / "ledger", "local")
    log.append(
        [
            seal(
                LedgerRecord(id="x", kind="decision"),
                seq=1,
                recorded_at="2026-11-01T00:00:00Z",
                instance="local",
                prev_hash=GENESIS,
            )
        ]
    )
    log.close()
    with pytest.raises(MigrationError, match="holds instance 'local', which already has a log"):
        migrate(tmp_path, tmp_path / "ledger")
    assert legacy_ledger(tmp_path) is not None

"""Moving a ledger of the earlier layout (one SQLite file, ``ledger.db``) into segments.

Earlier versions kept every instance's chain in ``<data dir>/ledger.db``, each record's hash
taken over its JSON with sorted keys. Migration checks that old chain record by record
(refusing, with one sentence, a chain that does not verify), then writes its records in
order into the instance's new log: same ids, kinds, times and contents, numbered 1, 2, 3, …
and chained the new way. The last record it writes is a ``checkpoint`` naming the old
chain's first and last ``seq`` and its head hash, so the old file (kept, renamed
``ledger.db.migrated``) can still be matched against the new log.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from audit.record import GENESIS, ContextValue, LedgerRecord, Sealed, seal
from audit.segments import SegmentLog, segments_of
from audit.writer import utc_now

log = logging.getLogger("frontline.ledger")

LEGACY_FILE = "ledger.db"
BATCH = 5_000
_SORTED = msgspec.json.Encoder(order="sorted")


class MigrationError(RuntimeError):
    """The earlier ledger cannot be moved; the message says why and what to do."""


def legacy_ledger(data_dir: Path) -> Path | None:
    """The earlier layout's ledger file in ``data_dir``, if one waits to be migrated."""
    path = Path(data_dir) / LEGACY_FILE
    return path if path.is_file() else None


def migrate(
    data_dir: Path | str, ledger_dir: Path | str, progress: Callable[[int], None] | None = None
) -> dict[str, int]:
    """Move every chain of ``data_dir/ledger.db`` into segments under ``ledger_dir``; return
    the records moved per instance. The old file is renamed ``ledger.db.migrated``."""
    data_dir, ledger_dir = Path(data_dir), Path(ledger_dir)
    path = legacy_ledger(data_dir)
    if path is None:
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [row[0] for row in conn.execute("SELECT DISTINCT instance FROM ledger")]
        for name in names:
            if segments_of(ledger_dir / name):
                raise MigrationError(
                    f"{path} holds instance {name!r}, which already has a log in {ledger_dir}; "
                    "move one of them aside"
                )
        for name in names:  # every old chain is checked before anything is written
            for _ in _legacy(conn, path, name):
                pass
        moved = {}
        done = 0
        for name in names:
            moved[name] = _move(conn, path, name, ledger_dir)
            done += moved[name]
            if progress is not None:
                progress(done)
    finally:
        conn.close()
    # Fold the old file's write-ahead log into it, so the renamed file stands alone.
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
    finally:
        conn.close()
    path.rename(path.with_name(LEGACY_FILE + ".migrated"))
    log.warning(
        "moved the earlier SQLite ledger (%s) into segments under %s: %s",
        path,
        ledger_dir,
        ", ".join(f"{n} records of {name}" for name, n in moved.items()) or "it was empty",
    )
    return moved


def _legacy(
    conn: sqlite3.Connection, path: Path, name: str
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The old chain of ``name``, checked as it is read."""
    previous: str | None = None
    for seq, body in conn.execute(
        "SELECT seq, body FROM ledger WHERE instance = ? ORDER BY seq", (name,)
    ):
        fields = msgspec.json.decode(bytes(body))
        claimed = fields.get("hash")
        digest = "sha256:" + hashlib.sha256(_SORTED.encode({**fields, "hash": ""})).hexdigest()
        if digest != claimed or (previous is not None and fields.get("prev_hash") != previous):
            raise MigrationError(
                f"record {seq} of instance {name!r} in {path} does not verify; the earlier "
                "version's `frontline audit verify` shows where its chain breaks"
            )
        previous = claimed
        yield seq, fields


def _converted(fields: dict[str, Any]) -> LedgerRecord:
    """An old record in the present schema: context values as arrays, nulls left out."""
    context = {
        path: ContextValue(value["value"], value.get("source"), value.get("age_ms"))
        for path, value in (fields.get("context") or {}).items()
        if isinstance(value, dict) and value.get("value") is not None
    }
    outputs = {
        k: v
        for k, v in (fields.get("outputs") or {}).items()
        if v and k not in ("missing_fields", "stale_fields")
    }
    kept = {k: v for k, v in fields.items() if k not in ("hash", "fired", "context", "outputs")}
    record = msgspec.convert(kept, LedgerRecord)
    return msgspec.structs.replace(record, context=context, outputs=outputs)


def _move(conn: sqlite3.Connection, path: Path, name: str, ledger_dir: Path) -> int:
    target = SegmentLog(ledger_dir, name)
    try:
        seq, prev = 0, GENESIS
        batch: list[Sealed] = []
        first_old = last_old = 0
        last_hash = GENESIS
        for old_seq, fields in _legacy(conn, path, name):
            first_old = first_old or old_seq
            last_old, last_hash = old_seq, fields["hash"]
            seq += 1
            sealed = seal(
                _converted(fields),
                seq=seq,
                recorded_at=fields["recorded_at"],
                instance=name,
                prev_hash=prev,
            )
            prev = sealed.record.hash
            batch.append(sealed)
            if len(batch) >= BATCH:
                target.append(batch)
                batch = []
        seq += 1
        batch.append(
            seal(
                LedgerRecord(
                    id=f"checkpoint-{uuid.uuid4()}",
                    kind="checkpoint",
                    data={
                        "reason": "migration",
                        "from": LEGACY_FILE,
                        "records": seq - 1,
                        "legacy_first_seq": first_old,
                        "legacy_last_seq": last_old,
                        "legacy_head_hash": last_hash,
                    },
                ),
                seq=seq,
                recorded_at=utc_now(),
                instance=name,
                prev_hash=prev,
            )
        )
        target.append(batch)
        return seq - 1
    finally:
        target.close()

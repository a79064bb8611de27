"""The SQLite ledger store: WAL mode, one fsync per committed batch.

``synchronous=FULL`` in WAL mode syncs the WAL on every commit, so a batch that ``append``
returned from survives a kill -9 or a power cut. Readers use their own connections and never
block the writer (WAL).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

from audit.record import GENESIS, LedgerRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    pos          INTEGER PRIMARY KEY,
    instance     TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    id           TEXT NOT NULL,
    kind         TEXT NOT NULL,
    recorded_at  TEXT NOT NULL,
    customer_id  TEXT,
    agent_id     TEXT,
    ruleset      TEXT,
    revision     INTEGER,
    body         BLOB NOT NULL,
    hash         TEXT NOT NULL,
    outcomes     TEXT,
    UNIQUE (instance, seq)
);
CREATE INDEX IF NOT EXISTS ledger_id ON ledger (id);
CREATE INDEX IF NOT EXISTS ledger_customer ON ledger (customer_id, pos);
CREATE INDEX IF NOT EXISTS ledger_agent ON ledger (agent_id, pos);
CREATE INDEX IF NOT EXISTS ledger_ruleset ON ledger (ruleset, revision, pos);
CREATE INDEX IF NOT EXISTS ledger_time ON ledger (recorded_at, pos);
CREATE TABLE IF NOT EXISTS ledger_outcome (
    kind  TEXT NOT NULL,
    value TEXT NOT NULL,
    pos   INTEGER NOT NULL,
    PRIMARY KEY (kind, value, pos)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS ledger_outcomes AFTER INSERT ON ledger
WHEN NEW.outcomes IS NOT NULL BEGIN
    INSERT OR IGNORE INTO ledger_outcome
    SELECT value ->> 0, value ->> 1, NEW.pos FROM json_each(NEW.outcomes);
END;
"""

# A whole batch is one statement: its rows arrive as one JSON array, and the trigger above
# files each record's outcomes. One statement is one implicit transaction (one fsync), and,
# what matters more, one release of the GIL: executemany releases and re-takes it for every
# row, and under load each re-take waits for the event loop's thread to let go of it
# (measured: 30 records/s against a busy thread, 2,900 with one statement per batch).
_INSERT = """
INSERT INTO ledger (instance, seq, id, kind, recorded_at, customer_id, agent_id, ruleset,
                    revision, body, hash, outcomes)
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5,
       value ->> 6, value ->> 7, value ->> 8, CAST(value ->> 9 AS BLOB), value ->> 10,
       value ->> 11
FROM json_each(?)
"""
_ENCODER = msgspec.json.Encoder()


class LedgerLayoutError(RuntimeError):
    """The file holds a ledger in a layout this version does not read."""


def connect(
    path: Path | str, *, readonly: bool = False, durable: bool = True
) -> sqlite3.Connection:
    """A connection with the ledger's pragmas; the schema is created by the first writer.

    ``durable=False`` skips the fsync of each commit: only for building test fixtures.
    """
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        columns = {row[1] for row in conn.execute("PRAGMA table_info(ledger)")}
        if columns and "outcomes" not in columns:
            conn.close()
            raise LedgerLayoutError(
                f"{path} holds a ledger in an earlier development layout; move it aside and "
                "start again"
            )
        conn.executescript(_SCHEMA)
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class SqliteLedgerStore:
    """One instance's chain in a SQLite ledger file that several instances may share.

    Each server process (each worker) is an instance with its own hash chain (``seq`` 1, 2,
    3, … per instance); ``pos`` orders every record of the file, across instances, in the
    order they were committed, and is what queries page by. ``append`` is called by one
    writer thread at a time per instance; instances serialise on SQLite's write lock.
    """

    def __init__(self, path: Path | str, instance: str = "local", *, durable: bool = True) -> None:
        self.path = Path(path)
        self.instance = instance
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = connect(self.path, durable=durable)
        self._lock = threading.Lock()

    def head(self) -> tuple[int, str]:
        with self._lock:
            row = self._conn.execute(
                "SELECT seq, hash FROM ledger WHERE instance = ? ORDER BY seq DESC LIMIT 1",
                (self.instance,),
            ).fetchone()
        return (row[0], row[1]) if row else (0, GENESIS)

    def append(self, batch: Sequence[tuple[LedgerRecord, bytes]]) -> None:
        rows = []
        for record, body in batch:
            outcomes = record.outcomes()
            rows.append(
                (
                    self.instance,
                    *record.indexed(),
                    body.decode("utf-8"),
                    record.hash,
                    _ENCODER.encode(outcomes).decode() if outcomes else None,
                )
            )
        with self._lock:
            self._conn.execute(_INSERT, (_ENCODER.encode(rows),))

    def scan(self, after_seq: int = 0, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
        """This instance's records in ``seq`` order."""
        reader = connect(self.path, readonly=True)
        try:
            sql = "SELECT seq, body FROM ledger WHERE instance = ? AND seq > ? ORDER BY seq"
            params: tuple[object, ...] = (self.instance, after_seq)
            if limit is not None:
                sql += " LIMIT ?"
                params = (*params, limit)
            for seq, body in reader.execute(sql, params):
                yield seq, bytes(body)
        finally:
            reader.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def instances(path: Path | str) -> list[str]:
    """The instances with records in the ledger file at ``path``."""
    conn = connect(path, readonly=True)
    try:
        # A skip-scan over the (instance, seq) index: one probe per instance, not per record.
        rows = conn.execute(
            "WITH RECURSIVE i(name) AS ("
            " SELECT min(instance) FROM ledger"
            " UNION ALL"
            " SELECT (SELECT min(instance) FROM ledger WHERE instance > i.name) FROM i"
            " WHERE i.name IS NOT NULL"
            ") SELECT name FROM i WHERE name IS NOT NULL"
        )
        return [row[0] for row in rows]
    finally:
        conn.close()

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

from audit.record import GENESIS, LedgerRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL,
    kind         TEXT NOT NULL,
    recorded_at  TEXT NOT NULL,
    customer_id  TEXT,
    agent_id     TEXT,
    ruleset      TEXT,
    revision     INTEGER,
    body         BLOB NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_id ON ledger (id);
CREATE INDEX IF NOT EXISTS ledger_customer ON ledger (customer_id, seq);
CREATE INDEX IF NOT EXISTS ledger_agent ON ledger (agent_id, seq);
CREATE INDEX IF NOT EXISTS ledger_ruleset ON ledger (ruleset, revision, seq);
CREATE INDEX IF NOT EXISTS ledger_time ON ledger (recorded_at, seq);
CREATE TABLE IF NOT EXISTS ledger_outcome (
    kind  TEXT NOT NULL,
    value TEXT NOT NULL,
    seq   INTEGER NOT NULL,
    PRIMARY KEY (kind, value, seq)
) WITHOUT ROWID;
"""


def connect(path: Path | str, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection with the ledger's pragmas; the schema is created by the first writer."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(_SCHEMA)
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class SqliteLedgerStore:
    """A LedgerStore in one SQLite file. ``append`` is called by one writer thread at a time."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = connect(self.path)
        self._lock = threading.Lock()

    def head(self) -> tuple[int, str]:
        with self._lock:
            row = self._conn.execute(
                "SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return (row[0], row[1]) if row else (0, GENESIS)

    def append(self, batch: Sequence[tuple[LedgerRecord, bytes]]) -> None:
        rows = []
        outcomes: list[tuple[str, str, int]] = []
        for record, body in batch:
            ruleset = record.ruleset
            rows.append(
                (
                    record.seq,
                    record.id,
                    record.kind,
                    record.recorded_at,
                    record.customer_id,
                    record.agent_id,
                    ruleset.name if ruleset else None,
                    ruleset.revision if ruleset else None,
                    body,
                    record.hash,
                )
            )
            outcomes.extend((kind, value, record.seq) for kind, value in record.outcomes())
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT INTO ledger VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
                conn.executemany("INSERT OR IGNORE INTO ledger_outcome VALUES (?,?,?)", outcomes)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def scan(self, after_seq: int = 0, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
        reader = connect(self.path, readonly=True)
        try:
            sql = "SELECT seq, body FROM ledger WHERE seq > ? ORDER BY seq"
            params: tuple[int, ...] = (after_seq,)
            if limit is not None:
                sql += " LIMIT ?"
                params = (after_seq, limit)
            for seq, body in reader.execute(sql, params):
                yield seq, bytes(body)
        finally:
            reader.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

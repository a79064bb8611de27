"""The SQLite ledger store: WAL mode, one fsync per committed batch.

``synchronous=FULL`` in WAL mode syncs the WAL on every commit, so a batch that ``append``
returned from survives a kill -9 or a power cut. Readers use their own connections and never
block the writer (WAL).
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

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
DROP TRIGGER IF EXISTS ledger_outcomes;
"""
# ``outcomes`` is left NULL: the writer files each record's outcomes in ledger_outcome itself
# (an earlier layout did it in a trigger, from that column's JSON, at twice the cost).

# A batch is a few statements in one transaction: the rows of each table as one multi-row
# INSERT, not one statement per row. Each statement releases and re-takes the GIL once, and
# under load each re-take waits for the event loop's thread to let go of it (measured with
# executemany, which does that for every row: 30 records/s against a busy thread).
_LEDGER_COLUMNS = (
    "pos, instance, seq, id, kind, recorded_at, customer_id, agent_id, ruleset, revision, "
    "body, hash"
)
_LEDGER_ROWS = 2_000  # 12 parameters a row: 24,000, under SQLite's 32,766 a statement
_OUTCOME_ROWS = 10_000  # 3 parameters a row


@functools.cache
def _insert(table: str, columns: str, width: int, rows: int) -> str:
    """An INSERT of ``rows`` rows; rows whose first value is NULL are padding and skipped.
    A ledger row that repeats an (instance, seq) fails the batch; a record naming the same
    outcome twice is filed once.

    Statements come in a few sizes (_sizes), padded up, so that SQLite's statement cache
    serves them: compiling a fresh one costs more (≈ 4.5 µs a row) than executing it.
    """
    values = "(" + ",".join("?" * width) + ")"
    return (
        f"INSERT {'OR IGNORE ' if table == 'ledger_outcome' else ''}INTO {table} ({columns}) "
        f"SELECT * FROM (VALUES {','.join([values] * rows)}) WHERE column1 IS NOT NULL"
    )


@functools.cache
def _sizes(most: int) -> tuple[int, ...]:
    """Statement sizes: powers of four below ``most``, then ``most``."""
    sizes = [4]
    while sizes[-1] * 4 < most:
        sizes.append(sizes[-1] * 4)
    return (*sizes, most)


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
        """Store a batch in one transaction: committed, and so durable, on return."""
        with self._lock:
            conn = self._conn
            # IMMEDIATE takes the write lock now: no other instance can take the next ``pos``.
            conn.execute("BEGIN IMMEDIATE")
            try:
                (pos,) = conn.execute("SELECT coalesce(max(pos), 0) FROM ledger").fetchone()
                rows: list[object] = []
                outcomes: list[object] = []
                for record, body in batch:
                    pos += 1
                    rows += (pos, self.instance, *record.indexed(), body, record.hash)
                    for kind, value in record.outcomes():
                        outcomes += (kind, value, pos)
                self._insert_rows("ledger", _LEDGER_COLUMNS, 12, _LEDGER_ROWS, rows)
                self._insert_rows("ledger_outcome", "kind, value, pos", 3, _OUTCOME_ROWS, outcomes)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _insert_rows(
        self, table: str, columns: str, width: int, most: int, flat: list[object]
    ) -> None:
        """``flat`` (rows of ``width`` values, end to end) in INSERTs of up to ``most`` rows,
        the last padded with NULL rows up to the next statement size."""
        step = most * width
        for start in range(0, len(flat), step):
            chunk = flat[start : start + step]
            count = len(chunk) // width
            size = next(n for n in _sizes(most) if n >= count)
            if size > count:
                chunk += [None] * ((size - count) * width)
            self._conn.execute(_insert(table, columns, width, size), chunk)

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

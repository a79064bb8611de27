"""The PostgreSQL ledger store: the shared ledger of several instances.

Each instance's chain is keyed by ``(instance, seq)``, so ``verify`` runs per instance as on
SQLite and a batch shipped twice cannot be stored twice (the primary key refuses it, and the
shipper reads the head before every batch). A batch is one ``COPY`` in one transaction.
Records arrive here from each instance's segments (audit/shipper.py), never directly from a
request: an unreachable database must not stop decisions. ``body`` holds a record's bytes
exactly as its log stores them, so the chain verifies here as it does there.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql

from audit.index import read_indexed
from audit.record import GENESIS, Sealed

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    instance     TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    pos          BIGSERIAL,
    id           TEXT NOT NULL,
    kind         TEXT NOT NULL,
    recorded_at  TEXT NOT NULL,
    customer_id  TEXT,
    agent_id     TEXT,
    ruleset      TEXT,
    revision     INTEGER,
    body         BYTEA COMPRESSION lz4 NOT NULL,
    hash         TEXT NOT NULL,
    PRIMARY KEY (instance, seq)
);
CREATE INDEX IF NOT EXISTS ledger_id ON ledger (id);
CREATE INDEX IF NOT EXISTS ledger_customer ON ledger (customer_id, pos);
CREATE INDEX IF NOT EXISTS ledger_recorded ON ledger (recorded_at, pos);
"""
_COLUMNS = (
    "instance",
    "seq",
    "id",
    "kind",
    "recorded_at",
    "customer_id",
    "agent_id",
    "ruleset",
    "revision",
    "body",
    "hash",
)


def row(instance: str, seq: int, body: bytes, hash: str) -> tuple[Any, ...]:
    """A record's row in ``_COLUMNS`` order, its columns read from its stored bytes."""
    r = read_indexed(body)
    rs = r.ruleset
    return (
        instance,
        seq,
        r.id,
        r.kind,
        r.recorded_at,
        r.customer_id,
        r.agent_id,
        rs.name if rs is not None else None,
        rs.revision if rs is not None else None,
        body,
        hash,
    )


class PostgresLedgerStore:
    """One instance's chain in a PostgreSQL ledger shared by every instance."""

    def __init__(self, url: str, instance: str = "local", *, schema: str = "public") -> None:
        self.instance = instance
        self.schema = schema
        self._conn = psycopg.connect(url, autocommit=False, connect_timeout=5)
        with self._conn.transaction():
            self._conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
            )
            self._conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            # Two instances creating the tables at once would collide; one does it at a time.
            self._conn.execute("SELECT pg_advisory_xact_lock(7274358)")
            self._conn.execute(_SCHEMA)

    def head(self) -> tuple[int, str]:
        with self._conn.transaction():
            row = self._conn.execute(
                "SELECT seq, hash FROM ledger WHERE instance = %s ORDER BY seq DESC LIMIT 1",
                (self.instance,),
            ).fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)

    def append(self, batch: Sequence[Sealed]) -> None:
        """Store a batch in one transaction (committed, and so durable, on return)."""
        rows = [row(self.instance, s.record.seq, s.body, s.record.hash) for s in batch]
        self.append_rows(rows)

    def append_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Store rows in ``_COLUMNS`` order in one COPY, one transaction."""
        statement = sql.SQL("COPY ledger ({}) FROM STDIN").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in _COLUMNS)
        )
        with (
            self._conn.transaction(),
            self._conn.cursor() as cursor,
            cursor.copy(statement) as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def scan(self, after_seq: int = 0, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
        """This instance's records in ``seq`` order, read in pages."""
        page = 5_000 if limit is None else min(limit, 5_000)
        left = limit
        while left is None or left > 0:
            with self._conn.transaction():
                rows = self._conn.execute(
                    "SELECT seq, body FROM ledger WHERE instance = %s AND seq > %s "
                    "ORDER BY seq LIMIT %s",
                    (self.instance, after_seq, page if left is None else min(page, left)),
                ).fetchall()
            for seq, body in rows:
                yield int(seq), bytes(body)
            if not rows:
                return
            after_seq = int(rows[-1][0])
            if left is not None:
                left -= len(rows)

    def count(self) -> int:
        with self._conn.transaction():
            row = self._conn.execute(
                "SELECT count(*) FROM ledger WHERE instance = %s", (self.instance,)
            ).fetchone()
        return int(row[0]) if row else 0

    def erase(self, instance: str, blanks: Sequence[tuple[int, bytes]]) -> None:
        """Replace shipped records' bytes with their tombstones and clear the columns that
        said what they were about (erasure: audit/erasure.py)."""
        with self._conn.transaction(), self._conn.cursor() as cur:
            cur.executemany(
                "UPDATE ledger SET body = %s, kind = 'erased', customer_id = NULL,"
                " agent_id = NULL, ruleset = NULL, revision = NULL"
                " WHERE instance = %s AND seq = %s",
                [(body, instance, seq) for seq, body in blanks],
            )

    def close(self) -> None:
        self._conn.close()

"""Retention: delete records older than a configured age, in whole ranges, and say so in the chain.

Records are deleted only as a prefix of the chain — every record up to some ``seq`` — never
one here and one there, so what remains is still one unbroken chain. Before deleting, a
``checkpoint`` record is appended (and durable) naming the last ``seq`` to be deleted and that
record's ``hash``; ``verify`` accepts a chain that starts after such a checkpoint's
``deleted_through`` when the first remaining record's ``prev_hash`` equals its ``anchor_hash``.
The checkpoint is written first, so a crash in the middle of a deletion leaves a ledger that
still verifies (a shorter prefix gone, or none), and running retention again finishes it.

Deletion runs in chunks of ``chunk`` records, one short transaction each, so the ledger writer
is never held up for long.
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from audit.record import Actor, LedgerRecord
from audit.sqlite import connect
from audit.writer import LedgerWriter


@dataclass(frozen=True)
class RetentionResult:
    """What a retention run deleted: records ``first``..``through`` (none when ``deleted`` is 0)."""

    deleted: int
    first: int | None = None
    through: int | None = None
    checkpoint_seq: int | None = None
    cutoff: str = ""


def apply_retention(
    path: Path | str,
    writer: LedgerWriter,
    *,
    older_than: timedelta,
    now: datetime,
    keep_from: int | None = None,
    actor: Actor | None = None,
    chunk: int = 10_000,
) -> RetentionResult:
    """Delete the records of the SQLite ledger at ``path`` recorded before ``now - older_than``.

    Only the chain of ``writer``'s instance is pruned (each instance prunes its own), and the
    checkpoint joins that chain. ``keep_from``
    protects records from that ``seq`` on whatever their age: a spool passes the first seq
    not yet shipped, so nothing unshipped is ever deleted.
    """
    if older_than <= timedelta(0):
        raise ValueError("the retention age must be positive")
    if chunk < 1:
        raise ValueError("chunk must be at least 1")
    cutoff = _rfc3339(now - older_than)
    conn = connect(path)
    try:
        first, through, anchor = _range(conn, writer.instance, cutoff, keep_from)
        if first is None or through is None or anchor is None:
            return RetentionResult(deleted=0, cutoff=cutoff)
        checkpoint = writer.append_blocking(
            LedgerRecord(
                id=f"checkpoint-{uuid.uuid4()}",
                kind="checkpoint",
                actor=actor,
                data={
                    "reason": "retention",
                    "cutoff": cutoff,
                    "deleted_from": first,
                    "deleted_through": through,
                    "anchor_hash": anchor,
                    "records": through - first + 1,
                },
            )
        )
        deleted = 0
        for low in range(first, through + 1, chunk):
            high = min(low + chunk - 1, through)
            conn.execute("BEGIN IMMEDIATE")
            try:
                span = conn.execute(
                    "SELECT min(pos), max(pos) FROM ledger"
                    " WHERE instance = ? AND seq BETWEEN ? AND ?",
                    (writer.instance, low, high),
                ).fetchone()
                cursor = conn.execute(
                    "DELETE FROM ledger WHERE instance = ? AND seq BETWEEN ? AND ?",
                    (writer.instance, low, high),
                )
                if span[0] is not None:
                    # Outcome rows of this instance's records in the span (other instances'
                    # records interleaved there keep theirs).
                    conn.execute(
                        "DELETE FROM ledger_outcome WHERE pos BETWEEN ? AND ?"
                        " AND pos NOT IN (SELECT pos FROM ledger WHERE pos BETWEEN ? AND ?)",
                        (span[0], span[1], span[0], span[1]),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            deleted += cursor.rowcount
        return RetentionResult(deleted, first, through, checkpoint.seq, cutoff)
    finally:
        conn.close()


def _range(
    conn: sqlite3.Connection, instance: str, cutoff: str, keep_from: int | None
) -> tuple[int | None, int | None, str | None]:
    """The first stored seq, the last seq to delete and its hash; Nones if nothing is due."""
    row = conn.execute(
        "SELECT min(seq), max(seq) FROM ledger WHERE instance = ?", (instance,)
    ).fetchone()
    first, last = row
    if first is None:
        return None, None, None
    # The first record not old enough ends the deletable prefix (recorded_at could step back
    # if the clock did; the prefix stops there rather than skipping a newer record).
    young = conn.execute(
        "SELECT min(seq) FROM ledger WHERE instance = ? AND recorded_at >= ?", (instance, cutoff)
    ).fetchone()[0]
    through = (young - 1) if young is not None else last
    if keep_from is not None:
        through = min(through, keep_from - 1)
    if through < first:
        return None, None, None
    anchor = conn.execute(
        "SELECT hash FROM ledger WHERE instance = ? AND seq = ?", (instance, through)
    ).fetchone()[0]
    return first, through, anchor


def _rfc3339(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")

"""Retention: remove old records as whole segments, and say so in the chain first.

Records go only as a prefix of the chain, a whole segment at a time — every record up to the
last ``seq`` of a segment — never one here and one there, so what remains is still one
unbroken chain, and removing is unlinking files. Before anything is removed, a
``checkpoint`` record is appended (and durable) naming the last ``seq`` to go and that
record's ``hash``; ``verify`` accepts a chain that starts after such a checkpoint's
``deleted_through`` when the first remaining record's ``prev_hash`` equals its
``anchor_hash``. The checkpoint is written first, so a crash in the middle leaves a ledger
that still verifies, and running retention again finishes the job. The segment being
written is never removed, so a log is never left without its head.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from audit.index import INDEX_FILE, LedgerIndex, micros, read_indexed
from audit.proofs import keep_pruned
from audit.record import Actor, LedgerRecord, hash_text
from audit.segments import Frame, LogError, SegmentLog, segment_name, walk
from audit.writer import LedgerWriter
from engine.times import format_time


@dataclass(frozen=True)
class RetentionResult:
    """What a retention run removed: records ``first``..``through`` (none when ``deleted`` is 0)."""

    deleted: int
    first: int | None = None
    through: int | None = None
    checkpoint_seq: int | None = None
    cutoff: str = ""
    segments: int = 0


def apply_retention(
    ledger_dir: Path | str,
    writer: LedgerWriter,
    *,
    older_than: timedelta,
    now: datetime,
    keep_from: int | None = None,
    actor: Actor | None = None,
) -> RetentionResult:
    """Remove the segments of ``writer``'s instance whose records were all recorded before
    ``now - older_than``.

    Only the chain of ``writer``'s instance is pruned (each instance prunes its own), and the
    checkpoint joins that chain. ``keep_from`` protects records from that ``seq`` on whatever
    their age: with PostgreSQL it is the first seq not yet shipped, so nothing unshipped goes.
    """
    if older_than <= timedelta(0):
        raise ValueError("the retention age must be positive")
    ledger_dir = Path(ledger_dir)
    cutoff = _rfc3339(now - older_than)
    log = SegmentLog(ledger_dir, writer.instance, readonly=True)
    try:
        due = _due(log, micros(cutoff), keep_from)
        if not due:
            return RetentionResult(deleted=0, cutoff=cutoff)
        first, last = due[0][0], due[-1][1]
        checkpoint = writer.append_blocking(
            LedgerRecord(
                id=f"checkpoint-{uuid.uuid4()}",
                kind="checkpoint",
                actor=actor,
                data={
                    "reason": "retention",
                    "cutoff": cutoff,
                    "deleted_from": first,
                    "deleted_through": last.seq,
                    "anchor_hash": hash_text(last.leaf),
                    "records": last.seq - first + 1,
                    "segments": len(due),
                },
            )
        )
        if (ledger_dir / INDEX_FILE).exists():
            index = LedgerIndex(ledger_dir)
            try:
                index.forget_through(writer.instance, last.seq)
            finally:
                index.close()
        # The tree over the log still needs the removed records' leaves: kept first.
        keep_pruned(log.directory, first, _leaves(log, first, last.seq))
        log.remove_segments_through(last.seq)
        return RetentionResult(
            last.seq - first + 1, first, last.seq, checkpoint.seq, cutoff, len(due)
        )
    finally:
        log.close()


def _leaves(log: SegmentLog, first: int, through: int) -> list[bytes]:
    """The leaf hashes of records ``first`` … ``through``, as their frames hold them."""
    leaves = []
    for frame in log.frames(after_seq=first - 1):
        if frame.seq > through:
            break
        leaves.append(frame.leaf)
    if len(leaves) != through - first + 1:
        raise LogError(f"records {first} to {through} of {log.instance} cannot all be read")
    return leaves


def _due(log: SegmentLog, cutoff: int, keep_from: int | None) -> list[tuple[int, Frame]]:
    """The leading segments whose every record is older than ``cutoff`` (and below
    ``keep_from``): each segment's first seq and last frame. Never the last segment."""
    segments = log.segments()
    due = []
    for first in segments[:-1]:
        last = None
        for item in walk(log.directory / segment_name(first), first):
            if isinstance(item, Frame):
                last = item
        if last is None:
            break
        # The first segment not old enough ends the prefix (recorded_at could step back if
        # the clock did; the prefix stops there rather than skipping a newer record).
        if micros(read_indexed(last.body).recorded_at) >= cutoff:
            break
        if keep_from is not None and last.seq >= keep_from:
            break
        due.append((first, last))
    return due


def _rfc3339(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return format_time(when, "microseconds")

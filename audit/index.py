"""The query index: a SQLite file derived from the segments, off the commit path.

    segments (the truth) ──▶ indexer process (audit/indexer.py): read frames after the
                             watermark, in large batches; one statement per table per batch
                         ──▶ <data dir>/ledger/index.db
                               records   (inst, seq) → time, id, kind, customer, agent,
                                         ruleset, revision, and where the frame is
                               terms     each outcome (offer:/queue:/alert:/rule: value)
                                         numbered once
                               outcomes  the outcome numbers of each record
                               instances each log's watermark: indexed through seq, and
                                         where its next frame starts

The index holds pointers and the columns queries filter on, never a second copy of a body.
It is never needed for durability: deleting it loses nothing (the next indexer or
``frontline audit reindex`` builds it again), and queries read the log's not-yet-indexed tail
beside it. Each row's columns are read from the record's own bytes by ``entry``, which
``verify`` uses too, to check that the index says what the segments say.

Every query's order is ``(ts, inst, seq)`` newest first: ``ts`` is ``recorded_at`` in
microseconds, ``inst`` the index's number for an instance, ``seq`` the record's place in its
chain. Each filter has an index that keeps that order, so a page never sorts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from audit.segments import Frame, SegmentLog, instances, segment_name
from engine.times import read_time

log = logging.getLogger("frontline.ledger")

INDEX_FILE = "index.db"
LAYOUT = 2  # PRAGMA user_version of an index this code reads and writes

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS instances (
    inst         INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    indexed_seq  INTEGER NOT NULL DEFAULT 0,
    segment      INTEGER NOT NULL DEFAULT 0,
    next_offset  INTEGER NOT NULL DEFAULT 0,
    unsynced     TEXT  -- the boot its indexer wrote without syncing in (NULL: synced)
);
CREATE TABLE IF NOT EXISTS records (
    inst         INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    ts           INTEGER NOT NULL,
    id           TEXT NOT NULL,
    kind         TEXT NOT NULL,
    customer_id  TEXT,
    agent_id     TEXT,
    ruleset      TEXT,
    revision     INTEGER,
    segment      INTEGER NOT NULL,
    offset       INTEGER NOT NULL,
    PRIMARY KEY (inst, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_time ON records (ts, inst, seq);
CREATE INDEX IF NOT EXISTS records_id ON records (id);
CREATE INDEX IF NOT EXISTS records_kind ON records (kind, ts, inst, seq);
CREATE INDEX IF NOT EXISTS records_customer ON records (customer_id, ts, inst, seq)
    WHERE customer_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_agent ON records (agent_id, ts, inst, seq)
    WHERE agent_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_ruleset ON records (ruleset, ts, inst, seq)
    WHERE ruleset IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_revision ON records (ruleset, revision, ts, inst, seq)
    WHERE ruleset IS NOT NULL;
CREATE TABLE IF NOT EXISTS terms (
    term   INTEGER PRIMARY KEY,
    facet  TEXT NOT NULL,
    value  TEXT NOT NULL,
    UNIQUE (facet, value)
);
CREATE TABLE IF NOT EXISTS outcomes (
    term   INTEGER NOT NULL,
    ts     INTEGER NOT NULL,
    inst   INTEGER NOT NULL,
    seq    INTEGER NOT NULL,
    PRIMARY KEY (term, ts, inst, seq)
) WITHOUT ROWID;
PRAGMA user_version = {LAYOUT};
"""

# The indexer is a process of its own with one thread, so executemany's per-row release of
# the GIL costs nothing here, and it skips encoding rows to JSON and parsing them again
# (json_each on a batch: 8.7 µs of outcome rows per record against 5.7). Outcomes are stored
# by number, not by (facet, value) text: 4.0 µs per record (docs/ledger.md).
_INSERT_RECORDS = "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_OUTCOMES = "INSERT OR IGNORE INTO outcomes (term, ts, inst, seq) VALUES (?, ?, ?, ?)"


# -- what the index reads of a record: only these fields are decoded ----------------------


class _Ruleset(msgspec.Struct):
    name: str
    revision: int | None = None


class _Item(msgspec.Struct):
    rule: Any = None
    offer: Any = None
    queue: Any = None


class _Outputs(msgspec.Struct):
    eligible: list[_Item] | None = None
    escalation: _Item | None = None
    alerts: list[_Item] | None = None


class Indexed(msgspec.Struct):
    """The fields of a stored record the index holds (the rest of the bytes is skipped)."""

    id: str
    kind: str
    seq: int
    recorded_at: str
    customer_id: str | None = None
    agent_id: str | None = None
    ruleset: _Ruleset | None = None
    outputs: _Outputs | None = None

    def outcomes(self) -> list[tuple[str, str]]:
        """(facet, value) pairs a query can filter on: offers, queues, alert rules, rules."""
        out = self.outputs
        if out is None:
            return []
        found: list[tuple[str, str]] = []
        for item in out.eligible or ():
            found.append(("offer", str(item.offer)))
            found.append(("rule", str(item.rule)))
        if out.escalation is not None:
            found.append(("queue", str(out.escalation.queue)))
            found.append(("rule", str(out.escalation.rule)))
        for item in out.alerts or ():
            found.append(("alert", str(item.rule)))
            found.append(("rule", str(item.rule)))
        return found


_INDEXED = msgspec.json.Decoder(Indexed)


def read_indexed(body: bytes) -> Indexed:
    """The indexed fields of a record's stored bytes; msgspec errors if they are not one."""
    return _INDEXED.decode(body)


_micros_cache: dict[str, int] = {}


def micros(when: str) -> int:
    """An RFC 3339 time (as the ledger writes it) in microseconds since the epoch."""
    value = _micros_cache.get(when)
    if value is None:
        moment = read_time(when)
        value = round(moment.timestamp() * 1_000_000)
        if len(_micros_cache) > 4096:
            _micros_cache.clear()
        _micros_cache[when] = value
    return value


@dataclass(frozen=True, slots=True)
class Entry:
    """One record as the index holds it."""

    seq: int
    ts: int
    id: str
    kind: str
    customer_id: str | None
    agent_id: str | None
    ruleset: str | None
    revision: int | None
    segment: int
    offset: int
    outcomes: frozenset[tuple[str, str]]


def entry(frame: Frame) -> Entry:
    """What the index must hold for ``frame``, read from the record's own bytes."""
    r = _INDEXED.decode(frame.body)
    rs = r.ruleset
    return Entry(
        frame.seq,
        micros(r.recorded_at),
        r.id,
        r.kind,
        r.customer_id,
        r.agent_id,
        rs.name if rs is not None else None,
        rs.revision if rs is not None else None,
        frame.segment,
        frame.offset,
        frozenset(r.outcomes()),
    )


def index_rows(
    inst: int, frames: list[Frame]
) -> tuple[list[tuple[Any, ...]], list[tuple[str, str, int, int, int]]]:
    """The ``records`` rows and ``outcomes`` rows (facet, value, ts, inst, seq) of ``frames``
    of instance number ``inst``: what ``entry`` says each frame must have."""
    rows = []
    outcomes: list[tuple[str, str, int, int, int]] = []
    for frame in frames:
        e = entry(frame)
        rows.append(
            (
                inst,
                e.seq,
                e.ts,
                e.id,
                e.kind,
                e.customer_id,
                e.agent_id,
                e.ruleset,
                e.revision,
                e.segment,
                e.offset,
            )
        )
        outcomes.extend((facet, value, e.ts, inst, e.seq) for facet, value in e.outcomes)
    return rows, outcomes


class _Removal(msgspec.Struct):
    deleted_through: int | None = None


class _Checkpoint(msgspec.Struct):
    kind: str
    data: _Removal | None = None


_CHECKPOINT = msgspec.json.Decoder(_Checkpoint)


def _removed_by(frames: list[Frame]) -> list[int]:
    """The ``deleted_through`` of each retention checkpoint among ``frames``.

    Retention appends its checkpoint before it unlinks segments, so an indexer that read
    the old records before they went (a rebuild, or an index created meanwhile) drops their
    rows when it reaches the checkpoint: the index never keeps rows of removed records."""
    removed = []
    for frame in frames:
        if b'"checkpoint"' not in frame.body:
            continue
        try:
            record = _CHECKPOINT.decode(frame.body)
        except msgspec.DecodeError:
            continue
        if record.kind == "checkpoint" and record.data and record.data.deleted_through:
            removed.append(record.data.deleted_through)
    return removed


@dataclass(frozen=True, slots=True)
class Watermark:
    """How far an instance's log is indexed, and where its next frame starts."""

    inst: int
    seq: int
    segment: int
    offset: int


class IndexLayoutError(RuntimeError):
    """The index file was written by another layout; ``frontline audit reindex`` rebuilds it."""


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the index at ``path``, created with its schema if absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
    conn.execute("PRAGMA journal_mode=WAL")
    # The index is derived: a commit need not reach the disk (WAL with NORMAL stays
    # consistent; a power cut may only lose its last batches, which are indexed again). The
    # indexer process goes further and does not sync at all: LedgerIndex.write_unsynced.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: the indexes' hot pages stay in memory
    conn.execute("PRAGMA mmap_size=268435456")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version not in (0, LAYOUT):
        conn.close()
        raise IndexLayoutError(
            f"{path} is a query index of another layout; run `frontline audit reindex` to "
            "build it again from the segments"
        )
    if version == 0:
        conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")
    return conn


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class LedgerIndex:
    """The index file of one ledger directory (every instance's log under it)."""

    def __init__(self, ledger_dir: Path | str, path: Path | None = None) -> None:
        self.ledger_dir = Path(ledger_dir)
        self.path = path or self.ledger_dir / INDEX_FILE
        self.conn = connect(self.path)
        self._inode = _inode(self.path)

    def close(self) -> None:
        self.conn.close()

    def replaced(self) -> bool:
        """Whether the file was replaced or removed since it was opened (by hand: the index
        can be deleted at any time)."""
        return _inode(self.path) != self._inode

    def reopen(self) -> None:
        self.conn.close()
        self.conn = connect(self.path)
        self._inode = _inode(self.path)

    def instance(self, name: str) -> int:
        """The index's number for instance ``name``, registering it if new."""
        row = self.conn.execute("SELECT inst FROM instances WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return int(row[0])
        self.conn.execute("INSERT OR IGNORE INTO instances (name) VALUES (?)", (name,))
        row = self.conn.execute("SELECT inst FROM instances WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    def names(self) -> dict[int, str]:
        return {int(i): str(n) for i, n in self.conn.execute("SELECT inst, name FROM instances")}

    def watermark(self, name: str) -> Watermark:
        inst = self.instance(name)
        row = self.conn.execute(
            "SELECT indexed_seq, segment, next_offset FROM instances WHERE inst = ?", (inst,)
        ).fetchone()
        return Watermark(inst, int(row[0]), int(row[1]), int(row[2]))

    def catch_up(
        self,
        log: SegmentLog,
        *,
        batch: int = 5_000,
        progress: Callable[[int, Frame], None] | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """Index every frame of ``log`` after the watermark; return how many were indexed.

        Stops early if someone else moved the watermark meanwhile (another indexer, or a
        reindex emptying the index): the next call starts again from where it now is.
        """
        mark = self.watermark(log.instance)
        start = (mark.segment, mark.offset) if mark.segment else None
        done = 0
        expected = mark.seq
        pending: list[Frame] = []
        for frame in log.frames(mark.seq, start, check=False):
            pending.append(frame)
            if len(pending) >= batch:
                if not self._add(mark.inst, pending, expected):
                    return done
                done += len(pending)
                expected = frame.seq
                pending = []
                if progress is not None:
                    progress(done, frame)
                if stop is not None and stop.is_set():
                    return done
        if pending and self._add(mark.inst, pending, expected):
            done += len(pending)
            if progress is not None:
                progress(done, pending[-1])
        return done

    def _add(self, inst: int, frames: list[Frame], expected: int) -> bool:
        """Index ``frames`` and move the mark past them, if the mark is still at
        ``expected``; in one transaction either way."""
        rows, outcomes = index_rows(inst, frames)
        last = frames[-1]
        with _immediate(self.conn):
            (now,) = self.conn.execute(
                "SELECT indexed_seq FROM instances WHERE inst = ?", (inst,)
            ).fetchone()
            if now != expected:
                return False
            self._insert(rows, outcomes)
            for through in _removed_by(frames):
                self._delete_through(inst, through)
            self.conn.execute(
                "UPDATE instances SET indexed_seq = ?, segment = ?, next_offset = ? WHERE inst = ?",
                (last.seq, last.segment, last.end, inst),
            )
        return True

    def _insert(
        self, rows: list[tuple[Any, ...]], outcomes: list[tuple[str, str, int, int, int]]
    ) -> None:
        """Add ``records`` rows and their outcomes; inside the caller's transaction."""
        self.conn.executemany(_INSERT_RECORDS, rows)
        if outcomes:
            terms = self._terms(outcomes)
            self.conn.executemany(
                _INSERT_OUTCOMES,
                [(terms[facet, value], ts, i, seq) for facet, value, ts, i, seq in outcomes],
            )

    def _delete_through(self, inst: int, seq: int) -> None:
        self.conn.execute("DELETE FROM records WHERE inst = ? AND seq <= ?", (inst, seq))
        self.conn.execute("DELETE FROM outcomes WHERE inst = ? AND seq <= ?", (inst, seq))

    def _terms(self, outcomes: list[tuple[str, str, int, int, int]]) -> dict[tuple[str, str], int]:
        """The number of each (facet, value) in ``outcomes``, numbering new ones; inside the
        caller's transaction. Read afresh each batch (a few hundred rows), never cached: a
        reindex numbers them again."""
        terms = {(f, v): t for t, f, v in self.conn.execute("SELECT term, facet, value FROM terms")}
        for facet, value in {(f, v) for f, v, *_ in outcomes} - terms.keys():
            (terms[facet, value],) = self.conn.execute(
                "INSERT INTO terms (facet, value) VALUES (?, ?) RETURNING term", (facet, value)
            ).fetchone()
        return terms

    def write_unsynced(self, name: str) -> None:
        """Stop waiting for the disk on commits (the indexer process of ``name``).

        Without a sync, SQLite keeps the file consistent if a process dies, not if the
        machine does; so the boot this starts in is first written down, synced. An indexer
        finding another boot written there (``torn_by_a_restart``) builds the index again;
        ``synced`` clears it when the indexer stops cleanly. Where the kernel has no boot
        id, commits keep syncing as before.
        """
        boot = boot_id()
        if boot is None:
            return
        inst = self.instance(name)
        self.conn.execute("PRAGMA synchronous=FULL")
        with _immediate(self.conn):
            self.conn.execute("UPDATE instances SET unsynced = ? WHERE inst = ?", (boot, inst))
        self.conn.execute("PRAGMA synchronous=OFF")

    def synced(self, name: str) -> None:
        """Put everything written so far on the disk, then clear ``name``'s unsynced mark."""
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")  # copies and syncs the file
        with _immediate(self.conn):
            self.conn.execute(
                "UPDATE instances SET unsynced = NULL WHERE inst = ?", (self.instance(name),)
            )

    def forget_after(self, name: str, seq: int) -> None:
        """Drop ``name``'s rows past ``seq`` and move its mark back: the log ends at ``seq``
        (a power cut took frames the indexer had read before they reached the disk)."""
        inst = self.instance(name)
        mark = self.watermark(name)
        if mark.seq <= seq:
            return
        with _immediate(self.conn):
            self.conn.execute("DELETE FROM records WHERE inst = ? AND seq > ?", (inst, seq))
            self.conn.execute("DELETE FROM outcomes WHERE inst = ? AND seq > ?", (inst, seq))
            self.conn.execute(
                "UPDATE instances SET indexed_seq = 0, segment = 0, next_offset = 0 WHERE inst = ?",
                (inst,),
            )
        # Rows up to ``seq`` stay; indexing them again replaces each with the same values.
        log.warning(
            "ledger %s: the index ran ahead of the log (%d > %d); indexing again from its start",
            name,
            mark.seq,
            seq,
        )

    def replace_rows(self, name: str, frames: list[Frame]) -> None:
        """Give records of ``name`` already indexed the rows their (new) bytes call for: an
        erased record's row then says only that it was erased. Records past the mark are
        left to the indexer, which reads their new bytes."""
        inst = self.instance(name)
        with _immediate(self.conn):
            (mark,) = self.conn.execute(
                "SELECT indexed_seq FROM instances WHERE inst = ?", (inst,)
            ).fetchone()
            done = [f for f in frames if f.seq <= mark]
            if not done:
                return
            seqs = [(inst, f.seq) for f in done]
            self.conn.executemany("DELETE FROM records WHERE inst = ? AND seq = ?", seqs)
            self.conn.executemany("DELETE FROM outcomes WHERE inst = ? AND seq = ?", seqs)
            self._insert(*index_rows(inst, done))

    def vacuum(self) -> None:
        """Rewrite the file without free pages, and empty its write-ahead log, so that no
        copy of a replaced row stays on disk."""
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.execute("VACUUM")
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def forget_through(self, name: str, seq: int) -> None:
        """Drop the rows of ``name``'s records up to ``seq`` (their segments were removed),
        and move its mark past them if it is not there yet: an indexer reading them finds
        its mark moved and starts again after them, instead of adding their rows back."""
        inst = self.instance(name)
        with _immediate(self.conn):
            self._delete_through(inst, seq)
            self.conn.execute(
                "UPDATE instances SET indexed_seq = ?, segment = 0, next_offset = 0"
                " WHERE inst = ? AND indexed_seq < ?",
                (seq, inst, seq),
            )

    def rows(self, name: str) -> Iterator[tuple[Any, ...]]:
        """An instance's record rows in seq order: (seq, ts, id, kind, customer_id,
        agent_id, ruleset, revision, segment, offset)."""
        inst = self.instance(name)
        yield from self.conn.execute(
            "SELECT seq, ts, id, kind, customer_id, agent_id, ruleset, revision, segment, offset"
            " FROM records WHERE inst = ? ORDER BY seq",
            (inst,),
        )

    def outcome_rows(self, name: str) -> Iterator[tuple[int, str, str, int]]:
        """An instance's outcome rows in seq order: (seq, facet, value, ts). The table is
        ordered for lookups, not by record, so this sorts them: verification only."""
        inst = self.instance(name)
        yield from self.conn.execute(
            "SELECT o.seq, coalesce(t.facet, '?'), coalesce(t.value, 'term ' || o.term), o.ts"
            " FROM outcomes o LEFT JOIN terms t USING (term)"
            " WHERE o.inst = ? ORDER BY 1, 2, 3",
            (inst,),
        )


def boot_id() -> str | None:
    """This boot of the machine's kernel, or None where the kernel does not say."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text("ascii").strip() or None
    except OSError:
        return None


def torn_by_a_restart(index: LedgerIndex) -> list[str]:
    """The instances whose indexer wrote without syncing before the machine last restarted:
    their writes may have reached the disk in part, so the file is not to be trusted."""
    return [
        str(name)
        for (name,) in index.conn.execute(
            "SELECT name FROM instances WHERE unsynced IS NOT NULL AND unsynced != ?",
            (boot_id() or "",),
        )
    ]


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def remove_index(ledger_dir: Path) -> None:
    """Delete the index file of ``ledger_dir`` (and its WAL); nothing is lost by it."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(ledger_dir / INDEX_FILE) + suffix).unlink(missing_ok=True)


def reindex(
    ledger_dir: Path | str, progress: Callable[[int, int, int], None] | None = None
) -> dict[str, int]:
    """Build the index of ``ledger_dir`` again from its segments; return the records indexed
    per instance.

    The index is emptied and refilled in place, so a running server's indexer and readers go
    on using the same file: while it is refilled, queries read more of each log's tail, and
    see every record throughout. An index file of another layout is replaced.
    ``progress(records, bytes_read, bytes_total)`` is called after each batch.
    """
    ledger_dir = Path(ledger_dir)
    logs = [SegmentLog(ledger_dir, name, readonly=True) for name in instances(ledger_dir)]
    # Bytes before each segment, over every log: progress is measured in bytes read.
    before: dict[tuple[str, int], int] = {}
    total = 0
    for log_ in logs:
        for first in log_.segments():
            before[(log_.instance, first)] = total
            total += (log_.directory / segment_name(first)).stat().st_size
    try:
        index = LedgerIndex(ledger_dir)
    except IndexLayoutError:
        remove_index(ledger_dir)
        index = LedgerIndex(ledger_dir)
    counts: dict[str, int] = {}
    done = 0
    try:
        with _immediate(index.conn):
            index.conn.execute("DELETE FROM records")
            index.conn.execute("DELETE FROM outcomes")
            index.conn.execute("DELETE FROM terms")
            index.conn.execute("UPDATE instances SET indexed_seq = 0, segment = 0, next_offset = 0")
        for log_ in logs:

            def step(n: int, frame: Frame, base: int = done, name: str = log_.instance) -> None:
                if progress is not None:
                    progress(base + n, before.get((name, frame.segment), 0) + frame.end, total)

            counts[log_.instance] = index.catch_up(log_, progress=step)
            done += counts[log_.instance]
    finally:
        index.close()
        for log_ in logs:
            log_.close()
    if progress is not None:
        progress(done, total, total)
    return counts

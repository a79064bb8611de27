"""Querying the ledger: filters, cursor pagination, and streamed JSONL/CSV export.

    LedgerReader.page(query)
      ├─ index.db: the rows that match, newest first, from the index that keeps that order
      ├─ each log's tail past the index's mark: decoded and filtered here (seconds of records)
      └─ merged by (recorded_at, instance, seq), the page's bodies read from their segments

Pages run newest first across every instance of the ledger directory. A page's
``next_cursor`` names the last record it returned; passing it back continues below it, so
pages stay stable while records arrive. Each filter has an index in the page's own order —
``(customer_id, ts)``, ``(agent_id, ts)``, ``(ruleset, ts)``, ``(ruleset, revision, ts)``,
``(kind, ts)``, ``(ts)``, and outcomes ``(term, ts)`` — so a page reads its rows
and stops, whatever the ledger's size.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from audit.index import Entry, LedgerIndex, Watermark, entry, micros
from audit.record import KINDS, LedgerRecord, decode, hash_text
from audit.segments import Frame, SegmentLog, instances, segment_name

MAX_PAGE = 1_000
LONG_TAIL_BYTES = 4 << 20  # a tail past the index worth indexing before reading many pages
OUTCOME_KINDS = ("offer", "queue", "alert", "rule")
CSV_COLUMNS = (
    "instance",
    "seq",
    "id",
    "kind",
    "recorded_at",
    "customer_id",
    "agent_id",
    "ruleset",
    "revision",
    "offers",
    "queue",
    "alerts",
    "missing_fields",
    "stale_fields",
    "latency_us",
    "hash",
)


class QueryError(ValueError):
    """A filter that cannot be applied; the message names it and what is expected."""


@dataclass(frozen=True)
class LedgerQuery:
    """Filters for ledger records; all given filters must hold."""

    customer_id: str | None = None
    agent_id: str | None = None
    ruleset: str | None = None
    revision: int | None = None
    kind: str | None = None
    outcome: str | None = None  # "offer:waive-fee", "queue:retention", "alert:rule-id", ...
    since: str | None = None  # RFC 3339, inclusive
    until: str | None = None  # RFC 3339, exclusive
    cursor: str | None = None  # a page's next_cursor
    limit: int = 100

    def validated(self) -> LedgerQuery:
        if not 1 <= self.limit <= MAX_PAGE:
            raise QueryError(f"limit must be between 1 and {MAX_PAGE}")
        if self.kind is not None and self.kind not in KINDS:
            raise QueryError(f"unknown kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.outcome is not None:
            kind, _, value = self.outcome.partition(":")
            if kind not in OUTCOME_KINDS or not value:
                raise QueryError(
                    "outcome must look like offer:<offer>, queue:<queue>, "
                    "alert:<rule> or rule:<rule>"
                )
        if self.revision is not None and self.ruleset is None:
            raise QueryError("revision needs ruleset")
        if self.cursor is not None:
            _cursor_key(self.cursor)
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None:
                try:
                    micros(value)
                except ValueError:
                    raise QueryError(f"{name} {value!r} is not an RFC 3339 time") from None
        return self


def _cursor_key(cursor: str) -> tuple[int, int, str]:
    """A cursor ``<ts>-<seq>-<instance>`` as its parts."""
    ts, _, rest = cursor.partition("-")
    seq, _, name = rest.partition("-")
    if not (ts.isdigit() and seq.isdigit() and name) or max(len(ts), len(seq)) > 18:
        # 18 digits: what SQLite's 64-bit integers hold, and more than any time or seq
        raise QueryError(f"cursor {cursor!r} is not one a page of this ledger returned")
    return int(ts), int(seq), name


@dataclass(frozen=True)
class Page:
    records: list[LedgerRecord]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class _Hit:
    """A matching record's place: its order key and where its frame is."""

    ts: int
    inst: int
    seq: int
    name: str
    segment: int
    offset: int
    frame: Frame | None = None  # already read (a tail record)

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.ts, self.inst, self.seq)

    @property
    def cursor(self) -> str:
        return f"{self.ts}-{self.seq}-{self.name}"


class LedgerReader:
    """Read-only queries over a ledger directory: its index and every instance's log."""

    def __init__(self, ledger_dir: Path | str) -> None:
        self.ledger_dir = Path(ledger_dir)
        self.index = LedgerIndex(self.ledger_dir)
        self._logs: dict[str, SegmentLog] = {}

    def close(self) -> None:
        self.index.close()
        for log in self._logs.values():
            log.close()

    def _log(self, name: str) -> SegmentLog:
        log = self._logs.get(name)
        if log is None:
            log = self._logs[name] = SegmentLog(self.ledger_dir, name, readonly=True)
        return log

    def get(self, record_id: str) -> LedgerRecord | None:
        """The record with this id (the first written, should two share it)."""
        names, rows, marks = self._snapshot(
            "SELECT ts, inst, seq, segment, offset FROM records WHERE id = ?"
            " ORDER BY ts, inst, seq LIMIT 1",
            (record_id,),
        )
        for row in rows:
            hit = _Hit(row[0], row[1], row[2], names[row[1]], row[3], row[4])
            found = self._records([hit])
            if found:
                return found[0]
        for _, frame, e in self._tail(marks):
            if e.id == record_id:
                return decode(frame.body, hash_text(frame.leaf))
        return None

    def page(self, query: LedgerQuery) -> Page:
        """One page of matching records, newest first."""
        q = query.validated()
        hits = self._hits(q, q.limit + 1)
        more = len(hits) > q.limit
        hits = hits[: q.limit]
        return Page(self._records(hits), hits[-1].cursor if more and hits else None)

    def iterate(self, query: LedgerQuery, page_size: int = 500) -> Iterator[LedgerRecord]:
        """Every matching record, newest first, read a page at a time."""
        for hits in self._pages(query, page_size):
            yield from self._records(hits)

    def bodies(self, query: LedgerQuery, page_size: int = 500) -> Iterator[bytes]:
        """The stored bytes of every matching record, newest first (nothing is decoded)."""
        for hits in self._pages(query, page_size):
            for frame in self._frames(hits):
                yield frame.body

    def count(self, query: LedgerQuery) -> int:
        """How many records match ``query`` (below its cursor, if it has one), without
        reading a body: the index's rows, counted by the index the page would use, and the
        matching records of each log's tail."""
        q = query.validated()
        below: tuple[int, int, int] | None = None
        if q.cursor is not None:
            ts, seq, name = _cursor_key(q.cursor)
            below = (ts, self.index.instance(name), seq)
        sql, params = _select(q, below)
        _, rows, marks = self._snapshot(f"SELECT count(*) FROM ({sql})", (*params, -1))
        tail = sum(1 for (_, inst), _, e in self._tail(marks) if _matches(e, q, inst, below))
        return int(rows[0][0]) + tail

    def _pages(self, query: LedgerQuery, page_size: int) -> Iterator[list[_Hit]]:
        q = replace(query, limit=page_size).validated()
        self._index_long_tails()
        while True:
            hits = self._hits(q, page_size + 1)
            yield hits[:page_size]
            if len(hits) <= page_size:
                return
            q = replace(q, cursor=hits[page_size - 1].cursor)

    def _index_long_tails(self) -> None:
        """Before a read of many pages: index any log whose tail past the index is long (no
        indexer ran, or the index was deleted), since every page reads that tail again."""
        for name in instances(self.ledger_dir):
            mark = self.index.watermark(name)
            log = self._log(name)
            behind = 0
            for first in log.segments():
                if first < mark.segment:
                    continue
                try:
                    size = (log.directory / segment_name(first)).stat().st_size
                except FileNotFoundError:
                    continue
                behind += size - (mark.offset if first == mark.segment else 0)
            if behind > LONG_TAIL_BYTES:
                self.index.catch_up(log)

    def _hits(self, q: LedgerQuery, limit: int) -> list[_Hit]:
        below: tuple[int, int, int] | None = None
        if q.cursor is not None:
            ts, seq, name = _cursor_key(q.cursor)
            below = (ts, self.index.instance(name), seq)
        sql, params = _select(q, below)
        names, rows, marks = self._snapshot(sql, (*params, limit))
        hits = [_Hit(ts, inst, seq, names[inst], seg, off) for ts, inst, seq, seg, off in rows]
        tail = [
            _Hit(e.ts, inst, e.seq, name, e.segment, e.offset, frame)
            for (name, inst), frame, e in self._tail(marks)
            if _matches(e, q, inst, below)
        ]
        if tail:
            hits = sorted(hits + tail, key=lambda h: h.key, reverse=True)[:limit]
        return hits

    def _snapshot(
        self, sql: str, params: tuple[Any, ...]
    ) -> tuple[dict[int, str], list[Any], list[tuple[str, Watermark]]]:
        """The instances' numbers, the rows of ``sql`` and every log's mark, read in one
        snapshot of the index: a batch the indexer adds meanwhile is then found once, in
        the rows or in the tail, never in neither."""
        logs = instances(self.ledger_dir)
        for name in logs:
            self.index.instance(name)  # registered before the snapshot
        conn = self.index.conn
        conn.execute("BEGIN")
        try:
            rows = conn.execute(sql, params).fetchall()
            marks = [(name, self.index.watermark(name)) for name in logs]
            names = self.index.names()
        finally:
            conn.execute("COMMIT")
        return names, rows, marks

    def _tail(
        self, marks: list[tuple[str, Watermark]]
    ) -> Iterator[tuple[tuple[str, int], Frame, Entry]]:
        """Every record past the index's mark, in each instance's log."""
        for name, mark in marks:
            start = (mark.segment, mark.offset) if mark.segment else None
            for frame in self._log(name).frames(mark.seq, start, check=False):
                yield (name, mark.inst), frame, entry(frame)

    def _records(self, hits: list[_Hit]) -> list[LedgerRecord]:
        return [decode(frame.body, hash_text(frame.leaf)) for frame in self._frames(hits)]

    def _frames(self, hits: list[_Hit]) -> list[Frame]:
        """The frames of ``hits``, in order; those removed by retention since the index was
        read are left out. Every frame is asked of the kernel first, so those not in memory
        are read from disk together rather than one after another (23 ms against 4 ms for a
        customer's page of 100 scattered records, read cold)."""
        for hit in hits:
            if hit.frame is None:
                self._log(hit.name).prefetch(hit.segment, hit.offset)
        out = []
        for hit in hits:
            frame = hit.frame or self._log(hit.name).read(hit.segment, hit.offset)
            if frame is not None:
                out.append(frame)
        return out


def _matches(e: Entry, q: LedgerQuery, inst: int, below: tuple[int, int, int] | None) -> bool:
    if below is not None and (e.ts, inst, e.seq) >= below:
        return False
    if q.customer_id is not None and e.customer_id != q.customer_id:
        return False
    if q.agent_id is not None and e.agent_id != q.agent_id:
        return False
    if q.ruleset is not None and e.ruleset != q.ruleset:
        return False
    if q.revision is not None and e.revision != q.revision:
        return False
    if q.kind is not None and e.kind != q.kind:
        return False
    if q.since is not None and e.ts < micros(q.since):
        return False
    if q.until is not None and e.ts >= micros(q.until):
        return False
    if q.outcome is not None:
        facet, _, value = q.outcome.partition(":")
        if (facet, value) not in e.outcomes:
            return False
    return True


def _select(q: LedgerQuery, below: tuple[int, int, int] | None) -> tuple[str, list[Any]]:
    """The page's SQL: the filters, and an order every filter's index already has."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("customer_id", q.customer_id),
        ("agent_id", q.agent_id),
        ("ruleset", q.ruleset),
        ("revision", q.revision),
        ("kind", q.kind),
    ):
        if value is not None:
            where.append(f"r.{column} = ?")
            params.append(value)
    # The order key comes from the table that drives the page: the outcome rows when an
    # outcome is asked for, so the planner walks that index backwards and stops early.
    t = "o" if q.outcome is not None else "r"
    if q.since is not None:
        where.append(f"{t}.ts >= ?")
        params.append(micros(q.since))
    if q.until is not None:
        where.append(f"{t}.ts < ?")
        params.append(micros(q.until))
    if below is not None:
        where.append(f"({t}.ts, {t}.inst, {t}.seq) < (?, ?, ?)")
        params.extend(below)
    source = "records r"
    if q.outcome is not None:
        facet, _, value = q.outcome.partition(":")
        source = "outcomes o JOIN records r ON r.inst = o.inst AND r.seq = o.seq"
        where[:0] = ["o.term = (SELECT term FROM terms WHERE facet = ? AND value = ?)"]
        params[:0] = [facet, value]
    sql = f"SELECT r.ts, r.inst, r.seq, r.segment, r.offset FROM {source}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {t}.ts DESC, {t}.inst DESC, {t}.seq DESC LIMIT ?"
    return sql, params


def jsonl_lines(bodies: Iterator[bytes]) -> Iterator[bytes]:
    """Each record as one line: its stored bytes, which its hash covers
    (``hash = sha256(0x00 || line without its newline)``)."""
    for body in bodies:
        yield body + b"\n"


def csv_lines(records: Iterator[LedgerRecord]) -> Iterator[str]:
    """A header, then one flat row per record; lists are joined with ';'."""
    yield csv_header()
    for record in records:
        yield csv_row(record)


def csv_header() -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(CSV_COLUMNS)
    return buffer.getvalue()


def csv_row(r: LedgerRecord) -> str:
    """One record as a CSV line (with its line ending)."""
    buffer = io.StringIO()
    out = r.outputs
    csv.writer(buffer).writerow(
        [
            r.instance,
            r.seq,
            r.id,
            r.kind,
            r.recorded_at,
            r.customer_id or "",
            r.agent_id or "",
            r.ruleset.name if r.ruleset else "",
            r.ruleset.revision if r.ruleset and r.ruleset.revision is not None else "",
            ";".join(str(e.get("offer")) for e in out.get("eligible") or ()),
            (out.get("escalation") or {}).get("queue", ""),
            ";".join(str(a.get("rule")) for a in out.get("alerts") or ()),
            ";".join(r.missing_fields),
            ";".join(r.stale_fields),
            r.latency_us if r.latency_us is not None else "",
            r.hash,
        ]
    )
    return buffer.getvalue()

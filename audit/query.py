"""Querying the SQLite ledger: filters, cursor pagination, and streamed JSONL/CSV export.

Pages run newest first, across every instance that writes to the file. A page's
``next_cursor`` is the position (``pos``, the file-wide commit order) of the last record it
returned; passing it back continues below it, so pages stay stable while new records arrive.
Every filter is served by an index: ``(customer_id, pos)``, ``(agent_id, pos)``,
``(ruleset, revision, pos)``, ``(recorded_at, pos)``, and the outcome table
``(kind, value, pos)``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from audit.record import KINDS, LedgerRecord, decode, encode
from audit.sqlite import connect

MAX_PAGE = 1_000
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
    cursor: int | None = None
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
        return self


@dataclass(frozen=True)
class Page:
    records: list[LedgerRecord]
    next_cursor: int | None


class LedgerReader:
    """Read-only queries over a SQLite ledger file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._conn = connect(self.path, readonly=True)

    def close(self) -> None:
        self._conn.close()

    def get(self, record_id: str) -> LedgerRecord | None:
        row = self._conn.execute(
            "SELECT body FROM ledger WHERE id = ? ORDER BY pos LIMIT 1", (record_id,)
        ).fetchone()
        return decode(row[0]) if row else None

    def page(self, query: LedgerQuery) -> Page:
        """One page of matching records, newest first."""
        q = query.validated()
        sql, params = _select(q)
        # With an outcome filter, order by the outcome index's own pos: the planner then walks
        # that index backwards and stops after a page (ordering by l.pos would sort them all).
        order = "o.pos" if q.outcome is not None else "l.pos"
        rows = self._conn.execute(f"{sql} ORDER BY {order} DESC LIMIT ?", (*params, q.limit + 1))
        found = [(pos, decode(body)) for pos, body in rows]
        more = len(found) > q.limit
        found = found[: q.limit]
        return Page([r for _, r in found], found[-1][0] if more and found else None)

    def iterate(self, query: LedgerQuery, page_size: int = 500) -> Iterator[LedgerRecord]:
        """Every matching record, newest first, read a page at a time."""
        q = replace(query, limit=page_size)
        while True:
            page = self.page(q)
            yield from page.records
            if page.next_cursor is None:
                return
            q = replace(q, cursor=page.next_cursor)


def _select(q: LedgerQuery) -> tuple[str, list[Any]]:
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
            where.append(f"l.{column} = ?")
            params.append(value)
    if q.since is not None:
        where.append("l.recorded_at >= ?")
        params.append(q.since)
    if q.until is not None:
        where.append("l.recorded_at < ?")
        params.append(q.until)
    if q.cursor is not None:
        where.append("o.pos < ?" if q.outcome is not None else "l.pos < ?")
        params.append(q.cursor)
    source = "ledger l"
    if q.outcome is not None:
        kind, _, value = q.outcome.partition(":")
        source = "ledger_outcome o JOIN ledger l ON l.pos = o.pos"
        where[:0] = ["o.kind = ?", "o.value = ?"]
        params[:0] = [kind, value]
    sql = f"SELECT l.pos, l.body FROM {source}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql, params


def jsonl_lines(records: Iterator[LedgerRecord]) -> Iterator[bytes]:
    """Each record as one line of its canonical JSON (the bytes its hash covers)."""
    for record in records:
        yield encode(record) + b"\n"


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

"""Counting a query's records: what iterating it would return, over the index and the log's
not-yet-indexed tail alike, without reading a body."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from audit.index import LedgerIndex
from audit.query import LedgerQuery, LedgerReader, QueryError
from audit.record import LedgerRecord, RulesetRef
from audit.segments import SegmentLog
from audit.writer import LedgerWriter

START = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
COUNT = 60


def day(n: int) -> str:
    when = START + timedelta(days=n - 1)
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


def record(n: int) -> LedgerRecord:
    return LedgerRecord(
        id=f"d-{n}",
        kind="decision" if n % 10 else "ack",
        customer_id=f"c-{n % 3}",
        agent_id=f"a-{n % 2}",
        ruleset=RulesetRef(name="desk" if n % 4 else "other", revision=1 + n % 2, digest="x"),
        outputs={"eligible": [{"rule": "w", "offer": "waive-fee"}]} if n % 5 == 0 else {},
    )


@pytest.fixture(scope="module", params=[COUNT, 25, 0], ids=["indexed", "part", "none"])
def reader(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LedgerReader]:
    """60 records in one log, one a day from November 1st 2026: all of them, the first 25,
    or none of them in the index."""
    ledger_dir = tmp_path_factory.mktemp("count")
    log = SegmentLog(ledger_dir, "local", durable=False)
    writer = LedgerWriter(log, clock=map(day, range(1, COUNT + 1)).__next__)
    for n in range(1, COUNT + 1):
        writer.append_blocking(record(n))
        if n == request.param:
            index = LedgerIndex(ledger_dir)
            reading = SegmentLog(ledger_dir, "local", readonly=True)
            index.catch_up(reading)
            reading.close()
            index.close()
    writer.close()
    log.close()
    found = LedgerReader(ledger_dir)
    assert found.index.watermark("local").seq == request.param
    yield found
    found.close()


@pytest.mark.parametrize(
    "query",
    [
        LedgerQuery(),
        LedgerQuery(ruleset="desk", kind="decision"),
        LedgerQuery(ruleset="desk", revision=2),
        LedgerQuery(customer_id="c-1"),
        LedgerQuery(agent_id="a-0", kind="ack"),
        LedgerQuery(outcome="offer:waive-fee"),
        LedgerQuery(ruleset="desk", since=day(10), until=day(40)),
        LedgerQuery(outcome="offer:waive-fee", since=day(20)),
        LedgerQuery(customer_id="nobody"),
    ],
    ids=lambda q: ",".join(f"{k}={v}" for k, v in vars(q).items() if v and k != "limit") or "all",
)
def test_a_count_is_how_many_records_the_query_iterates(
    reader: LedgerReader, query: LedgerQuery
) -> None:
    assert reader.count(query) == len(list(reader.iterate(query)))


def test_a_count_from_a_cursor_counts_what_is_below_it(reader: LedgerReader) -> None:
    query = LedgerQuery(ruleset="desk", limit=10)
    first = reader.page(query)
    assert first.next_cursor is not None
    below = LedgerQuery(ruleset="desk", cursor=first.next_cursor)
    assert reader.count(below) == reader.count(query) - 10 == len(list(reader.iterate(below)))


def test_a_count_refuses_what_a_page_refuses(reader: LedgerReader) -> None:
    with pytest.raises(QueryError, match="revision needs ruleset"):
        reader.count(LedgerQuery(revision=1))

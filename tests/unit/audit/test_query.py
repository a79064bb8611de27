"""Ledger queries: every filter, stable cursor pages, and streamed exports."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit.query import LedgerQuery, LedgerReader, QueryError, csv_lines, jsonl_lines
from audit.record import LedgerRecord, RulesetRef, decode
from audit.sqlite import SqliteLedgerStore
from audit.writer import LedgerWriter


def record(n: int) -> LedgerRecord:
    return LedgerRecord(
        id=f"d-{n}",
        kind="decision" if n % 10 else "ack",
        customer_id=f"c-{n % 3}",
        agent_id=f"a-{n % 2}",
        ruleset=RulesetRef(name="desk", revision=1 + n % 2, digest="sha256:x"),
        outputs={
            "eligible": [{"rule": "w", "offer": "waive-fee"}] if n % 4 == 0 else [],
            "escalation": {"rule": "v", "queue": "retention"} if n % 5 == 0 else None,
            "alerts": [{"rule": "churn"}] if n % 7 == 0 else [],
        },
        missing_fields=["customer.tier"] if n % 6 == 0 else [],
    )


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LedgerReader]:
    path = tmp_path_factory.mktemp("q") / "ledger.db"
    store = SqliteLedgerStore(path)
    writer = LedgerWriter(
        store,
        clock=iter(f"2026-11-{d:02d}T10:00:00Z" for d in range(1, 1000)).__next__,
        max_batch=10,
    )
    for n in range(1, 61):
        writer.append_blocking(record(n))
    writer.close()
    store.close()
    r = LedgerReader(path)
    yield r
    r.close()


def ids(records: list[LedgerRecord]) -> list[int]:
    return [int(r.id[2:]) for r in records]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(
            LedgerQuery(customer_id="c-1"),
            [n for n in range(60, 0, -1) if n % 3 == 1],
            id="customer",
        ),
        pytest.param(
            LedgerQuery(agent_id="a-0", customer_id="c-0"),
            [n for n in range(60, 0, -1) if n % 6 == 0],
            id="agent-and-customer",
        ),
        pytest.param(
            LedgerQuery(ruleset="desk", revision=2),
            [n for n in range(60, 0, -1) if n % 2 == 1],
            id="revision",
        ),
        pytest.param(LedgerQuery(kind="ack"), [60, 50, 40, 30, 20, 10], id="kind"),
        pytest.param(
            LedgerQuery(outcome="offer:waive-fee"),
            [n for n in range(60, 0, -1) if n % 4 == 0],
            id="offer",
        ),
        pytest.param(
            LedgerQuery(outcome="queue:retention", customer_id="c-0"),
            [60, 45, 30, 15],
            id="queue-and-customer",
        ),
        pytest.param(
            LedgerQuery(outcome="alert:churn"), [56, 49, 42, 35, 28, 21, 14, 7], id="alert"
        ),
    ],
)
def test_filters(reader: LedgerReader, query: LedgerQuery, expected: list[int]) -> None:
    """Each filter, alone and combined, returns exactly the matching records, newest first."""
    got = list(reader.iterate(query, page_size=7))
    assert ids(got) == expected


def test_time_range(reader: LedgerReader) -> None:
    """since is inclusive and until exclusive, on the time each batch was recorded."""
    got = list(
        reader.iterate(LedgerQuery(since="2026-11-02T00:00:00Z", until="2026-11-04T00:00:00Z"))
    )
    assert ids(got) == [3, 2]  # appended one at a time, record n was recorded on day n


def test_cursor_pages_cover_everything_once(reader: LedgerReader) -> None:
    """Following next_cursor visits every record exactly once, then stops."""
    seen: list[int] = []
    query = LedgerQuery(limit=25)
    while True:
        page = reader.page(query)
        seen.extend(ids(page.records))
        if page.next_cursor is None:
            break
        query = LedgerQuery(limit=25, cursor=page.next_cursor)
    assert seen == list(range(60, 0, -1))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        pytest.param(LedgerQuery(limit=0), "limit", id="limit"),
        pytest.param(LedgerQuery(kind="lunch"), "unknown kind", id="kind"),
        pytest.param(LedgerQuery(outcome="waive-fee"), "outcome must look like", id="outcome"),
        pytest.param(LedgerQuery(revision=2), "revision needs ruleset", id="revision"),
    ],
)
def test_bad_filters_are_refused(reader: LedgerReader, query: LedgerQuery, message: str) -> None:
    """A filter that cannot apply raises QueryError naming it."""
    with pytest.raises(QueryError, match=message):
        reader.page(query)


def test_get_by_id(reader: LedgerReader) -> None:
    """A record is found by its id; an unknown id gives None."""
    found = reader.get("d-42")
    assert found is not None and found.customer_id == "c-0"
    assert reader.get("nope") is None


def test_exports_stream_the_same_records(reader: LedgerReader) -> None:
    """JSONL lines decode to the records; CSV has a header and one row per record."""
    query = LedgerQuery(customer_id="c-2")
    records = list(reader.iterate(query))
    lines = list(jsonl_lines(reader.iterate(query)))
    assert [decode(line) for line in lines] == records
    rows = list(csv.DictReader(io.StringIO("".join(csv_lines(reader.iterate(query))))))
    assert [int(r["seq"]) for r in rows] == [r.seq for r in records]
    assert rows[0]["ruleset"] == "desk"
    assert {r["offers"] for r in rows} <= {"", "waive-fee"}


def test_reader_is_read_only(tmp_path: Path) -> None:
    """The reader opens the file read-only: it cannot change the ledger."""
    path = tmp_path / "ro.db"
    SqliteLedgerStore(path).close()
    reader = LedgerReader(path)
    with pytest.raises(Exception, match="readonly"):
        reader._conn.execute("DELETE FROM ledger")
    reader.close()

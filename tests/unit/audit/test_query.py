"""Ledger queries: every filter, stable cursor pages, and streamed exports, over the index and
the log's not-yet-indexed tail alike."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audit.index import LedgerIndex, reindex
from audit.query import LedgerQuery, LedgerReader, QueryError, csv_lines, jsonl_lines
from audit.record import LedgerRecord, RulesetRef, decode, hash_text, leaf_hash
from audit.segments import SegmentLog
from audit.writer import LedgerWriter

START = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def record(n: int) -> LedgerRecord:
    return LedgerRecord(
        id=f"d-{n}",
        kind="decision" if n % 10 else "ack",
        customer_id=f"c-{n % 3}",
        agent_id=f"a-{n % 2}",
        ruleset=RulesetRef(name="desk", revision=1 + n % 2, digest="sha256:x"),
        outputs={
            k: v
            for k, v in {
                "eligible": [{"rule": "w", "offer": "waive-fee"}] if n % 4 == 0 else [],
                "escalation": {"rule": "v", "queue": "retention"} if n % 5 == 0 else None,
                "alerts": [{"rule": "churn"}] if n % 7 == 0 else [],
            }.items()
            if v
        },
        missing_fields=["customer.tier"] if n % 6 == 0 else [],
    )


def write(ledger_dir: Path, numbers: range, *, index_after: int | None = None) -> None:
    """Append record(n) for each n, one batch each, record n recorded on the n-th day from
    November 1st 2026; with ``index_after``, the index is brought up to date after that many
    records."""
    log = SegmentLog(ledger_dir, "local", durable=False)
    days = ((START + timedelta(days=n - 1)).isoformat().replace("+00:00", "Z") for n in numbers)
    writer = LedgerWriter(log, clock=days.__next__)
    for k, n in enumerate(numbers, start=1):
        writer.append_blocking(record(n))
        if k == index_after:
            index = LedgerIndex(ledger_dir)
            index.catch_up(SegmentLog(ledger_dir, "local", readonly=True))
            index.close()
    writer.close()
    log.close()


@pytest.fixture(scope="module", params=["indexed", "half-indexed", "not-indexed"])
def reader(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LedgerReader]:
    """60 records in one log: all in the index, the first 30 in it, or none in it."""
    ledger_dir = tmp_path_factory.mktemp("q")
    if request.param == "indexed":
        write(ledger_dir, range(1, 61))
        reindex(ledger_dir)
    elif request.param == "half-indexed":
        write(ledger_dir, range(1, 61), index_after=30)
    else:
        write(ledger_dir, range(1, 61))
    r = LedgerReader(ledger_dir)
    indexed = r.index.watermark("local").seq
    assert indexed == {"indexed": 60, "half-indexed": 30, "not-indexed": 0}[request.param]
    yield r
    r.close()


def ids(records: list[LedgerRecord]) -> list[int]:
    return [int(r.id[2:]) for r in records]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(LedgerQuery(), list(range(60, 0, -1)), id="none"),
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
        pytest.param(LedgerQuery(ruleset="desk"), list(range(60, 0, -1)), id="ruleset"),
        pytest.param(LedgerQuery(ruleset="other"), [], id="another-ruleset"),
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
        pytest.param(
            LedgerQuery(outcome="rule:v", kind="ack"), [60, 50, 40, 30, 20, 10], id="rule-and-kind"
        ),
        pytest.param(
            LedgerQuery(customer_id="c-0", since="2026-11-10T10:00:00Z"),
            [n for n in range(60, 9, -1) if n % 3 == 0],
            id="customer-since",
        ),
        pytest.param(
            LedgerQuery(outcome="offer:waive-fee", until="2026-11-13T10:00:00Z"),
            [12, 8, 4],
            id="offer-until",
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
        reader.iterate(LedgerQuery(since="2026-11-02T10:00:00Z", until="2026-11-04T10:00:00Z"))
    )
    assert ids(got) == [3, 2]  # appended one at a time, record n was recorded on day n


def test_cursor_pages_cover_everything_once(reader: LedgerReader) -> None:
    """Following next_cursor visits every record exactly once, then stops."""
    seen: list[int] = []
    query = LedgerQuery(limit=25)
    cursors = []
    while True:
        page = reader.page(query)
        seen.extend(ids(page.records))
        if page.next_cursor is None:
            break
        cursors.append(page.next_cursor)
        query = LedgerQuery(limit=25, cursor=page.next_cursor)
    assert seen == list(range(60, 0, -1))
    assert len(cursors) == 2 and all(c.endswith("-local") for c in cursors)
    ts, seq, _ = cursors[0].split("-", 2)
    assert ts.isdigit() and int(seq) == 36  # names the last record of its page


def test_a_page_that_fits_has_no_cursor(reader: LedgerReader) -> None:
    """A page holding every match says there is no next page."""
    page = reader.page(LedgerQuery(kind="ack", limit=6))
    assert ids(page.records) == [60, 50, 40, 30, 20, 10] and page.next_cursor is None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        pytest.param(LedgerQuery(limit=0), "limit", id="limit"),
        pytest.param(LedgerQuery(limit=1001), "limit must be between 1 and 1000", id="limit-max"),
        pytest.param(LedgerQuery(kind="lunch"), "unknown kind", id="kind"),
        pytest.param(LedgerQuery(outcome="waive-fee"), "outcome must look like", id="outcome"),
        pytest.param(LedgerQuery(outcome="offer:"), "outcome must look like", id="outcome-empty"),
        pytest.param(LedgerQuery(revision=2), "revision needs ruleset", id="revision"),
        pytest.param(LedgerQuery(cursor="42"), "cursor '42' is not one a page", id="cursor"),
        pytest.param(LedgerQuery(since="yesterday"), "since 'yesterday' is not", id="since"),
        pytest.param(LedgerQuery(until="2026-13-01"), "until '2026-13-01' is not", id="until"),
    ],
)
def test_bad_filters_are_refused(reader: LedgerReader, query: LedgerQuery, message: str) -> None:
    """A filter that cannot apply raises QueryError naming it."""
    with pytest.raises(QueryError, match=message):
        reader.page(query)


def test_get_by_id(reader: LedgerReader) -> None:
    """A record is found by its id, indexed or not yet; an unknown id gives None."""
    for n in (12, 42):
        found = reader.get(f"d-{n}")
        assert found is not None and found.customer_id == f"c-{n % 3}" and found.seq == n
        assert found.hash.startswith("sha256:")
    assert reader.get("nope") is None


def test_records_carry_their_hash(reader: LedgerReader) -> None:
    """Every record a query returns carries the hash of its stored bytes."""
    bodies = list(reader.bodies(LedgerQuery(customer_id="c-2")))
    records = list(reader.iterate(LedgerQuery(customer_id="c-2")))
    assert [r.hash for r in records] == [hash_text(leaf_hash(b)) for b in bodies]


def test_exports_stream_the_same_records(reader: LedgerReader) -> None:
    """JSONL lines are the stored bytes, each hashing to its record; CSV has one row each."""
    query = LedgerQuery(customer_id="c-0")
    records = list(reader.iterate(query))
    lines = list(jsonl_lines(reader.bodies(query)))
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)
    for line, r in zip(lines, records, strict=True):
        digest = "sha256:" + hashlib.sha256(b"\x00" + line[:-1]).hexdigest()
        assert digest == r.hash
        assert decode(line[:-1], digest) == r
    rows = list(csv.DictReader(io.StringIO("".join(csv_lines(reader.iterate(query))))))
    assert [int(r["seq"]) for r in rows] == [r.seq for r in records]
    assert [r["hash"] for r in rows] == [r.hash for r in records]
    assert rows[0]["ruleset"] == "desk" and rows[0]["instance"] == "local"
    assert {r["offers"] for r in rows} == {"", "waive-fee"}
    assert {r["missing_fields"] for r in rows} == {"", "customer.tier"}


def test_pages_run_across_instances_in_one_order(tmp_path: Path) -> None:
    """Records of several instances page newest first together, tied times by instance and seq."""
    clock = itertools.cycle(["2026-11-01T10:00:00Z", "2026-11-02T10:00:00Z"])
    for name in ("fl-a-0", "fl-b-1"):
        log = SegmentLog(tmp_path, name, durable=False)
        writer = LedgerWriter(log, clock=clock.__next__)
        for n in range(4):
            writer.append_blocking(LedgerRecord(id=f"{name}/{n}", kind="decision"))
        writer.close()
        log.close()
    reader = LedgerReader(tmp_path)
    try:
        order = [r.id for r in reader.iterate(LedgerQuery(), page_size=3)]
        first = reader.page(LedgerQuery(limit=3))
        rest = reader.page(LedgerQuery(limit=10, cursor=first.next_cursor))
    finally:
        reader.close()
    recorded = sorted(order, key=lambda i: (int(i[-1]) % 2, i), reverse=True)
    assert order == recorded
    assert [r.id for r in first.records + rest.records] == order
    assert first.next_cursor is not None and first.next_cursor.endswith("-fl-a-0")


def test_reading_never_changes_the_segments(tmp_path: Path) -> None:
    """A reader beside a running writer leaves every segment byte as it was."""
    write(tmp_path, range(1, 21))
    log = SegmentLog(tmp_path, "local")  # the writer holds the log while queries run
    segment = next((tmp_path / "local").glob("*.seg"))
    before = segment.read_bytes()
    reader = LedgerReader(tmp_path)
    try:
        assert len(list(reader.iterate(LedgerQuery()))) == 20
        assert reader.get("d-3") is not None
        assert len(list(reader.bodies(LedgerQuery(kind="ack")))) == 2
    finally:
        reader.close()
    assert segment.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "local").iterdir()) == [
        segment.name,
        "writer.lock",
    ]
    log.close()

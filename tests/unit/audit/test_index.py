"""The query index: derived from the segments, rebuildable, checked by verify, kept up by the
indexer process, and serving every filter in its page order."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audit.index import INDEX_FILE, IndexLayoutError, LedgerIndex, boot_id, reindex
from audit.indexer import IndexFollower, follow, lag
from audit.query import LedgerQuery, LedgerReader, _select
from audit.record import LedgerRecord, RulesetRef
from audit.retention import apply_retention
from audit.segments import SegmentLog
from audit.verify import verify_ledger
from audit.writer import LedgerWriter

START = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def record(n: int) -> LedgerRecord:
    return LedgerRecord(
        id=f"d-{n}",
        kind="decision" if n % 10 else "ack",
        customer_id=f"c-{n % 3}",
        agent_id=f"a-{n % 2}",
        ruleset=RulesetRef(name="desk", revision=1 + n % 2, digest="sha256:x"),
        outputs={"eligible": [{"rule": "w", "offer": "waive-fee"}]} if n % 4 == 0 else {},
        data={"note": f"needle-{n}"},
    )


class Ledger:
    """A writer on one instance's log, one record a batch, record n recorded n minutes after
    START, and helpers to index it."""

    def __init__(self, ledger_dir: Path, instance: str = "local", start: datetime = START):
        self.dir = ledger_dir
        self.log = SegmentLog(ledger_dir, instance, durable=False)
        self.clock = (
            (start + timedelta(minutes=k)).isoformat().replace("+00:00", "Z")
            for k in itertools.count(self.log.head()[0] + 1)
        )
        self.writer = LedgerWriter(self.log, clock=self.clock.__next__)

    def add(self, numbers: range) -> None:
        for n in numbers:
            self.writer.append_blocking(record(n))

    def index(self) -> int:
        """Bring the index up to date with this log; the records indexed."""
        index = LedgerIndex(self.dir)
        reader = SegmentLog(self.dir, self.log.instance, readonly=True)
        try:
            return index.catch_up(reader)
        finally:
            index.close()
            reader.close()

    def close(self) -> None:
        self.writer.close()
        self.log.close()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = Ledger(tmp_path)
    yield opened
    opened.close()


def every(reader: LedgerReader, query: LedgerQuery | None = None) -> list[str]:
    return [r.id for r in reader.iterate(query or LedgerQuery(), page_size=7)]


def newest_first(numbers: range) -> list[str]:
    return [f"d-{n}" for n in reversed(numbers)]


def index_files(ledger_dir: Path) -> list[Path]:
    return [ledger_dir / (INDEX_FILE + suffix) for suffix in ("", "-wal", "-shm")]


# -- derived -------------------------------------------------------------------------------


def test_deleting_the_index_loses_nothing(ledger: Ledger) -> None:
    """With index.db deleted, queries still see every record, and reindex builds it again."""
    ledger.add(range(1, 41))
    assert ledger.index() == 40
    for path in index_files(ledger.dir):
        path.unlink(missing_ok=True)
    reader = LedgerReader(ledger.dir)
    try:
        assert reader.index.watermark("local").seq == 0
        assert every(reader) == newest_first(range(1, 41))
        assert every(reader, LedgerQuery(outcome="offer:waive-fee")) == [
            f"d-{n}" for n in range(40, 0, -1) if n % 4 == 0
        ]
        assert reader.get("d-17") is not None
    finally:
        reader.close()
    assert reindex(ledger.dir) == {"local": 40}
    report = verify_ledger(ledger.dir)
    assert report.ok and report.instances["local"].indexed == 40


def test_a_query_sees_records_not_yet_indexed(ledger: Ledger) -> None:
    """Records past the index's mark are found by every query, merged in page order."""
    ledger.add(range(1, 21))
    ledger.index()
    ledger.add(range(21, 31))
    reader = LedgerReader(ledger.dir)
    try:
        assert reader.index.watermark("local").seq == 20
        assert every(reader) == newest_first(range(1, 31))
        assert every(reader, LedgerQuery(customer_id="c-1")) == [
            f"d-{n}" for n in range(30, 0, -1) if n % 3 == 1
        ]
        found = reader.get("d-27")
        assert found is not None and found.seq == 27
    finally:
        reader.close()


def test_pages_stay_stable_across_indexing_and_new_records(ledger: Ledger) -> None:
    """A cursor taken before the index moves, or before newer records come, goes on exactly."""
    ledger.add(range(1, 31))
    ledger.index()
    ledger.add(range(31, 51))  # 31..50 only in the tail
    reader = LedgerReader(ledger.dir)
    seen: list[str] = []
    try:
        page = reader.page(LedgerQuery(limit=8))
        seen += [r.id for r in page.records]
        ledger.index()  # the tail moves into the index between pages
        ledger.add(range(51, 61))  # and newer records arrive
        while page.next_cursor is not None:
            page = reader.page(LedgerQuery(limit=8, cursor=page.next_cursor))
            seen += [r.id for r in page.records]
            if len(seen) == 24:
                for path in index_files(ledger.dir):  # and even the index goes away
                    path.unlink(missing_ok=True)
                reader.close()
                reader = LedgerReader(ledger.dir)
    finally:
        reader.close()
    assert seen == newest_first(range(1, 51))


def test_the_index_holds_pointers_not_bodies(ledger: Ledger) -> None:
    """Fields the index does not filter on are never copied into index.db."""
    ledger.add(range(1, 51))
    ledger.index()
    with sqlite3.connect(ledger.dir / INDEX_FILE) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = (ledger.dir / INDEX_FILE).read_bytes()
    assert b"needle-" not in data and b"sha256:x" not in data
    assert b"c-1" in data  # the indexed columns are there


def test_reindex_reports_progress_in_bytes(ledger: Ledger) -> None:
    """reindex calls progress with records so far, bytes read and bytes in all segments."""
    ledger.add(range(1, 31))
    calls: list[tuple[int, int, int]] = []
    assert reindex(ledger.dir, progress=lambda *a: calls.append(a)) == {"local": 30}
    total = sum(p.stat().st_size for p in (ledger.dir / "local").glob("*.seg"))
    assert calls[-1] == (30, total, total)
    assert all(t == total and 0 < read <= total for _, read, t in calls)


def test_an_index_of_another_layout_is_refused_and_rebuilt(ledger: Ledger) -> None:
    """An index.db of another layout is refused in one sentence and replaced by reindex."""
    ledger.add(range(1, 11))
    ledger.index()
    with sqlite3.connect(ledger.dir / INDEX_FILE) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(IndexLayoutError, match="run `frontline audit reindex` to build it"):
        LedgerIndex(ledger.dir)
    assert reindex(ledger.dir) == {"local": 10}
    assert verify_ledger(ledger.dir).ok


def test_a_reader_sees_every_record_while_the_index_is_rebuilt(ledger: Ledger) -> None:
    """A reader opened before reindex sees every record before, during and after it."""
    ledger.add(range(1, 31))
    ledger.index()
    reader = LedgerReader(ledger.dir)
    counts: list[int] = []
    try:
        reindex(ledger.dir, progress=lambda *_: counts.append(len(every(reader))))
        counts.append(len(every(reader)))
    finally:
        reader.close()
    assert counts and set(counts) == {30}


# -- every filter in its own order ----------------------------------------------------------


def _label(query: LedgerQuery) -> str:
    fields = {k: v for k, v in vars(query).items() if v is not None and k != "limit"}
    return "+".join(fields) or "none"


FILTERS = [
    LedgerQuery(),
    LedgerQuery(customer_id="c-1"),
    LedgerQuery(agent_id="a-1"),
    LedgerQuery(ruleset="desk"),
    LedgerQuery(ruleset="desk", revision=2),
    LedgerQuery(kind="ack"),
    LedgerQuery(outcome="offer:waive-fee"),
    LedgerQuery(since="2026-11-01T11:00:00Z"),
    LedgerQuery(until="2026-11-01T12:00:00Z"),
    LedgerQuery(since="2026-11-01T11:00:00Z", until="2026-11-01T12:00:00Z"),
    LedgerQuery(customer_id="c-1", agent_id="a-1"),
    LedgerQuery(customer_id="c-1", kind="ack"),
    LedgerQuery(customer_id="c-1", since="2026-11-01T11:00:00Z"),
    LedgerQuery(agent_id="a-0", ruleset="desk", revision=1),
    LedgerQuery(ruleset="desk", kind="decision", until="2026-11-01T12:00:00Z"),
    LedgerQuery(outcome="offer:waive-fee", customer_id="c-2"),
    LedgerQuery(outcome="rule:w", since="2026-11-01T11:00:00Z", until="2026-11-01T12:00:00Z"),
    LedgerQuery(
        customer_id="c-0",
        agent_id="a-0",
        ruleset="desk",
        revision=1,
        kind="decision",
        outcome="offer:waive-fee",
        since="2026-11-01T10:30:00Z",
        until="2026-11-01T13:00:00Z",
    ),
]


@pytest.fixture(scope="module", params=["empty", "filled", "analyzed"])
def index(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LedgerIndex]:
    """An index with nothing in it, with 400 records of two instances, and the same analyzed."""
    ledger_dir = tmp_path_factory.mktemp("plans")
    if request.param != "empty":
        for name in ("fl-a-0", "fl-b-1"):
            ledger = Ledger(ledger_dir, name)
            ledger.add(range(1, 201))
            ledger.index()
            ledger.close()
    opened = LedgerIndex(ledger_dir)
    if request.param == "analyzed":
        opened.conn.execute("ANALYZE")
    yield opened
    opened.close()


@pytest.mark.parametrize("cursor", [None, (1_793_000_000_000_000, 2, 100)], ids=["first", "next"])
@pytest.mark.parametrize("query", FILTERS, ids=_label)
def test_every_filter_is_served_by_an_index_in_page_order(
    index: LedgerIndex, query: LedgerQuery, cursor: tuple[int, int, int] | None
) -> None:
    """The page's SQL never sorts: each filter reads an index already in (ts, inst, seq) order."""
    sql, params = _select(query.validated(), cursor)
    plan = [row[3] for row in index.conn.execute("EXPLAIN QUERY PLAN " + sql, (*params, 101))]
    assert not [step for step in plan if "TEMP B-TREE" in step], plan
    assert any("USING INDEX" in step or "USING PRIMARY KEY" in step for step in plan), plan


def test_the_page_sql_finds_what_the_filter_asks(index: LedgerIndex) -> None:
    """The SQL whose plan is checked returns the rows a filter matches, newest first."""
    rows = index.conn.execute(*_sql(LedgerQuery(customer_id="c-1", kind="ack"), 1000)).fetchall()
    if not index.conn.execute("SELECT 1 FROM records").fetchone():
        assert rows == []
        return
    seqs = [seq for _, _, seq, _, _ in rows]
    assert seqs == [n for n in range(200, 0, -1) if n % 3 == 1 and n % 10 == 0 for _ in (1, 2)]
    keys = [(ts, inst, seq) for ts, inst, seq, _, _ in rows]
    assert keys == sorted(keys, reverse=True)


def _sql(query: LedgerQuery, limit: int) -> tuple[str, list[object]]:
    sql, params = _select(query, None)
    return sql, [*params, limit]


# -- verify checks the index; reindex repairs it ---------------------------------------------


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        pytest.param(
            "UPDATE records SET customer_id = 'mallory' WHERE seq = 5",
            "index row for record 5 differs from the record: customer_id 'mallory' in the "
            "index, 'c-2' in the record",
            id="changed-column",
        ),
        pytest.param(
            "UPDATE records SET offset = offset + 1 WHERE seq = 7",
            "index row for record 7 differs from the record: offset",
            id="changed-pointer",
        ),
        pytest.param(
            "DELETE FROM records WHERE seq = 5",
            "record 5 is missing from the index: queries would not find it",
            id="deleted-row",
        ),
        pytest.param(
            "INSERT INTO records SELECT inst, 99, ts, 'd-99', kind, customer_id, agent_id,"
            " ruleset, revision, segment, offset FROM records WHERE seq = 3",
            "index row for record 99 points past the end of the log",
            id="extra-row",
        ),
        pytest.param(
            "INSERT INTO records SELECT inst + 1, seq, ts, id, kind, customer_id, agent_id,"
            " ruleset, revision, segment, offset FROM records WHERE seq = 3",
            "the index holds rows of instance number 2 (1 records), which has no log in",
            id="extra-row-of-no-instance",
        ),
        pytest.param(
            "DELETE FROM outcomes WHERE seq = 8",
            "index outcomes for record 8 differ from the record: index [], "
            "record [('offer', 'waive-fee'), ('rule', 'w')]",
            id="missing-outcome",
        ),
        pytest.param(
            "INSERT INTO terms (facet, value) VALUES ('offer', 'free-phone');"
            " INSERT INTO outcomes SELECT last_insert_rowid(), ts, inst, seq FROM records"
            " WHERE seq = 3",
            "index outcomes for record 3 differ from the record: index [('offer', 'free-phone')]",
            id="extra-outcome",
        ),
        pytest.param(
            "INSERT INTO outcomes SELECT term, ts, inst, 99 FROM outcomes WHERE seq = 8",
            "index has outcomes for record 99, which is not there",
            id="outcome-past-the-log",
        ),
        pytest.param(
            "UPDATE outcomes SET ts = ts + 1 WHERE seq = 12"
            " AND term = (SELECT term FROM terms WHERE facet = 'offer')",
            "index outcomes for record 12 differ from the record",
            id="outcome-time",
        ),
        pytest.param(
            "UPDATE terms SET value = 'free-phone' WHERE value = 'waive-fee'",
            "index outcomes for record 8 differ from the record: index [('offer', 'free-phone')",
            id="renamed-term",
        ),
        pytest.param(
            "DELETE FROM terms WHERE value = 'waive-fee'",
            "index outcomes for record 8 differ from the record: index [('?', 'term ",
            id="unnumbered-term",
        ),
        pytest.param(
            "UPDATE instances SET indexed_seq = 25",
            "the index says records up to 25 are indexed, but the log ends at 20",
            id="watermark-past-the-log",
        ),
    ],
)
def test_verify_reports_a_tampered_index_and_reindex_repairs_it(
    ledger: Ledger, tamper: str, problem: str
) -> None:
    """Each way the index can disagree with the segments is reported; reindex puts it right."""
    ledger.add(range(1, 21))
    ledger.index()
    assert verify_ledger(ledger.dir).ok
    with sqlite3.connect(ledger.dir / INDEX_FILE) as conn:
        changes = conn.total_changes
        conn.executescript(tamper)
        assert conn.total_changes > changes
    report = verify_ledger(ledger.dir)
    assert not report.ok
    problems = [p for r in report.instances.values() for p in r.index_problems]
    assert any(p.startswith(problem) for p in problems), problems
    assert all(r.reason is None for r in report.instances.values())  # the chain is intact
    reindex(ledger.dir)
    repaired = verify_ledger(ledger.dir)
    assert repaired.ok, repaired.to_dict()
    assert repaired.instances["local"].indexed == 20
    reader = LedgerReader(ledger.dir)
    try:
        assert every(reader) == newest_first(range(1, 21))
    finally:
        reader.close()


def test_a_row_of_a_removed_record_is_reported(tmp_path: Path) -> None:
    """After retention removed records, a row put back for one of them is reported."""
    ledger = Ledger(tmp_path)
    ledger.close()
    ledger.log = SegmentLog(tmp_path, "local", durable=False, segment_bytes=1)
    ledger.writer = LedgerWriter(ledger.log, clock=ledger.clock.__next__)
    ledger.add(range(1, 11))
    ledger.index()
    with sqlite3.connect(tmp_path / INDEX_FILE) as conn:
        kept = conn.execute("SELECT * FROM records WHERE seq = 2").fetchone()
    now = START + timedelta(days=1, minutes=3, seconds=30)
    removed = apply_retention(tmp_path, ledger.writer, older_than=timedelta(days=1), now=now)
    ledger.index()  # the indexer has passed the retention checkpoint
    ledger.close()
    assert (removed.first, removed.through) == (1, 3)
    assert verify_ledger(tmp_path).ok
    with sqlite3.connect(tmp_path / INDEX_FILE) as conn:
        conn.execute("INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?,?,?)", kept)
    report = verify_ledger(tmp_path).instances["local"]
    assert report.reason is None
    assert report.index_problems == ["index row for record 2 points at a removed record"]


# -- the indexer process ----------------------------------------------------------------------


def test_the_indexer_follows_the_writer_and_its_lag_goes_to_zero(tmp_path: Path) -> None:
    """Records committed before and while the indexer runs are indexed; lag() falls to 0."""
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    ledger = Ledger(tmp_path, start=hour_ago)
    ledger.add(range(1, 51))
    behind, seconds = lag(tmp_path, ledger.log, ledger.writer.head[0])
    assert behind == 50 and 3500 < seconds < 3700  # the oldest not indexed is an hour old
    follower = IndexFollower(tmp_path, "local", interval=0.05)
    try:
        ledger.writer.on_commit(follower.notify)
        ledger.add(range(51, 151))
        deadline = time.monotonic() + 20
        while lag(tmp_path, ledger.log, ledger.writer.head[0]) != (0, 0.0):
            assert time.monotonic() < deadline, "the indexer did not catch up"
            time.sleep(0.05)
        assert follower.running
    finally:
        follower.close()
        ledger.close()
    report = verify_ledger(tmp_path)
    assert report.ok and report.instances["local"].indexed == 150


def test_closing_the_indexer_indexes_what_is_written(tmp_path: Path) -> None:
    """close() lets the indexer index every record written before it stops."""
    ledger = Ledger(tmp_path)
    follower = IndexFollower(tmp_path, "local", interval=30)  # never wakes by itself
    try:
        ledger.add(range(1, 41))  # and is never told
    finally:
        follower.close()
        ledger.close()
    assert not follower.running
    index = LedgerIndex(tmp_path)
    assert index.watermark("local").seq == 40
    index.close()


def test_an_indexer_ahead_of_the_log_indexes_it_again(tmp_path: Path) -> None:
    """If the log ends before the index's mark (a power cut), the indexer starts it over."""
    ledger = Ledger(tmp_path)
    ledger.add(range(1, 21))
    ledger.index()
    ledger.close()
    segment = next((tmp_path / "local").glob("*.seg"))
    frames = list(SegmentLog(tmp_path, "local", readonly=True).frames())
    with open(segment, "r+b") as f:
        f.truncate(frames[12].offset)  # records 13..20 never reached the disk
    SegmentLog(tmp_path, "local").close()
    assert not verify_ledger(tmp_path).ok  # the index is ahead
    follower = IndexFollower(tmp_path, "local", interval=0.05)
    follower.close()
    report = verify_ledger(tmp_path)
    assert report.ok, report.to_dict()
    assert report.instances["local"].indexed == 12


def closed_pipe() -> int:
    """The reading end of a pipe whose writer has gone: the indexer indexes, then stops."""
    read, write = os.pipe()
    os.close(write)
    return read


def unsynced_marks(ledger_dir: Path) -> dict[str, str | None]:
    """Each instance's unsynced mark ({} until the indexer has made the file)."""
    with contextlib.closing(sqlite3.connect(ledger_dir / INDEX_FILE)) as conn:
        try:
            return dict(conn.execute("SELECT name, unsynced FROM instances"))
        except sqlite3.OperationalError:  # no such table yet
            return {}


@pytest.mark.skipif(boot_id() is None, reason="the kernel gives no boot id")
def test_the_indexer_marks_its_unsynced_writes_and_clears_the_mark_when_it_stops(
    tmp_path: Path,
) -> None:
    """While the indexer runs its instance carries this boot's id; a clean stop clears it."""
    ledger = Ledger(tmp_path)
    follower = IndexFollower(tmp_path, "local", interval=0.05)
    try:
        ledger.writer.on_commit(follower.notify)
        ledger.add(range(1, 21))
        deadline = time.monotonic() + 20
        while unsynced_marks(tmp_path).get("local") is None:
            assert time.monotonic() < deadline, "the indexer did not mark its writes"
            time.sleep(0.05)
        assert unsynced_marks(tmp_path) == {"local": boot_id()}
    finally:
        follower.close()
        ledger.close()
    assert unsynced_marks(tmp_path) == {"local": None}
    assert verify_ledger(tmp_path).instances["local"].indexed == 20


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        pytest.param(
            "UPDATE instances SET unsynced = 'a-boot-before-a-power-cut'",
            "the machine restarted while the indexer of local was writing it without syncing",
            id="written-unsynced-before-a-restart",
        ),
        pytest.param("PRAGMA user_version = 1", "it is of another layout", id="older-layout"),
    ],
)
def test_an_index_that_cannot_be_trusted_is_built_again_by_the_indexer(
    tmp_path: Path, damage: str, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An index written unsynced before the machine restarted, or of another layout, is
    rebuilt from the segments when the indexer starts, saying why in one line."""
    ledger = Ledger(tmp_path)
    ledger.add(range(1, 31))
    ledger.index()
    ledger.close()
    with contextlib.closing(sqlite3.connect(tmp_path / INDEX_FILE)) as conn:
        conn.execute("UPDATE records SET customer_id = 'planted' WHERE seq = 4")
        conn.executescript(damage)
        conn.commit()
    with caplog.at_level(logging.WARNING, logger="frontline.ledger"):
        follow(tmp_path, "local", 0.01, wake=closed_pipe())
    assert [r.getMessage() for r in caplog.records] == [
        f"rebuilding the ledger's query index from the segments: {said}"
    ]
    report = verify_ledger(tmp_path)
    assert report.ok, report.to_dict()  # the planted row is gone with the old file
    assert report.instances["local"].indexed == 30
    assert unsynced_marks(tmp_path) == {"local": None}


def test_an_index_that_is_not_a_database_is_built_again_by_the_indexer(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.add(range(1, 11))
    ledger.close()
    (tmp_path / INDEX_FILE).write_bytes(b"not a database, written over by accident" * 100)
    follow(tmp_path, "local", 0.01, wake=closed_pipe())
    assert verify_ledger(tmp_path).instances["local"].indexed == 10


def test_the_rows_of_a_removed_log_are_reported(tmp_path: Path) -> None:
    """When an instance's whole log is gone, its rows left in the index are reported."""
    for name in ("fl-a-0", "fl-b-1"):
        ledger = Ledger(tmp_path, name)
        ledger.add(range(1, 6))
        ledger.index()
        ledger.close()
    for path in (tmp_path / "fl-b-1").iterdir():
        path.unlink()
    (tmp_path / "fl-b-1").rmdir()
    report = verify_ledger(tmp_path)
    assert not report.ok and report.instances["fl-a-0"].ok
    assert report.instances["fl-b-1"].index_problems == [
        f"the index holds rows of instance 'fl-b-1' (5 records), which has no log in {tmp_path}: "
        "they point at records that are not there"
    ]


def test_a_query_racing_the_indexer_misses_nothing(ledger: Ledger) -> None:
    """A batch indexed while a page is read is found once: in the index's rows or the tail."""
    ledger.add(range(1, 21))
    ledger.index()
    ledger.add(range(21, 41))
    reader = LedgerReader(ledger.dir)
    raced: list[str] = []

    def index_meanwhile(statement: str) -> None:
        # Between the page's rows and its reading of the marks, the indexer commits a batch.
        if "FROM instances" in statement and "indexed_seq" in statement and not raced:
            raced.append(statement)
            ledger.index()

    try:
        reader.index.conn.set_trace_callback(index_meanwhile)
        got = [r.id for r in reader.page(LedgerQuery(limit=100)).records]
        reader.index.conn.set_trace_callback(None)
    finally:
        reader.close()
    assert raced
    assert got == newest_first(range(1, 41))


def test_a_long_read_indexes_a_long_unindexed_tail_first(tmp_path: Path) -> None:
    """Reading every page of a ledger whose index lags by megabytes indexes that tail first
    (each page would otherwise read it again), and returns every record once."""
    log = SegmentLog(tmp_path, "a")
    writer = LedgerWriter(log)
    pad = "x" * 2_000
    for n in range(1, 3_001):
        writer.submit(LedgerRecord(id=f"d-{n}", kind="decision", data={"pad": pad}))
    writer.append_blocking(LedgerRecord(id="d-last", kind="decision"))
    writer.close()
    log.close()
    reader = LedgerReader(tmp_path)
    try:
        assert reader.index.watermark("a").seq == 0
        ids = [r.id for r in reader.iterate(LedgerQuery(kind="decision"))]
        assert len(ids) == len(set(ids)) == 3_001
        assert reader.index.watermark("a").seq == 3_001
    finally:
        reader.close()


def test_removing_records_moves_the_mark_so_an_indexer_in_flight_adds_none_back(
    tmp_path: Path,
) -> None:
    """An indexer that read frames before retention dropped their rows finds its mark moved,
    adds nothing, and indexes again from after the removed records."""
    log = SegmentLog(tmp_path, "a", segment_bytes=400)
    writer = LedgerWriter(log, max_batch=1)
    for n in range(1, 41):
        writer.append_blocking(LedgerRecord(id=f"d-{n}", kind="decision", customer_id="c"))
    writer.close()
    log.close()
    reader = SegmentLog(tmp_path, "a", readonly=True)
    index = LedgerIndex(tmp_path)
    try:
        mark = index.watermark("a")
        read_before = list(reader.frames(mark.seq))
        retention = LedgerIndex(tmp_path)
        retention.forget_through("a", 20)
        retention.close()
        assert not index._add(mark.inst, read_before, mark.seq)
        assert index.watermark("a").seq == 20
        assert index.catch_up(reader) == 20
        seqs = [row[0] for row in index.rows("a")]
        assert seqs == list(range(21, 41))
    finally:
        index.close()
        reader.close()

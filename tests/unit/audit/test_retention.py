"""Retention removes old records as whole segments and leaves a chain that still verifies."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audit.index import LedgerIndex, reindex
from audit.query import LedgerQuery, LedgerReader
from audit.record import LedgerRecord, decode, hash_text, leaf_hash
from audit.retention import apply_retention
from audit.segments import SegmentLog, segment_name
from audit.verify import verify, verify_ledger
from audit.writer import LedgerWriter

START = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    """A writer clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> str:
        return self.now.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class Ledger:
    dir: Path
    log: SegmentLog
    writer: LedgerWriter
    clock: Clock

    def scan(self) -> list[int]:
        return [seq for seq, _ in self.log.scan()]

    def verify(self) -> bool:
        return verify(self.log).ok


def open_ledger(tmp_path: Path, segment_bytes: int) -> Ledger:
    log = SegmentLog(tmp_path, "local", segment_bytes=segment_bytes, durable=False)
    clock = Clock()
    return Ledger(tmp_path, log, LedgerWriter(log, clock=clock), clock)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A log whose every batch (here: every record) starts a segment of its own."""
    opened = open_ledger(tmp_path, segment_bytes=1)
    yield opened
    opened.writer.close()
    opened.log.close()


_ids = itertools.count()


def fill(ledger: Ledger, days: int, per_day: int) -> None:
    """``per_day`` records a day for ``days`` days, the clock a day later after each."""
    for _ in range(days):
        for _ in range(per_day):
            n = next(_ids)
            ledger.writer.append_blocking(
                LedgerRecord(
                    id=f"{ledger.clock.now.date()}-{n}",
                    kind="decision",
                    customer_id=f"c-{n % 3}",
                    outputs={"eligible": [{"rule": "r", "offer": "o"}]},
                )
            )
        ledger.clock.now += timedelta(days=1)


def test_old_records_go_in_one_range_and_verify_still_passes(ledger: Ledger) -> None:
    """Records older than the age go as one prefix, after a checkpoint, and the rest verifies."""
    fill(ledger, days=10, per_day=25)  # seqs 1..250, 25 per day
    reindex(ledger.dir)
    result = apply_retention(
        ledger.dir, ledger.writer, older_than=timedelta(days=4), now=ledger.clock.now
    )
    # now = day 10; records of days 0..5 are older than 4 days: seqs 1..150
    assert (result.first, result.through, result.deleted) == (1, 150, 150)
    assert result.checkpoint_seq == 251 and result.segments == 150
    assert result.cutoff == "2026-01-07T00:00:00.000000Z"
    assert ledger.scan() == list(range(151, 252))
    assert ledger.log.segments()[0] == 151
    checkpoint = decode(dict(ledger.log.scan(250))[251])
    assert checkpoint.kind == "checkpoint"
    assert checkpoint.data["reason"] == "retention"
    assert checkpoint.data["deleted_from"] == 1 and checkpoint.data["deleted_through"] == 150
    assert checkpoint.data["records"] == 150
    report = verify(ledger.log)
    assert report.ok, report
    assert report.records == 101
    # the index lost the removed records too, and agrees with what is left
    full = verify_ledger(ledger.dir)
    assert full.ok and full.instances["local"].indexed == 100
    reader = LedgerReader(ledger.dir)
    try:
        found = list(reader.iterate(LedgerQuery(outcome="offer:o")))
        assert reader.get(f"{START.date()}-0") is None
    finally:
        reader.close()
    assert min(r.seq for r in found) == 151 and len(found) == 100


def test_the_checkpoint_anchors_the_chain_it_cuts(ledger: Ledger) -> None:
    """The checkpoint names the hash of the last removed record, the prev_hash of the first kept."""
    fill(ledger, days=4, per_day=3)
    frames = {f.seq: f for f in ledger.log.frames()}
    result = apply_retention(
        ledger.dir, ledger.writer, older_than=timedelta(days=2), now=ledger.clock.now
    )
    assert result.through == 6
    checkpoint = decode(dict(ledger.log.scan())[result.checkpoint_seq or 0])
    assert checkpoint.data["anchor_hash"] == hash_text(leaf_hash(frames[6].body))
    assert decode(frames[7].body).prev_hash == checkpoint.data["anchor_hash"]


def test_running_again_continues_from_the_last_checkpoint(ledger: Ledger) -> None:
    """A second run removes from where the first stopped; a run with nothing due writes nothing."""
    fill(ledger, days=6, per_day=10)
    first = apply_retention(
        ledger.dir, ledger.writer, older_than=timedelta(days=3), now=ledger.clock.now
    )
    fill(ledger, days=3, per_day=10)
    second = apply_retention(
        ledger.dir, ledger.writer, older_than=timedelta(days=3), now=ledger.clock.now
    )
    assert first.through is not None and second.first == first.through + 1
    assert ledger.verify()
    head = ledger.log.head()
    nothing = apply_retention(
        ledger.dir, ledger.writer, older_than=timedelta(days=3), now=ledger.clock.now
    )
    assert nothing.deleted == 0 and nothing.checkpoint_seq is None
    assert ledger.log.head() == head  # no checkpoint for nothing
    assert ledger.verify()


def test_unshipped_records_are_kept_whatever_their_age(ledger: Ledger) -> None:
    """keep_from protects records from that seq on, however old they are."""
    fill(ledger, days=5, per_day=10)
    result = apply_retention(
        ledger.dir, ledger.writer, older_than=timedelta(days=1), now=ledger.clock.now, keep_from=21
    )
    assert (result.first, result.through) == (1, 20)
    assert ledger.scan()[0] == 21
    assert ledger.verify()


def test_only_whole_segments_go(tmp_path: Path) -> None:
    """An old record sharing a segment with a newer one stays until its whole segment is old."""
    ledger = open_ledger(tmp_path, segment_bytes=2_000)
    try:
        fill(ledger, days=10, per_day=5)
        segments = ledger.log.segments()
        assert 3 < len(segments) < 50  # several records a segment
        result = apply_retention(
            ledger.dir, ledger.writer, older_than=timedelta(days=4), now=ledger.clock.now
        )
        assert result.through is not None and result.through < 31
        assert result.through + 1 in segments  # the cut falls between two segments
        kept = ledger.scan()
        assert kept[0] == result.through + 1
        # The first record of day 6 (seq 31) is not old enough: its segment stays whole.
        assert kept[0] == max(s for s in segments if s <= 31)
        assert kept[0] <= 30  # so records of day 5, old enough, are still there
        assert ledger.verify()
    finally:
        ledger.writer.close()
        ledger.log.close()


def test_the_segment_being_written_is_never_removed(tmp_path: Path) -> None:
    """When every record is in the segment being written, nothing goes, however old."""
    ledger = open_ledger(tmp_path, segment_bytes=64 << 20)
    try:
        fill(ledger, days=5, per_day=4)
        result = apply_retention(
            ledger.dir, ledger.writer, older_than=timedelta(days=1), now=ledger.clock.now
        )
        assert result.deleted == 0 and result.checkpoint_seq is None
        assert ledger.scan() == list(range(1, 21))
    finally:
        ledger.writer.close()
        ledger.log.close()


def test_a_deletion_without_a_checkpoint_is_reported(ledger: Ledger) -> None:
    """Deleting old segments behind the ledger's back is what verify must catch."""
    fill(ledger, days=3, per_day=5)
    for seq in range(1, 6):
        (ledger.dir / "local" / segment_name(seq)).unlink()
    report = verify(ledger.log)
    assert not report.ok and report.broken_at == 6
    assert "no checkpoint accounts for records 1 to 5" in (report.reason or "")


def test_an_index_kept_during_retention_agrees_afterwards(ledger: Ledger) -> None:
    """Index rows of removed records go with them, whether indexed before or after."""
    fill(ledger, days=6, per_day=5)
    index = LedgerIndex(ledger.dir)
    index.catch_up(SegmentLog(ledger.dir, "local", readonly=True))
    index.close()
    fill(ledger, days=2, per_day=5)  # not indexed yet
    result = apply_retention(
        ledger.dir, ledger.writer, older_than=timedelta(days=3), now=ledger.clock.now
    )
    assert result.through == 25
    report = verify_ledger(ledger.dir)
    assert report.ok, report.to_dict()
    reader = LedgerReader(ledger.dir)
    try:
        assert [r.seq for r in reader.iterate(LedgerQuery())] == list(range(41, 25, -1))
    finally:
        reader.close()


def test_an_indexer_that_read_removed_records_drops_them_at_the_checkpoint(
    ledger: Ledger,
) -> None:
    """An index built while retention ran (it did not exist when retention looked for it,
    or was being rebuilt) may have read the old segments before they were unlinked; the
    checkpoint in the log tells it to drop those rows."""
    fill(ledger, days=6, per_day=5)
    segments = ledger.dir / "local"
    saved = {p.name: p.read_bytes() for p in segments.iterdir()}
    result = apply_retention(
        ledger.dir, ledger.writer, older_than=timedelta(days=3), now=ledger.clock.now
    )
    assert result.through == 15
    # The indexer reads the segments as they were before the unlink.
    for name, data in saved.items():
        if not (segments / name).exists():
            (segments / name).write_bytes(data)
    index = LedgerIndex(ledger.dir)
    index.catch_up(SegmentLog(ledger.dir, "local", readonly=True))
    index.close()
    ledger.log.remove_segments_through(15)
    report = verify_ledger(ledger.dir)
    assert report.ok, report.to_dict()
    reader = LedgerReader(ledger.dir)
    try:
        assert [r.seq for r in reader.iterate(LedgerQuery())] == list(range(31, 15, -1))
    finally:
        reader.close()


def test_rows_of_removed_records_are_wrong_only_once_the_indexer_passed_the_checkpoint(
    ledger: Ledger,
) -> None:
    fill(ledger, days=6, per_day=5)
    index = LedgerIndex(ledger.dir)
    index.catch_up(SegmentLog(ledger.dir, "local", readonly=True))
    index.close()
    aside = ledger.dir / "aside.db"
    (ledger.dir / "index.db").rename(aside)  # retention finds no index to clean
    apply_retention(ledger.dir, ledger.writer, older_than=timedelta(days=3), now=ledger.clock.now)
    aside.rename(ledger.dir / "index.db")
    # The indexer has not reached the checkpoint (31): its rows for 1..15 are not wrong yet.
    assert verify_ledger(ledger.dir).ok
    index = LedgerIndex(ledger.dir)
    index.conn.execute("UPDATE instances SET indexed_seq = 31")  # past it, rows still there
    index.conn.commit()
    index.close()
    report = verify_ledger(ledger.dir)
    assert not report.ok
    assert "index row for record 1 points at a removed record" in str(report.to_dict())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"older_than": timedelta(0)}, "must be positive"),
        ({"older_than": timedelta(days=-1)}, "must be positive"),
        ({"older_than": timedelta(days=1), "now": datetime(2026, 1, 9)}, "timezone-aware"),
    ],
)
def test_bad_settings_are_refused(ledger: Ledger, kwargs: dict[str, object], message: str) -> None:
    """A non-positive age or a naive now is refused before anything is written."""
    fill(ledger, days=3, per_day=2)
    head = ledger.log.head()
    arguments: dict[str, object] = {"now": ledger.clock.now, **kwargs}
    with pytest.raises(ValueError, match=message):
        apply_retention(ledger.dir, ledger.writer, **arguments)  # type: ignore[arg-type]
    assert ledger.log.head() == head and ledger.scan() == list(range(1, 7))


def test_a_signed_log_keeps_its_tree_and_proofs_after_retention(tmp_path: Path) -> None:
    """Retention keeps the removed records' leaf hashes first, so the reopened writer rebuilds
    the same tree, its heads still verify, and proofs of the records left still check."""
    from audit.merkle import verify_inclusion
    from audit.proofs import LogTree, read_pruned
    from audit.record import hash_bytes
    from audit.signing import Signer
    from audit.writer import LedgerTampered  # noqa: F401 - the reopen below must not raise it

    signer = Signer.generate()
    log = SegmentLog(tmp_path, "local", segment_bytes=1, durable=False)
    clock = Clock()
    writer = LedgerWriter(log, clock=clock, signer=signer, head_interval=3600)
    ledger = Ledger(tmp_path, log, writer, clock)
    fill(ledger, days=10, per_day=3)
    writer.close()  # a tree head over the 30 decisions
    log.close()

    log = SegmentLog(tmp_path, "local", segment_bytes=1, durable=False)
    writer = LedgerWriter(log, clock=clock, signer=signer, head_interval=3600)
    clock.now = START + timedelta(days=30)
    result = apply_retention(tmp_path, writer, older_than=timedelta(days=25), now=clock.now)
    assert result.deleted > 0 and result.first == 1
    assert read_pruned(tmp_path / "local", result.through or 0) is not None
    writer.close()
    log.close()

    log = SegmentLog(tmp_path, "local", segment_bytes=1, durable=False)
    writer = LedgerWriter(log, clock=clock, signer=signer, head_interval=3600)
    head = writer.latest_head
    assert head is not None and head.tree_size == log.head()[0] - 1  # signed at the last close
    writer.close()
    report = verify(log, public_key=signer.public_key)
    assert report.ok, report.reason
    tree = LogTree(log)
    kept = [(seq, leaf_hash(body)) for seq, body in log.scan()]
    for seq, leaf in kept[:3] + kept[-3:]:
        if seq > head.tree_size:
            continue
        path = tree.inclusion(seq - 1, head.tree_size)
        verify_inclusion(seq - 1, head.tree_size, leaf, path, hash_bytes(head.root_hash))
    log.close()

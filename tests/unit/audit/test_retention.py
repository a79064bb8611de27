"""Retention deletes whole ranges of old records and leaves a chain that still verifies."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audit.query import LedgerQuery, LedgerReader
from audit.record import LedgerRecord, decode
from audit.retention import apply_retention
from audit.sqlite import SqliteLedgerStore
from audit.verify import verify
from audit.writer import LedgerWriter

START = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    """A writer clock the test moves by hand: one day per ``tick``."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> str:
        return self.now.isoformat(timespec="microseconds").replace("+00:00", "Z")


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[tuple[Path, SqliteLedgerStore, LedgerWriter, Clock]]:
    path = tmp_path / "ledger.db"
    store = SqliteLedgerStore(path)
    clock = Clock()
    writer = LedgerWriter(store, clock=clock)
    yield path, store, writer, clock
    writer.close()
    store.close()


def fill(writer: LedgerWriter, clock: Clock, days: int, per_day: int) -> None:
    ids = itertools.count()
    for _ in range(days):
        for _ in range(per_day):
            n = next(ids)
            writer.append_blocking(
                LedgerRecord(
                    id=f"{clock.now.date()}-{n}",
                    kind="decision",
                    customer_id=f"c-{n % 3}",
                    outputs={"eligible": [{"rule": "r", "offer": "o"}]},
                )
            )
        clock.now += timedelta(days=1)


def test_old_records_go_in_one_range_and_verify_still_passes(
    ledger: tuple[Path, SqliteLedgerStore, LedgerWriter, Clock],
) -> None:
    path, store, writer, clock = ledger
    fill(writer, clock, days=10, per_day=25)  # seqs 1..250, 25 per day
    result = apply_retention(path, writer, older_than=timedelta(days=4), now=clock.now, chunk=40)
    # now = day 10; records of days 0..5 are older than 4 days: seqs 1..150
    assert (result.first, result.through, result.deleted) == (1, 150, 150)
    assert result.checkpoint_seq == 251
    seqs = [seq for seq, _ in store.scan()]
    assert seqs == list(range(151, 252))
    checkpoint = decode(dict(store.scan(250))[251])
    assert checkpoint.kind == "checkpoint"
    assert checkpoint.data["deleted_through"] == 150
    report = verify(store)
    assert report.ok, report
    assert report.records == 101
    # the outcome index lost the deleted records too
    reader = LedgerReader(path)
    try:
        found = list(reader.iterate(LedgerQuery(outcome="offer:o")))
    finally:
        reader.close()
    assert min(r.seq for r in found) == 151


def test_running_again_continues_from_the_last_checkpoint(
    ledger: tuple[Path, SqliteLedgerStore, LedgerWriter, Clock],
) -> None:
    path, store, writer, clock = ledger
    fill(writer, clock, days=6, per_day=10)
    first = apply_retention(path, writer, older_than=timedelta(days=3), now=clock.now)
    fill(writer, clock, days=3, per_day=10)
    second = apply_retention(path, writer, older_than=timedelta(days=3), now=clock.now)
    assert first.through is not None and second.first == first.through + 1
    assert verify(store).ok
    nothing = apply_retention(path, writer, older_than=timedelta(days=3), now=clock.now)
    assert nothing.deleted == 0 and nothing.checkpoint_seq is None
    assert verify(store).ok


def test_unshipped_records_are_kept_whatever_their_age(
    ledger: tuple[Path, SqliteLedgerStore, LedgerWriter, Clock],
) -> None:
    path, store, writer, clock = ledger
    fill(writer, clock, days=5, per_day=10)
    result = apply_retention(
        path, writer, older_than=timedelta(days=1), now=clock.now, keep_from=21
    )
    assert (result.first, result.through) == (1, 20)
    assert next(iter(store.scan()))[0] == 21
    assert verify(store).ok


def test_a_deletion_without_a_checkpoint_is_reported(
    ledger: tuple[Path, SqliteLedgerStore, LedgerWriter, Clock],
) -> None:
    """Deleting old records behind the ledger's back is what verify must catch."""
    path, store, writer, clock = ledger
    fill(writer, clock, days=3, per_day=5)
    conn = __import__("sqlite3").connect(path)
    conn.execute("DELETE FROM ledger WHERE seq <= 5")
    conn.commit()
    conn.close()
    report = verify(store)
    assert not report.ok and report.broken_at == 6
    assert "no checkpoint accounts for records 1 to 5" in (report.reason or "")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"older_than": timedelta(0)}, "must be positive"),
        ({"older_than": timedelta(days=1), "chunk": 0}, "chunk must be at least 1"),
    ],
)
def test_bad_settings_are_refused(
    ledger: tuple[Path, SqliteLedgerStore, LedgerWriter, Clock],
    kwargs: dict[str, object],
    message: str,
) -> None:
    path, _, writer, clock = ledger
    with pytest.raises(ValueError, match=message):
        apply_retention(path, writer, now=clock.now, **kwargs)  # type: ignore[arg-type]

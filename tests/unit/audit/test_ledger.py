"""The ledger: group-committed appends, back-pressure, and a hash chain that detects tampering."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec
import pytest

from audit.record import GENESIS, LedgerRecord, RulesetRef, decode, digest, encode
from audit.sqlite import SqliteLedgerStore
from audit.verify import verify
from audit.writer import LedgerBusy, LedgerClosed, LedgerError, LedgerWriter


def decision(n: int, customer: str = "c-1") -> LedgerRecord:
    return LedgerRecord(
        id=f"d-{n}",
        kind="decision",
        customer_id=customer,
        agent_id="a-7",
        ruleset=RulesetRef(name="retention-desk", revision=3, digest="sha256:ab"),
        outputs={
            "eligible": [{"rule": "fee-waiver", "offer": "waive-fee"}],
            "escalation": {"rule": "vip", "queue": "retention"},
            "alerts": [],
        },
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteLedgerStore]:
    s = SqliteLedgerStore(tmp_path / "ledger.db")
    yield s
    s.close()


def test_appends_from_threads_and_tasks_form_one_verified_chain(
    store: SqliteLedgerStore,
) -> None:
    """Concurrent thread and asyncio appends get distinct seqs, in batches, and verify."""
    writer = LedgerWriter(store)
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(lambda n: writer.append_blocking(decision(n)), range(400)))

    async def many() -> list[LedgerRecord]:
        return await asyncio.gather(*(writer.append(decision(1000 + n)) for n in range(400)))

    awaited = asyncio.run(many())
    writer.close()
    seqs = sorted(r.seq for r in threaded + awaited)
    assert seqs == list(range(1, 801))
    assert writer.batches < 800  # group commit: fewer transactions than records
    report = verify(store)
    assert report.ok and report.records == 800 and report.head_seq == 800


def test_a_returned_append_is_already_durable(tmp_path: Path) -> None:
    """When append returns, another connection to the file already sees the record."""
    store = SqliteLedgerStore(tmp_path / "l.db")
    writer = LedgerWriter(store)
    sealed = writer.append_blocking(decision(1))
    other = sqlite3.connect(tmp_path / "l.db")
    body = other.execute("SELECT body FROM ledger WHERE seq = ?", (sealed.seq,)).fetchone()[0]
    assert decode(body) == sealed
    assert sealed.prev_hash == GENESIS and sealed.hash == digest(sealed)
    writer.close()
    store.close()


def test_the_chain_continues_across_restarts(tmp_path: Path) -> None:
    """A new writer on an existing ledger continues its seq and hash chain."""
    path = tmp_path / "l.db"
    for round_ in range(3):
        store = SqliteLedgerStore(path)
        writer = LedgerWriter(store)
        for n in range(10):
            writer.append_blocking(decision(round_ * 10 + n))
        writer.close()
        store.close()
    store = SqliteLedgerStore(path)
    assert verify(store).records == 30
    store.close()


class SlowStore:
    """The real SQLite store, slowed down: appends take ``delay`` seconds."""

    def __init__(self, inner: SqliteLedgerStore, delay: float) -> None:
        self.inner = inner
        self.instance = inner.instance
        self.delay = delay
        self.fail_next = False

    def head(self) -> tuple[int, str]:
        return self.inner.head()

    def append(self, batch: Sequence[tuple[LedgerRecord, bytes]]) -> None:
        time.sleep(self.delay)
        if self.fail_next:
            self.fail_next = False
            raise OSError("disk full")
        self.inner.append(batch)

    def scan(self, after_seq: int = 0, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
        return self.inner.scan(after_seq, limit)

    def close(self) -> None:
        self.inner.close()


def test_back_pressure_waits_then_refuses_instead_of_dropping(
    store: SqliteLedgerStore,
) -> None:
    """With the queue full, a caller waits up to wait_timeout, then gets LedgerBusy."""
    slow = SlowStore(store, delay=0.5)
    writer = LedgerWriter(slow, max_pending=2, max_batch=1, wait_timeout=0.1)
    accepted = [writer.submit(decision(n)) for n in range(3)]  # 1 committing + 2 queued
    started = time.monotonic()
    with pytest.raises(LedgerBusy):
        writer.submit(decision(99))
    assert 0.09 <= time.monotonic() - started < 0.4
    assert [f.result(5).seq for f in accepted] == [1, 2, 3]
    writer.close()
    assert verify(store).records == 3


def test_a_failed_commit_fails_its_callers_and_leaves_the_chain_intact(
    store: SqliteLedgerStore,
) -> None:
    """If the store fails, every caller of that batch gets LedgerError; later appends chain on."""
    flaky = SlowStore(store, delay=0)
    writer = LedgerWriter(flaky)
    writer.append_blocking(decision(1))
    flaky.fail_next = True
    with pytest.raises(LedgerError, match="disk full"):
        writer.append_blocking(decision(2))
    after = writer.append_blocking(decision(3))
    writer.close()
    assert after.seq == 2
    assert verify(store).ok


def test_close_drains_pending_records(store: SqliteLedgerStore) -> None:
    """Records queued before close() are all committed; appends after it are refused."""
    slow = SlowStore(store, delay=0.01)
    writer = LedgerWriter(slow, max_batch=5)
    futures = [writer.submit(decision(n)) for n in range(50)]
    writer.close()
    assert all(f.done() and f.exception() is None for f in futures)
    with pytest.raises(LedgerClosed):
        writer.submit(decision(51))
    assert verify(store).records == 50


def _ledger_with(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "t.db"
    store = SqliteLedgerStore(path)
    writer = LedgerWriter(store, max_batch=7)
    for i in range(n):
        writer.append_blocking(decision(i))
    writer.close()
    store.close()
    return path


def _tamper(path: Path, sql: str, *params: object) -> SqliteLedgerStore:
    conn = sqlite3.connect(path)
    conn.execute(sql, params)
    conn.commit()
    conn.close()
    return SqliteLedgerStore(path)


def test_verify_finds_a_flipped_byte(tmp_path: Path) -> None:
    """Changing one byte of a stored record breaks the chain at that record."""
    path = _ledger_with(tmp_path, 20)
    conn = sqlite3.connect(path)
    body = bytearray(conn.execute("SELECT body FROM ledger WHERE seq = 12").fetchone()[0])
    at = body.index(b"waive-fee")
    body[at] ^= 0x01
    conn.close()
    store = _tamper(path, "UPDATE ledger SET body = ? WHERE seq = 12", bytes(body))
    report = verify(store)
    assert (report.ok, report.broken_at, report.head_seq) == (False, 12, 11)
    assert "altered" in (report.reason or "")


def test_verify_finds_a_deleted_record(tmp_path: Path) -> None:
    """Deleting a record breaks the chain where it was."""
    store = _tamper(_ledger_with(tmp_path, 20), "DELETE FROM ledger WHERE seq = 7")
    report = verify(store)
    assert (report.ok, report.broken_at) == (False, 8)
    assert "records 7 to 7 are missing" in (report.reason or "")


def test_verify_finds_two_swapped_records(tmp_path: Path) -> None:
    """Swapping the contents of two records breaks the chain at the first of them."""
    path = _ledger_with(tmp_path, 20)
    conn = sqlite3.connect(path)
    a = conn.execute("SELECT body FROM ledger WHERE seq = 5").fetchone()[0]
    b = conn.execute("SELECT body FROM ledger WHERE seq = 6").fetchone()[0]
    conn.execute("UPDATE ledger SET body = ? WHERE seq = 5", (b,))
    conn.execute("UPDATE ledger SET body = ? WHERE seq = 6", (a,))
    conn.commit()
    conn.close()
    report = verify(SqliteLedgerStore(path))
    assert (report.ok, report.broken_at) == (False, 5)


def test_verify_finds_a_rewritten_chain_tail(tmp_path: Path) -> None:
    """Re-sealing an edited record (recomputing its hash) still breaks the next link."""
    path = _ledger_with(tmp_path, 10)
    conn = sqlite3.connect(path)
    record = decode(conn.execute("SELECT body FROM ledger WHERE seq = 4").fetchone()[0])
    edited = msgspec.structs.replace(record, customer_id="someone-else", hash="")
    edited = msgspec.structs.replace(edited, hash=digest(edited))
    conn.execute("UPDATE ledger SET body = ? WHERE seq = 4", (encode(edited),))
    conn.commit()
    conn.close()
    report = verify(SqliteLedgerStore(path))
    assert (report.ok, report.broken_at) == (False, 5)


def test_concurrent_writers_threads_do_not_interleave_batches(
    store: SqliteLedgerStore,
) -> None:
    """Many threads appending at once still produce a gap-free, verified chain."""
    writer = LedgerWriter(store, max_batch=16)
    barrier = threading.Barrier(16)

    def burst(k: int) -> None:
        barrier.wait()
        for n in range(50):
            writer.append_blocking(decision(k * 100 + n))

    threads = [threading.Thread(target=burst, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    report = verify(store)
    assert report.ok and report.records == 800

"""The LedgerStore contract, against SQLite and PostgreSQL (the real server on this machine)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from audit.postgres import PostgresLedgerStore
from audit.record import GENESIS, LedgerRecord, decode, seal
from audit.sqlite import SqliteLedgerStore
from audit.verify import verify
from audit.writer import LedgerWriter
from tests.support.postgres import URL

Store = SqliteLedgerStore | PostgresLedgerStore
MakeStore = Callable[..., Store]


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[type[object] | object]:
    opened: list[Store] = []

    def make(instance: str = "local") -> Store:
        store: Store
        if request.param == "sqlite":
            store = SqliteLedgerStore(tmp_path / "ledger.db", instance=instance)
        else:
            schema = request.getfixturevalue("pg_schema")
            store = PostgresLedgerStore(URL, instance=instance, schema=schema)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def sealed(n: int, prev: str = GENESIS, start: int = 1) -> list[tuple[LedgerRecord, bytes]]:
    out = []
    for seq in range(start, start + n):
        record = LedgerRecord(id=f"d-{seq}", kind="decision", customer_id=f"c-{seq % 3}")
        placed, body = seal(
            record,
            seq=seq,
            recorded_at="2026-11-22T10:00:00.000000Z",
            instance="local",
            prev_hash=prev,
        )
        prev = placed.hash
        out.append((placed, body))
    return out


def test_an_empty_chain_starts_at_genesis(make_store: MakeStore) -> None:
    assert make_store().head() == (0, GENESIS)


def test_append_then_scan_in_seq_order(make_store: MakeStore) -> None:
    store = make_store()
    batch = sealed(25)
    store.append(batch[:10])
    store.append(batch[10:])
    assert store.head() == (25, batch[-1][0].hash)
    scanned = list(store.scan())
    assert [seq for seq, _ in scanned] == list(range(1, 26))
    assert [decode(body) for _, body in scanned] == [r for r, _ in batch]
    assert [seq for seq, _ in store.scan(after_seq=20)] == [21, 22, 23, 24, 25]
    assert [seq for seq, _ in store.scan(after_seq=5, limit=3)] == [6, 7, 8]
    assert verify(store).ok


def test_a_failed_batch_leaves_nothing(make_store: MakeStore) -> None:
    store = make_store()
    batch = sealed(5)
    store.append(batch[:3])
    with pytest.raises(Exception):  # seq 3 again: the whole batch is refused
        store.append(batch[2:])
    assert store.head()[0] == 3
    assert [seq for seq, _ in store.scan()] == [1, 2, 3]


def test_instances_keep_separate_chains(make_store: MakeStore) -> None:
    a, b = make_store("a"), make_store("b")
    a.append(sealed(3))
    assert b.head() == (0, GENESIS)
    b.append(sealed(2))
    assert [s for s, _ in a.scan()] == [1, 2, 3] and [s for s, _ in b.scan()] == [1, 2]


def test_a_writer_over_the_store_makes_a_verified_chain(make_store: MakeStore) -> None:
    store = make_store()
    writer = LedgerWriter(store)
    threads = [
        threading.Thread(
            target=lambda n=n: [
                writer.append_blocking(LedgerRecord(id=f"w-{n}-{k}", kind="decision"))
                for k in range(25)
            ]
        )
        for n in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    report = verify(store)
    assert report.ok and report.records == 100

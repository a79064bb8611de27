"""The LedgerStore contract, against the segment log and PostgreSQL (the real server on this
machine)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from audit.postgres import PostgresLedgerStore
from audit.record import GENESIS, LedgerRecord, Sealed, decode, hash_text, leaf_hash, seal
from audit.segments import SegmentLog
from audit.writer import LedgerWriter
from tests.support.postgres import URL

Store = SegmentLog | PostgresLedgerStore
MakeStore = Callable[..., Store]


@pytest.fixture(params=["segments", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeStore]:
    """Opens stores of one kind over one storage: ``make(instance, reader=True)`` opens a
    second view of the same storage (a read-only log, another PostgreSQL connection)."""
    opened: list[Store] = []
    schema = request.getfixturevalue("pg_schema") if request.param == "postgres" else ""

    def make(instance: str = "local", *, reader: bool = False) -> Store:
        store: Store
        if request.param == "segments":
            store = SegmentLog(tmp_path, instance, readonly=reader)
        else:
            store = PostgresLedgerStore(URL, instance=instance, schema=schema)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def sealed(n: int, prev: str = GENESIS, start: int = 1, instance: str = "local") -> list[Sealed]:
    out = []
    for seq in range(start, start + n):
        record = LedgerRecord(id=f"d-{seq}", kind="decision", customer_id=f"c-{seq % 3}")
        placed = seal(
            record,
            seq=seq,
            recorded_at="2026-11-22T10:00:00.000000Z",
            instance=instance,
            prev_hash=prev,
        )
        prev = placed.record.hash
        out.append(placed)
    return out


class _Link(msgspec.Struct):
    seq: int
    instance: str
    prev_hash: str


def chain_problems(store: Store) -> list[str]:
    """The chain checked through the port alone: each record's bytes, seq, instance and
    prev_hash, as an auditor holding only ``scan`` would."""
    problems = []
    previous = (0, GENESIS)
    head_seq, head_hash = store.head()
    for seq, body in store.scan():
        link = msgspec.json.decode(body, type=_Link)
        if (link.seq, link.instance) != (seq, store.instance):
            problems.append(f"record {seq} says it is {link.seq} of {link.instance}")
        if seq != previous[0] + 1 or link.prev_hash != previous[1]:
            problems.append(f"record {seq} does not follow record {previous[0]}")
        previous = (seq, hash_text(leaf_hash(body)))
    if previous != (head_seq, head_hash):
        problems.append(f"the head {head_seq} is not the last record {previous[0]}")
    return problems


def test_an_empty_chain_starts_at_genesis(make_store: MakeStore) -> None:
    """A store with nothing in it reports seq 0 and the zero hash as its head."""
    store = make_store()
    assert store.head() == (0, GENESIS)
    assert list(store.scan()) == []


def test_append_then_scan_in_seq_order(make_store: MakeStore) -> None:
    """Batches come back in seq order, byte for byte, from any seq and up to any limit."""
    store = make_store()
    batch = sealed(25)
    store.append(batch[:10])
    store.append(batch[10:])
    assert store.head() == (25, batch[-1].record.hash)
    scanned = list(store.scan())
    assert [seq for seq, _ in scanned] == list(range(1, 26))
    assert [body for _, body in scanned] == [s.body for s in batch]
    assert [decode(body, s.record.hash) for (_, body), s in zip(scanned, batch, strict=True)] == [
        s.record for s in batch
    ]
    assert [seq for seq, _ in store.scan(after_seq=20)] == [21, 22, 23, 24, 25]
    assert [seq for seq, _ in store.scan(after_seq=5, limit=3)] == [6, 7, 8]
    assert list(store.scan(after_seq=25)) == []
    assert chain_problems(store) == []


def test_an_appended_batch_is_seen_by_another_view_at_once(make_store: MakeStore) -> None:
    """Once append returns, a second view of the same storage reads the batch and the head."""
    writer = make_store()
    batch = sealed(4)
    writer.append(batch)
    other = make_store(reader=True)
    assert other.head() == (4, batch[-1].record.hash)
    assert [body for _, body in other.scan()] == [s.body for s in batch]


def test_the_head_survives_closing_and_reopening(make_store: MakeStore) -> None:
    """A store opened again on the same storage continues from the head it left."""
    store = make_store()
    first = sealed(6)
    store.append(first)
    store.close()
    again = make_store()
    assert again.head() == (6, first[-1].record.hash)
    again.append(sealed(2, first[-1].record.hash, start=7))
    assert [seq for seq, _ in again.scan()] == list(range(1, 9))
    assert chain_problems(again) == []


def test_a_failed_batch_leaves_nothing(make_store: MakeStore) -> None:
    """A batch that cannot be stored whole is refused whole."""
    store = make_store()
    batch = sealed(5)
    store.append(batch[:3])
    with pytest.raises(Exception):  # seq 3 again: the whole batch is refused
        store.append(batch[2:])
    assert store.head() == (3, batch[2].record.hash)
    assert [seq for seq, _ in store.scan()] == [1, 2, 3]
    store.append(batch[3:])  # and the store goes on from its head
    assert store.head()[0] == 5 and chain_problems(store) == []


def test_instances_keep_separate_chains(make_store: MakeStore) -> None:
    """Two instances over one storage each have their own chain and head."""
    a, b = make_store("a"), make_store("b")
    a.append(sealed(3, instance="a"))
    assert b.head() == (0, GENESIS)
    b.append(sealed(2, instance="b"))
    assert [s for s, _ in a.scan()] == [1, 2, 3] and [s for s, _ in b.scan()] == [1, 2]
    assert chain_problems(a) == [] and chain_problems(b) == []


def test_a_writer_over_the_store_makes_a_verified_chain(make_store: MakeStore) -> None:
    """Concurrent appends through a LedgerWriter give one gap-free chain that checks out."""
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
    assert store.head()[0] == 100
    assert chain_problems(store) == []
    ids = {decode(body).id for _, body in store.scan()}
    assert ids == {f"w-{n}-{k}" for n in range(4) for k in range(25)}


def test_the_chain_check_finds_a_missing_record(make_store: MakeStore) -> None:
    """The port-level check used above fails when a record is skipped."""
    store = make_store()
    batch = sealed(3)
    store.append(batch[:1])
    skipped = seal(
        batch[2].record,
        seq=2,
        recorded_at=batch[2].record.recorded_at,
        instance="local",
        prev_hash=batch[1].record.hash,
    )
    store.append([skipped])
    assert chain_problems(store) == ["record 2 does not follow record 1"]

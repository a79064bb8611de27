"""The ledger: group-committed appends, back-pressure, and a hash chain that detects tampering."""

from __future__ import annotations

import asyncio
import hashlib
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec
import pytest

from audit.record import (
    GENESIS,
    ContextValue,
    LedgerRecord,
    RulesetRef,
    Sealed,
    decode,
    encode,
    hash_text,
    leaf_hash,
    seal,
)
from audit.segments import MAGIC, SegmentLog, segment_name
from audit.verify import verify
from audit.writer import LedgerBusy, LedgerClosed, LedgerError, LedgerWriter, Pending


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
        },
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SegmentLog]:
    s = SegmentLog(tmp_path, "local")
    yield s
    s.close()


def test_appends_from_threads_and_tasks_form_one_verified_chain(store: SegmentLog) -> None:
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
    assert writer.batches < 800  # group commit: fewer writes and syncs than records
    report = verify(store)
    assert report.ok and report.records == 800 and report.head_seq == 800


def test_a_returned_append_is_already_durable(tmp_path: Path, store: SegmentLog) -> None:
    """When append returns, the record's frame is in the segment file for any reader."""
    writer = LedgerWriter(store)
    sealed = writer.append_blocking(decision(1))
    data = (tmp_path / "local" / segment_name(1)).read_bytes()
    assert data.startswith(MAGIC)
    length, leaf = struct.unpack_from("<I32s", data, len(MAGIC))
    body = data[len(MAGIC) + 36 : len(MAGIC) + 36 + length]
    assert decode(body, hash_text(leaf)) == sealed
    assert sealed.prev_hash == GENESIS and sealed.hash == hash_text(leaf_hash(body))
    reader = SegmentLog(tmp_path, "local", readonly=True)
    assert reader.head() == (1, sealed.hash)
    reader.close()
    writer.close()


def test_a_record_is_encoded_once_and_hashed_as_an_rfc6962_leaf() -> None:
    """The stored bytes are the record without its hash; hash = sha256(0x00 || bytes)."""
    sealed = seal(
        decision(1),
        seq=7,
        recorded_at="2026-11-22T10:00:00.000000Z",
        instance="fl-a-0",
        prev_hash=GENESIS,
    )
    assert sealed.body == encode(sealed.record)
    assert sealed.leaf == hashlib.sha256(b"\x00" + sealed.body).digest()
    assert sealed.record.hash == "sha256:" + sealed.leaf.hex()
    assert b'"hash"' not in sealed.body
    assert sealed.body.startswith(b'{"id":"d-1","kind":"decision","seq":7,"recorded_at":')
    assert b'"prev_hash":"' + GENESIS.encode() + b'"' in sealed.body
    assert b"null" not in sealed.body and b"[]" not in sealed.body  # nothing that is empty
    assert decode(sealed.body, sealed.record.hash) == sealed.record


def test_context_values_are_stored_as_arrays() -> None:
    """A context value is stored as [value, source, age_ms], not an object, and decodes back."""
    record = LedgerRecord(
        id="d",
        kind="decision",
        context={
            "customer.tier": ContextValue("gold", "crm", 300_000),
            "customer.vip": ContextValue(False, None, 12),
        },
    )
    body = encode(record)
    assert b'"context":{"customer.tier":["gold","crm",300000],"customer.vip":[false,null,12]}' in (
        body
    )
    assert decode(body) == record


def test_a_context_value_without_source_or_age_is_stored_with_nulls_in_their_places() -> None:
    """A value sent with the request, with no source or age, is stored as [value,null,null]."""
    record = LedgerRecord(id="d", kind="decision", context={"answers.reason": ContextValue("x")})
    assert b'"context":{"answers.reason":["x",null,null]}' in encode(record)


def test_fired_rules_are_read_from_the_outputs_not_stored() -> None:
    """record.fired lists eligibility, escalation and alert rules from outputs only."""
    record = LedgerRecord(
        id="d",
        kind="decision",
        outputs={
            "eligible": [{"rule": "fee-waiver", "offer": "waive-fee", "because": "loyal"}],
            "escalation": {"rule": "vip", "queue": "retention"},
            "alerts": [{"rule": "churn", "severity": "info", "message": "m"}],
        },
    )
    assert [(f.section, f.rule, f.because) for f in record.fired] == [
        ("eligibility", "fee-waiver", "loyal"),
        ("escalation", "vip", None),
        ("alerts", "churn", None),
    ]
    assert b"fired" not in encode(record)
    assert LedgerRecord(id="e", kind="decision").fired == []


def test_the_chain_continues_across_restarts(tmp_path: Path) -> None:
    """A new writer on an existing log continues its seq and hash chain."""
    for round_ in range(3):
        store = SegmentLog(tmp_path, "local")
        writer = LedgerWriter(store)
        for n in range(10):
            writer.append_blocking(decision(round_ * 10 + n))
        writer.close()
        store.close()
    store = SegmentLog(tmp_path, "local")
    report = verify(store)
    assert report.ok and report.records == 30
    assert [decode(body).id for _, body in store.scan()] == [f"d-{n}" for n in range(30)]
    store.close()


def test_every_commit_tells_the_listeners_the_head(store: SegmentLog) -> None:
    """on_commit listeners hear the head seq after each committed batch, in order."""
    writer = LedgerWriter(store, max_batch=3)
    heads: list[int] = []
    writer.on_commit(heads.append)
    pending = [writer.submit(decision(n)) for n in range(10)]
    writer.close()
    assert [p.result(5).seq for p in pending] == list(range(1, 11))
    assert heads == sorted(heads) and heads[-1] == 10
    assert len(heads) == writer.batches >= 4  # at most 3 records a batch
    assert writer.head == store.head() and writer.store is store


def test_pending_resolves_once_durable_and_calls_back(store: SegmentLog) -> None:
    """submit() returns a Pending: result waits, done/exception report, callbacks run once."""
    slow = SlowStore(store, delay=0.2)
    writer = LedgerWriter(slow)
    called: list[Pending] = []
    pending = writer.submit(decision(1))
    pending.add_done_callback(called.append)
    assert not pending.done()
    with pytest.raises(TimeoutError):
        pending.result(0.01)
    assert pending.result(5).seq == 1
    assert pending.done() and pending.exception() is None and called == [pending]
    late: list[Pending] = []
    pending.add_done_callback(late.append)  # already settled: called at once
    assert late == [pending]
    slow.fail_next = True
    failed = writer.submit(decision(2))
    assert isinstance(failed.exception(5), LedgerError)
    writer.close()


class SlowStore:
    """The real segment log, slowed down: appends take ``delay`` seconds."""

    def __init__(self, inner: SegmentLog, delay: float) -> None:
        self.inner = inner
        self.instance = inner.instance
        self.delay = delay
        self.fail_next = False

    def head(self) -> tuple[int, str]:
        return self.inner.head()

    def append(self, batch: Sequence[Sealed]) -> None:
        time.sleep(self.delay)
        if self.fail_next:
            self.fail_next = False
            raise OSError("disk full")
        self.inner.append(batch)

    def scan(self, after_seq: int = 0, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
        return self.inner.scan(after_seq, limit)

    def close(self) -> None:
        self.inner.close()


def test_back_pressure_waits_then_refuses_instead_of_dropping(store: SegmentLog) -> None:
    """With the queue full, a caller waits up to wait_timeout, then gets LedgerBusy."""
    slow = SlowStore(store, delay=0.5)
    writer = LedgerWriter(slow, max_pending=2, max_batch=1, wait_timeout=0.1)
    accepted = [writer.submit(decision(n)) for n in range(3)]  # 1 committing + 2 queued
    started = time.monotonic()
    with pytest.raises(LedgerBusy):
        writer.submit(decision(99))
    assert 0.09 <= time.monotonic() - started < 0.4
    with pytest.raises(LedgerBusy):
        writer.submit_nowait(decision(98))
    assert [f.result(5).seq for f in accepted] == [1, 2, 3]
    writer.close()
    assert verify(store).records == 3


def test_a_failed_commit_fails_its_callers_and_leaves_the_chain_intact(
    store: SegmentLog,
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
    assert [decode(body).id for _, body in store.scan()] == ["d-1", "d-3"]
    assert verify(store).ok


def test_close_drains_pending_records(store: SegmentLog) -> None:
    """Records queued before close() are all committed; appends after it are refused."""
    slow = SlowStore(store, delay=0.01)
    writer = LedgerWriter(slow, max_batch=5)
    futures = [writer.submit(decision(n)) for n in range(50)]
    writer.close()
    assert all(f.done() and f.exception() is None for f in futures)
    with pytest.raises(LedgerClosed):
        writer.submit(decision(51))
    assert verify(store).records == 50


# -- tampering -----------------------------------------------------------------------------


def _ledger_with(tmp_path: Path, n: int, segment_bytes: int = 1 << 20) -> Path:
    """A log of ``n`` records (batches of at most 7); returns its first segment file."""
    store = SegmentLog(tmp_path, "local", segment_bytes=segment_bytes, durable=False)
    writer = LedgerWriter(store, max_batch=7)
    for i in range(n):
        writer.append_blocking(decision(i))
    writer.close()
    store.close()
    return tmp_path / "local" / segment_name(1)


def _frames(path: Path) -> list[tuple[bytes, bytes]]:
    """(leaf, body) of each frame of a segment file, read by hand."""
    data = path.read_bytes()
    out, at = [], len(MAGIC)
    while at < len(data):
        length, leaf = struct.unpack_from("<I32s", data, at)
        out.append((leaf, data[at + 36 : at + 36 + length]))
        at += 36 + length
    return out


def _rewrite(path: Path, frames: list[tuple[bytes, bytes]]) -> None:
    path.write_bytes(
        MAGIC + b"".join(struct.pack("<I32s", len(body), leaf) + body for leaf, body in frames)
    )


def _verify(tmp_path: Path) -> tuple[bool, int | None, int, str]:
    log = SegmentLog(tmp_path, "local", readonly=True)
    try:
        report = verify(log)
    finally:
        log.close()
    return report.ok, report.broken_at, report.head_seq, report.reason or ""


def test_verify_finds_a_flipped_byte(tmp_path: Path) -> None:
    """Changing one byte of a stored record breaks the chain at that record."""
    path = _ledger_with(tmp_path, 20)
    frames = _frames(path)
    leaf, body = frames[11]
    changed = bytearray(body)
    changed[body.index(b"waive-fee")] ^= 0x01
    frames[11] = (leaf, bytes(changed))
    _rewrite(path, frames)
    ok, broken_at, head_seq, reason = _verify(tmp_path)
    assert (ok, broken_at, head_seq) == (False, 12, 11)
    assert "record 12 in 00000000000000000001.seg at byte" in reason
    assert "its bytes do not match its hash" in reason


def test_verify_finds_a_deleted_record(tmp_path: Path) -> None:
    """Deleting a record breaks the chain where it was: the next one is out of place."""
    path = _ledger_with(tmp_path, 20)
    frames = _frames(path)
    del frames[6]
    _rewrite(path, frames)
    ok, broken_at, _, reason = _verify(tmp_path)
    assert (ok, broken_at) == (False, 7)
    assert reason == "record stored at 7 says it is record 8"


def test_verify_finds_a_deleted_segment(tmp_path: Path) -> None:
    """Deleting a whole segment in the middle is reported as the records no segment holds."""
    _ledger_with(tmp_path, 40, segment_bytes=1500)
    segments = SegmentLog(tmp_path, "local", readonly=True).segments()
    assert len(segments) >= 3
    (tmp_path / "local" / segment_name(segments[1])).unlink()
    ok, broken_at, head_seq, reason = _verify(tmp_path)
    assert (ok, broken_at, head_seq) == (False, segments[1], segments[1] - 1)
    assert reason == (
        f"records {segments[1]} to {segments[2] - 1} are missing (no segment holds them)"
    )


def test_verify_finds_two_swapped_records(tmp_path: Path) -> None:
    """Swapping two records, each with its own hash, breaks the chain at the first of them."""
    path = _ledger_with(tmp_path, 20)
    frames = _frames(path)
    frames[4], frames[5] = frames[5], frames[4]
    _rewrite(path, frames)
    ok, broken_at, _, reason = _verify(tmp_path)
    assert (ok, broken_at) == (False, 5)
    assert reason == "record stored at 5 says it is record 6"


def test_verify_finds_a_rewritten_chain_tail(tmp_path: Path) -> None:
    """Re-sealing an edited record (a new hash in its frame) still breaks the next link."""
    path = _ledger_with(tmp_path, 10)
    frames = _frames(path)
    record = decode(frames[3][1])
    edited = encode(msgspec.structs.replace(record, customer_id="someone-else"))
    frames[3] = (leaf_hash(edited), edited)
    _rewrite(path, frames)
    ok, broken_at, _, reason = _verify(tmp_path)
    assert (ok, broken_at) == (False, 5)
    assert "record 5 does not follow record 4" in reason


def test_verify_finds_a_record_of_another_instance(tmp_path: Path) -> None:
    """A record sealed for another instance's chain is refused in this one."""
    path = _ledger_with(tmp_path, 5)
    frames = _frames(path)
    record = decode(frames[4][1])
    moved = encode(msgspec.structs.replace(record, instance="elsewhere"))
    frames[4] = (leaf_hash(moved), moved)
    _rewrite(path, frames)
    ok, broken_at, _, reason = _verify(tmp_path)
    assert (ok, broken_at) == (False, 5)
    assert reason == "record 5 belongs to instance 'elsewhere', not 'local'"


def test_concurrent_writers_threads_do_not_interleave_batches(store: SegmentLog) -> None:
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

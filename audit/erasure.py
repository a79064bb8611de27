"""Erasure: a customer's records lose their bodies, and every proof still holds.

A right-to-erasure request cannot be met by deleting records from a hash-chained, signed log:
the chain and every tree head after them would break. Instead each record's bytes are
overwritten, in place, by a tombstone of the same length,

    {"id":"<its id>","kind":"erased","seq":N,"recorded_at":"…","instance":"…",
     "prev_hash":"…","data":{"erasure":"<the erasure record's id>"}}   (then spaces)

while the frame keeps the record's leaf hash. The Merkle tree, every signed tree head and every
other record's proof are unchanged (they are made of leaf hashes), the next record still names
the erased one's hash as its ``prev_hash``, and the erased record shows as erased, never as
missing or damaged. What the record said — the customer, the context, the outputs — is gone
from the segments, the index (its rows are replaced and the file vacuumed) and PostgreSQL.

The erasure is recorded first, as an ``erasure`` record listing every record it covers (by
instance and seq, with the keyed mask of the customer id, never the id itself), so a crash
part way leaves an erasure that running it again completes, and ``verify`` can tell an erased
record from one an intruder blanked: every tombstone must be listed by an erasure record.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from audit.index import INDEX_FILE, LedgerIndex
from audit.record import LedgerRecord, decode
from audit.segments import HEADER, Frame, SegmentLog, instances, segment_name
from audit.writer import LedgerWriter

TOMBSTONE_KIND = "erased"
_ENCODER = msgspec.json.Encoder()


class _Customer(msgspec.Struct):
    customer_id: str | None = None
    kind: str = ""


_CUSTOMER = msgspec.json.Decoder(_Customer)


@dataclass(frozen=True)
class ErasureResult:
    """What an erasure removed: the erasure record's id and the records it covers."""

    erasure_id: str
    records: list[tuple[str, int]]  # (instance, seq)


def tombstone(record: LedgerRecord, erasure_id: str, length: int) -> bytes:
    """The bytes that take the place of ``record``'s ``length`` bytes: what locates it in its
    chain and the erasure that blanked it, padded with spaces."""
    blank = LedgerRecord(
        id=record.id,
        kind="erased",
        seq=record.seq,
        recorded_at=record.recorded_at,
        instance=record.instance,
        prev_hash=record.prev_hash,
        data={"erasure": erasure_id},
    )
    body = _ENCODER.encode(blank)
    if len(body) > length:  # a record shorter than its own tombstone: keep what places it
        body = _ENCODER.encode(
            LedgerRecord(id="", kind="erased", seq=record.seq, data={"erasure": erasure_id})
        )
    return body.ljust(length, b" ")[:length]


def find_customer(ledger_dir: Path, customer_id: str) -> list[Frame]:
    """Every stored frame, of every instance, of a record about ``customer_id`` that is not
    erased yet (read from the segments, the truth)."""
    found = []
    needle = customer_id.encode()
    for name in instances(ledger_dir):
        log = SegmentLog(ledger_dir, name, readonly=True)
        try:
            for frame in log.frames():
                if needle not in frame.body:
                    continue
                fields = _CUSTOMER.decode(frame.body)
                if fields.customer_id == customer_id and fields.kind != TOMBSTONE_KIND:
                    found.append(frame)
        finally:
            log.close()
    return found


def erase_customer(
    ledger_dir: Path,
    writer: LedgerWriter,
    customer_id: str,
    *,
    reason: str,
    masked_customer: str,
    actor: object = None,
    shipped: Callable[[], object] | None = None,
) -> ErasureResult:
    """Erase every record about ``customer_id``: record the erasure, blank the records in the
    segments, replace their index rows and, given ``shipped`` (a PostgresLedgerStore
    factory), their shipped copies. Blocking: run it in a worker thread."""
    frames = find_customer(ledger_dir, customer_id)
    erasure_id = f"erasure-{uuid.uuid4()}"
    listed = sorted((decode(f.body).instance, f.seq) for f in frames)
    writer.append_blocking(
        LedgerRecord(
            id=erasure_id,
            kind="erasure",
            actor=actor,  # type: ignore[arg-type]
            data={"reason": reason, "customer": masked_customer, "records": listed},
        )
    )
    by_instance: dict[str, list[tuple[Frame, bytes]]] = {}
    for frame in frames:
        record = decode(frame.body)
        blank = tombstone(record, erasure_id, len(frame.body))
        by_instance.setdefault(record.instance, []).append((frame, blank))
    for name, items in by_instance.items():
        _overwrite(ledger_dir / name, items)
    if (ledger_dir / INDEX_FILE).exists():
        _reindex(ledger_dir, by_instance)
    if shipped is not None and frames:
        _ship(shipped, by_instance)
    return ErasureResult(erasure_id, listed)


def _overwrite(directory: Path, items: list[tuple[Frame, bytes]]) -> None:
    """Write each tombstone over its record's bytes, in place, and sync each file."""
    by_segment: dict[int, list[tuple[Frame, bytes]]] = {}
    for frame, blank in items:
        by_segment.setdefault(frame.segment, []).append((frame, blank))
    for segment, frames in by_segment.items():
        fd = os.open(directory / segment_name(segment), os.O_WRONLY)
        try:
            for frame, blank in frames:
                os.pwrite(fd, blank, frame.offset + HEADER.size)
            os.fsync(fd)
        finally:
            os.close(fd)


def _reindex(ledger_dir: Path, by_instance: dict[str, list[tuple[Frame, bytes]]]) -> None:
    """Give each blanked record the index row of its tombstone, once the indexer has passed
    it (a batch it read before the overwrite would otherwise bring the old row back), and
    vacuum the file so no page keeps the old rows."""
    index = LedgerIndex(ledger_dir)
    try:
        for name, items in by_instance.items():
            last = max(frame.seq for frame, _ in items)
            deadline = time.monotonic() + 30
            while index.watermark(name).seq < last and time.monotonic() < deadline:
                time.sleep(0.05)
            index.replace_rows(
                name,
                [
                    Frame(frame.seq, frame.segment, frame.offset, blank, frame.leaf)
                    for frame, blank in items
                ],
            )
        index.vacuum()
    finally:
        index.close()


def _ship(shipped: Callable[[], object], by_instance: dict[str, list[tuple[Frame, bytes]]]) -> None:
    target = shipped()
    try:
        for name, items in by_instance.items():
            target.erase(  # type: ignore[attr-defined]
                name, [(frame.seq, blank) for frame, blank in items]
            )
    finally:
        target.close()  # type: ignore[attr-defined]

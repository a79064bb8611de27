"""Walk the hash chain and report the first broken link.

A record is intact when its stored bytes decode to a LedgerRecord, its ``hash`` is the digest
of its contents, its ``seq`` follows the previous one and its ``prev_hash`` is the previous
record's ``hash``. Retention deletes whole ranges from the start and appends a checkpoint
record naming the last deleted ``seq`` and its hash, so the walk can start after a deletion.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from audit.ports import LedgerStore
from audit.record import GENESIS, decode, digest


@dataclass(frozen=True)
class VerifyReport:
    """The result of a chain walk. ``broken_at`` is the first ``seq`` that fails, if any."""

    ok: bool
    records: int
    head_seq: int
    head_hash: str
    broken_at: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "records": self.records,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "broken_at": self.broken_at,
            "reason": self.reason,
        }


def _anchors(store: LedgerStore) -> dict[int, str]:
    """``{last deleted seq: its hash}`` from every intact checkpoint record."""
    anchors = {}
    for _, body in store.scan():
        try:
            record = decode(body)
        except msgspec.DecodeError:
            continue
        if record.kind == "checkpoint" and digest(record) == record.hash:
            through = record.data.get("deleted_through")
            anchor = record.data.get("anchor_hash")
            if isinstance(through, int) and isinstance(anchor, str):
                anchors[through] = anchor
    return anchors


def verify(
    store: LedgerStore, progress: Callable[[int], None] | None = None, every: int = 100_000
) -> VerifyReport:
    """Check every record of ``store`` in ``seq`` order; stop at the first broken link.

    ``progress`` is called with the number of records checked so far, every ``every`` records.
    """
    anchors: dict[int, str] | None = None
    previous_seq, previous_hash = 0, GENESIS
    count = 0

    def broken(seq: int, reason: str) -> VerifyReport:
        return VerifyReport(False, count, previous_seq, previous_hash, seq, reason)

    for seq, body in store.scan():
        try:
            record = decode(body)
        except msgspec.DecodeError as exc:
            return broken(seq, f"record {seq} is not a readable ledger record ({exc})")
        if record.seq != seq:
            return broken(seq, f"record stored at {seq} says it is record {record.seq}")
        if digest(record) != record.hash:
            return broken(seq, f"record {seq} was altered: its hash does not match its contents")
        if count == 0 and seq != 1:
            anchors = _anchors(store) if anchors is None else anchors
            if anchors.get(seq - 1) != record.prev_hash:
                return broken(
                    seq,
                    f"the ledger starts at record {seq}, and no checkpoint "
                    f"accounts for records 1 to {seq - 1}",
                )
        elif seq != previous_seq + 1:
            return broken(seq, f"records {previous_seq + 1} to {seq - 1} are missing")
        elif record.prev_hash != previous_hash:
            return broken(
                seq,
                f"record {seq} does not follow record {previous_seq}: a record "
                "was removed, replaced or reordered",
            )
        previous_seq, previous_hash = seq, record.hash
        count += 1
        if progress is not None and count % every == 0:
            progress(count)
    return VerifyReport(True, count, previous_seq, previous_hash)


@dataclass(frozen=True)
class LedgerReport:
    """``verify`` of every instance's chain in one ledger file."""

    instances: dict[str, VerifyReport]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.instances.values())

    @property
    def records(self) -> int:
        return sum(r.records for r in self.instances.values())

    def to_dict(self) -> dict[str, object]:
        broken = next(((name, r) for name, r in self.instances.items() if not r.ok), (None, None))
        return {
            "ok": self.ok,
            "records": self.records,
            "broken_instance": broken[0],
            "broken_at": broken[1].broken_at if broken[1] else None,
            "reason": broken[1].reason if broken[1] else None,
            "instances": {name: r.to_dict() for name, r in self.instances.items()},
        }


def verify_ledger(path: Path | str, progress: Callable[[int], None] | None = None) -> LedgerReport:
    """Verify every instance's chain in the SQLite ledger at ``path``."""
    from audit.sqlite import SqliteLedgerStore, instances

    reports = {}
    checked = 0
    for name in instances(path):
        store = SqliteLedgerStore(path, instance=name)

        def step(n: int, base: int = checked) -> None:
            if progress is not None:
                progress(base + n)

        try:
            report = verify(store, progress=step)
        finally:
            store.close()
        checked += report.records
        reports[name] = report
    return LedgerReport(reports)

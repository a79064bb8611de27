"""Verification: walk each instance's chain through its segments, and check the index
against them.

A record is intact when its frame's hash is the leaf hash of its bytes, the bytes decode to
a LedgerRecord of this instance, its ``seq`` is its place in the log, and its ``prev_hash``
is the previous record's hash. Retention removes whole segments from the start and first
appends a checkpoint record naming the last removed ``seq`` and its hash, so a chain may
start after a removal that a checkpoint accounts for.

The index must say what the segments say: every indexed record has exactly one row whose
columns equal the record's own fields and whose position points at its frame, its outcome
rows are those of its outputs, and no row points past the log. A tampered or stale index
is reported here and repaired by ``frontline audit reindex``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from audit.index import INDEX_FILE, Entry, LedgerIndex, entry
from audit.merkle import Frontier
from audit.proofs import read_pruned
from audit.record import GENESIS, LedgerRecord, hash_text
from audit.segments import HEADER, Frame, LogError, SegmentLog, instances, segment_name, walk
from audit.signing import parse_public_key, tree_head_problem

MAX_INDEX_PROBLEMS = 20


class _Link(msgspec.Struct):
    """What the chain walk reads of a record (the index check reads its own fields)."""

    seq: int
    kind: str
    instance: str = ""
    prev_hash: str = ""
    data: dict[str, object] = {}


_LINK = msgspec.json.Decoder(_Link)
_RECORD = msgspec.json.Decoder(LedgerRecord)


@dataclass(frozen=True)
class VerifyReport:
    """The result of a chain walk. ``broken_at`` is the first ``seq`` that fails, if any;
    ``index_problems`` lists where the index disagrees with the segments."""

    ok: bool
    records: int
    head_seq: int
    head_hash: str
    broken_at: int | None = None
    reason: str | None = None
    indexed: int = 0
    index_problems: list[str] = field(default_factory=list)
    # Erased records no erasure record of this log lists (another instance's may), and the
    # records of other instances this log's erasure records list.
    unlisted: list[int] = field(default_factory=list)
    lists: frozenset[tuple[str, int]] = frozenset()

    @property
    def index_ok(self) -> bool:
        return not self.index_problems

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "records": self.records,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "broken_at": self.broken_at,
            "reason": self.reason,
            "index": {
                "ok": self.index_ok,
                "indexed": self.indexed,
                "problems": self.index_problems,
            },
        }


def _frames_checked(log: SegmentLog, live: bool) -> Iterator[Frame | tuple[int, str]]:
    """Every frame of ``log`` in order; a ``(seq, reason)`` where the bytes are not intact.

    With ``live`` (a writer may be appending), an incomplete frame at the very end of the
    last segment is a write in progress, not damage.
    """
    segments = log.segments()
    expected = segments[0] if segments else 1
    for k, first in enumerate(segments):
        if first != expected and k:
            yield expected, f"records {expected} to {first - 1} are missing (no segment holds them)"
            return
        path = log.directory / segment_name(first)
        last_seq = first - 1
        for item in walk(path, first):
            if isinstance(item, Frame):
                last_seq = item.seq
                yield item
                continue
            size = path.stat().st_size
            if item == 0:
                yield first, f"{path.name} does not start as a ledger segment"
                return
            incomplete = item + HEADER.size > size
            if not incomplete:
                length, _ = HEADER.unpack_from(path.read_bytes(), item)
                incomplete = item + HEADER.size + length > size
            if live and incomplete and k == len(segments) - 1:
                return
            yield (
                last_seq + 1,
                f"record {last_seq + 1} in {path.name} at byte {item} is damaged: its bytes "
                "do not match its hash, or its frame is cut short",
            )
            return
        expected = last_seq + 1


def _anchors(log: SegmentLog) -> dict[int, tuple[str, int]]:
    """``{last removed seq: (its hash, the checkpoint's seq)}`` from every intact checkpoint
    record before the first damaged one (the walk of the chain reports the damage)."""
    anchors = {}
    with contextlib.suppress(LogError):
        for frame in log.frames():
            try:
                link = _LINK.decode(frame.body)
            except msgspec.DecodeError:
                continue
            if link.kind == "checkpoint":
                through = link.data.get("deleted_through")
                anchor = link.data.get("anchor_hash")
                if isinstance(through, int) and isinstance(anchor, str):
                    anchors[through] = (anchor, frame.seq)
    return anchors


def verify(  # noqa: PLR0912 -- the checks in the order the report gives them
    log: SegmentLog,
    index: LedgerIndex | None = None,
    progress: Callable[[int], None] | None = None,
    every: int = 100_000,
    live: bool = True,
    public_key: str | None = None,
    others: bool = False,
) -> VerifyReport:
    """Check every record of ``log`` in ``seq`` order, stopping at the first broken link,
    and (given ``index``) check that the index agrees with every record up to its mark.

    Each signed tree head must give the Merkle root of the records before it, signed by
    ``public_key`` (the key an auditor pinned; without one, by the key the head names,
    which catches a changed log but not a head forged with another key). A log whose start
    retention removed begins with the leaf hashes it kept; if none were kept (retention by an
    earlier version), the tree cannot be rebuilt and its heads are not checked.

    An erased record must be listed by an erasure record; with ``others`` (other instances'
    logs will be read too) those this log does not list are left in ``unlisted`` for the
    caller to look up in theirs.

    ``progress`` is called with the number of records checked so far, every ``every``.
    """
    previous_seq, previous_hash = 0, GENESIS
    count = 0
    tree: Frontier | None = Frontier()
    erased: list[int] = []  # records whose bytes are an erasure's tombstone
    covered: set[tuple[str, int]] = set()  # records an erasure record lists
    pinned = parse_public_key(public_key) if public_key else None
    checker = _IndexCheck(index, log.instance) if index is not None else None

    def report(seq: int | None = None, reason: str | None = None) -> VerifyReport:
        problems = checker.finish(previous_seq) if checker is not None else []
        indexed = checker.indexed if checker is not None else 0
        return VerifyReport(
            reason is None and not problems,
            count,
            previous_seq,
            previous_hash,
            seq,
            reason,
            indexed,
            problems,
        )

    for item in _frames_checked(log, live):
        if not isinstance(item, Frame):
            return report(*item)
        seq, body = item.seq, item.body
        try:
            link = _LINK.decode(body)
            _RECORD.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return report(seq, f"record {seq} is not a readable ledger record ({exc})")
        if link.seq != seq:
            return report(seq, f"record stored at {seq} says it is record {link.seq}")
        if link.instance != log.instance:
            return report(
                seq, f"record {seq} belongs to instance {link.instance!r}, not {log.instance!r}"
            )
        if count == 0 and seq != 1:
            kept = read_pruned(log.directory, seq - 1)  # what retention kept of the removed
            tree = None if kept is None else Frontier()
            if tree is not None:
                for leaf in kept or ():
                    tree.append(leaf)
            anchor, removed_by = _anchors(log).get(seq - 1, (None, 0))
            if checker is not None:
                checker.removed_by = removed_by
            if anchor != link.prev_hash:
                return report(
                    seq,
                    f"the ledger starts at record {seq}, and no checkpoint accounts for "
                    f"records 1 to {seq - 1}",
                )
        elif count and link.prev_hash != previous_hash:
            return report(
                seq,
                f"record {seq} does not follow record {previous_seq}: a record was removed, "
                "replaced or reordered",
            )
        elif count == 0 and link.prev_hash != GENESIS:
            return report(seq, "record 1 does not start a chain (its prev_hash is not zero)")
        if link.kind == "erased":
            erased.append(seq)
        elif link.kind == "erasure":
            for instance, listed in link.data.get("records") or ():  # type: ignore[attr-defined]
                covered.add((instance, listed))
        if tree is not None:
            if link.kind == "tree_head":
                problem = tree_head_problem(_RECORD.decode(body).data, tree, public_key, pinned)
                if problem is not None:
                    return report(seq, f"the tree head at record {seq} {problem}")
            tree.append(item.leaf)
        if checker is not None:
            checker.record(item)
        previous_seq, previous_hash = seq, hash_text(item.leaf)
        count += 1
        if progress is not None and count % every == 0:
            progress(count)
    blanked = [seq for seq in erased if (log.instance, seq) not in covered]
    if blanked and not others:
        return report(blanked[0], _unlisted(blanked[0]))
    return dataclasses.replace(report(), unlisted=blanked, lists=frozenset(covered))


def _unlisted(seq: int) -> str:
    return f"record {seq} was blanked as erased, but no erasure record lists it"


class _IndexCheck:
    """Walks an instance's index rows beside its frames (both in seq order)."""

    def __init__(self, index: LedgerIndex, name: str) -> None:
        self.mark = index.watermark(name).seq
        self.rows = index.rows(name)
        self.outcomes = itertools.groupby(index.outcome_rows(name), key=lambda r: r[0])
        self.indexed = 0
        self.problems: list[str] = []
        self._row = next(self.rows, None)
        self._outcome = next(self.outcomes, None)
        self._first: int | None = None
        # The seq of the checkpoint that removed the records before the first one kept: the
        # indexer drops their rows when it reaches it, so rows left before then are not wrong.
        self.removed_by = 0

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_INDEX_PROBLEMS:
            self.problems.append(text)

    def record(self, frame: Frame) -> None:
        seq = frame.seq
        if self._first is None:
            self._first = seq
            self._skip_before(seq)
        if seq > self.mark:
            return
        self.indexed += 1
        want = entry(frame)
        row = self._row
        while row is not None and row[0] < seq:  # rows of seqs the log does not hold
            self.problem(f"index row for record {row[0]} points at a record that is not there")
            row = self._row = next(self.rows, None)
        if row is None or row[0] != seq:
            self.problem(f"record {seq} is missing from the index: queries would not find it")
        else:
            _, ts, rid, kind, customer, agent, ruleset, revision, segment, offset = row
            got = Entry(
                seq,
                ts,
                rid,
                kind,
                customer,
                agent,
                ruleset,
                revision,
                segment,
                offset,
                want.outcomes,
            )
            if got != want:
                self.problem(
                    f"index row for record {seq} differs from the record: {_diff(got, want)}"
                )
            self._row = next(self.rows, None)
        outcomes: frozenset[tuple[str, str]] = frozenset()
        ts_ok = True
        while self._outcome is not None and self._outcome[0] < seq:
            self.problem(f"index has outcomes for record {self._outcome[0]}, which is not there")
            self._outcome = next(self.outcomes, None)
        if self._outcome is not None and self._outcome[0] == seq:
            rows = list(self._outcome[1])
            outcomes = frozenset((facet, value) for _, facet, value, _ in rows)
            ts_ok = all(ts == want.ts for *_, ts in rows)
            self._outcome = next(self.outcomes, None)
        if outcomes != want.outcomes or not ts_ok:
            self.problem(
                f"index outcomes for record {seq} differ from the record: "
                f"index {sorted(outcomes)}, record {sorted(want.outcomes)}"
            )

    def _skip_before(self, first: int) -> None:
        stale = self.mark >= self.removed_by  # the indexer has passed the removal
        while self._row is not None and self._row[0] < first:
            if stale:
                self.problem(f"index row for record {self._row[0]} points at a removed record")
            self._row = next(self.rows, None)
        while self._outcome is not None and self._outcome[0] < first:
            if stale:
                self.problem(f"index has outcomes for record {self._outcome[0]}, which was removed")
            self._outcome = next(self.outcomes, None)

    def finish(self, head: int) -> list[str]:
        if self.mark > head:
            self.problem(
                f"the index says records up to {self.mark} are indexed, but the log ends at {head}"
            )
        if self._row is not None and self._row[0] > head:
            self.problem(f"index row for record {self._row[0]} points past the end of the log")
        if self._outcome is not None and self._outcome[0] > head:
            self.problem(f"index has outcomes for record {self._outcome[0]}, which is not there")
        return self.problems


def _diff(got: Entry, want: Entry) -> str:
    names = (
        "ts",
        "id",
        "kind",
        "customer_id",
        "agent_id",
        "ruleset",
        "revision",
        "segment",
        "offset",
    )
    return ", ".join(
        f"{n} {getattr(got, n)!r} in the index, {getattr(want, n)!r} in the record"
        for n in names
        if getattr(got, n) != getattr(want, n)
    )


def _rows_without_log(index: LedgerIndex, ledger_dir: Path, logs: set[str]) -> dict[str, str]:
    """Index rows of instances that have no log here: they point at records that are not
    there (a log removed, or rows that never belonged to this ledger)."""
    names = index.names()
    found = {}
    for (inst,) in index.conn.execute("SELECT DISTINCT inst FROM records").fetchall():
        name = names.get(inst)
        if name in logs:
            continue
        (count,) = index.conn.execute(
            "SELECT count(*) FROM records WHERE inst = ?", (inst,)
        ).fetchone()
        label = repr(name) if name is not None else f"number {inst}"
        found[name or f"#{inst}"] = (
            f"the index holds rows of instance {label} ({count} records), which has no log in "
            f"{ledger_dir}: they point at records that are not there"
        )
    return found


@dataclass(frozen=True)
class LedgerReport:
    """``verify`` of every instance's log in one ledger directory."""

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
            "reason": (broken[1].reason or "; ".join(broken[1].index_problems[:1]))
            if broken[1]
            else None,
            "instances": {name: r.to_dict() for name, r in self.instances.items()},
        }


def verify_ledger(
    ledger_dir: Path | str,
    progress: Callable[[int], None] | None = None,
    live: bool = True,
    public_key: str | None = None,
) -> LedgerReport:
    """Verify every instance's log under ``ledger_dir`` and the index beside them."""
    ledger_dir = Path(ledger_dir)
    index = LedgerIndex(ledger_dir) if (ledger_dir / INDEX_FILE).exists() else None
    reports = {}
    checked = 0
    try:
        for name in instances(ledger_dir):
            log = SegmentLog(ledger_dir, name, readonly=True)

            def step(n: int, base: int = checked) -> None:
                if progress is not None:
                    progress(base + n)

            report = verify(
                log, index, progress=step, live=live, public_key=public_key, others=True
            )
            checked += report.records
            reports[name] = report
        listed = frozenset().union(*(r.lists for r in reports.values()))
        for name, report in reports.items():
            blanked = [seq for seq in report.unlisted if (name, seq) not in listed]
            if blanked and report.reason is None:
                reports[name] = dataclasses.replace(
                    report, ok=False, broken_at=blanked[0], reason=_unlisted(blanked[0])
                )
        if index is not None:
            for name, problem in _rows_without_log(index, ledger_dir, set(reports)).items():
                reports[name] = VerifyReport(False, 0, 0, GENESIS, index_problems=[problem])
    finally:
        if index is not None:
            index.close()
    return LedgerReport(reports)

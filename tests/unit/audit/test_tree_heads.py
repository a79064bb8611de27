"""Signed tree heads: the writer signs its log's Merkle root while records arrive and when it
closes, and a reopened log whose records no longer give a signed root is refused."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from audit.merkle import ProofError, root_of, verify_consistency, verify_inclusion
from audit.proofs import LogTree, check_extends, read_tiles
from audit.record import LedgerRecord, decode, hash_bytes, hash_text, leaf_hash
from audit.segments import HEADER, MAGIC, SegmentLog, segment_name
from audit.signing import Signer, TreeHead, parse_public_key, verify_tree_head
from audit.verify import verify
from audit.writer import LedgerTampered, LedgerWriter


def decisions(n: int, start: int = 0) -> list[LedgerRecord]:
    return [
        LedgerRecord(id=f"d-{k}", kind="decision", customer_id=f"c-{k % 3}")
        for k in range(start, start + n)
    ]


def shut(writer: LedgerWriter) -> None:
    writer.close()
    writer.store.close()


def reopen(path: Path, signer: Signer) -> None:
    """Open a writer on ``path`` (which must raise) and let go of the log."""
    log = SegmentLog(path, "local")
    try:
        LedgerWriter(log, signer=signer)
    finally:
        log.close()


def stored(path: Path) -> list[tuple[int, bytes]]:
    log = SegmentLog(path, "local", readonly=True)
    try:
        return list(log.scan())
    finally:
        log.close()


def heads(path: Path) -> list[tuple[int, TreeHead, str]]:
    out = []
    for seq, body in stored(path):
        record = decode(body)
        if record.kind == "tree_head":
            data = dict(record.data)
            key = data.pop("public_key")
            out.append((seq, TreeHead(**data), key))
    return out


def test_a_tree_head_signs_the_root_of_every_record_before_it(tmp_path: Path) -> None:
    """Heads come while records arrive and within the interval after the last one; each
    signs the root of exactly the records before it; none comes when nothing is new."""
    signer = Signer.generate()
    writer = LedgerWriter(SegmentLog(tmp_path, "local"), signer=signer, head_interval=0.05)
    for record in decisions(10):
        writer.append_blocking(record)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        head = writer.latest_head
        if head is not None and head.tree_size >= 10 + len(heads(tmp_path)) - 1:
            break  # a head covers all ten decisions (and the heads before it)
        time.sleep(0.01)
    count = len(heads(tmp_path))
    time.sleep(0.2)
    assert len(heads(tmp_path)) == count  # nothing new: no further tree heads
    shut(writer)

    bodies = stored(tmp_path)
    assert len(bodies) == 10 + count  # none added at close: everything was covered
    key = parse_public_key(signer.public_key)
    for seq, head, named in heads(tmp_path):
        assert named == signer.public_key and head.instance == "local"
        assert head.tree_size == seq - 1
        leaves = [leaf_hash(b) for _, b in bodies[: seq - 1]]
        assert head.root_hash == hash_text(root_of(leaves))
        assert verify_tree_head(head, key)
        assert not verify_tree_head(head, parse_public_key(Signer.generate().public_key))
    assert heads(tmp_path)[-1][0] == len(bodies)  # the last record is the last head


def test_closing_signs_what_no_head_covers_yet(tmp_path: Path) -> None:
    signer = Signer.generate()
    writer = LedgerWriter(SegmentLog(tmp_path, "local"), signer=signer, head_interval=3600)
    for record in decisions(3):
        writer.append_blocking(record)
    shut(writer)
    ((seq, head, _),) = heads(tmp_path)
    assert (seq, head.tree_size) == (4, 3)


def test_a_reopened_writer_continues_the_tree(tmp_path: Path) -> None:
    signer = Signer.generate()
    first = LedgerWriter(SegmentLog(tmp_path, "local"), signer=signer, head_interval=3600)
    for record in decisions(5):
        first.append_blocking(record)
    shut(first)
    second = LedgerWriter(SegmentLog(tmp_path, "local"), signer=signer, head_interval=3600)
    assert second.latest_head is not None and second.latest_head.tree_size == 5
    for record in decisions(4, start=5):
        second.append_blocking(record)
    shut(second)
    bodies = stored(tmp_path)
    (_, _, _), (seq, head, _) = heads(tmp_path)
    assert (seq, head.tree_size) == (11, 10)  # 5 decisions, a head, 4 decisions, this head
    assert head.root_hash == hash_text(root_of([leaf_hash(b) for _, b in bodies[:10]]))


def _rewrite_frame(path: Path, seq: int, change: bytes, to: bytes) -> None:
    """Change a record's bytes in its segment and give its frame the matching leaf hash: a
    forgery by someone with write access to the files but not the key."""
    segment = path / "local" / segment_name(1)
    data = bytearray(segment.read_bytes())
    offset = len(MAGIC)
    for _ in range(seq - 1):
        length, _leaf = HEADER.unpack_from(data, offset)
        offset += HEADER.size + length
    length, _leaf = HEADER.unpack_from(data, offset)
    body = bytes(data[offset + HEADER.size : offset + HEADER.size + length])
    assert change in body and len(change) == len(to)
    forged = body.replace(change, to, 1)
    data[offset : offset + HEADER.size + length] = HEADER.pack(length, leaf_hash(forged)) + forged
    segment.write_bytes(bytes(data))


def test_a_forged_record_with_its_hash_recomputed_is_refused(tmp_path: Path) -> None:
    signer = _signed_ledger(tmp_path)
    _rewrite_frame(tmp_path, 3, b'"c-2"', b'"c-9"')
    with pytest.raises(LedgerTampered, match="tree head at record 7 of instance local promised"):
        reopen(tmp_path, signer)


def test_a_tree_head_forged_without_the_key_is_refused(tmp_path: Path) -> None:
    signer = _signed_ledger(tmp_path, records=2)
    _rewrite_frame(tmp_path, 3, b'"tree_size":2', b'"tree_size":1')
    with pytest.raises(LedgerTampered, match="record 3 of instance local does not carry a valid"):
        reopen(tmp_path, signer)


def test_proofs_from_the_files_verify_against_a_signed_root(tmp_path: Path) -> None:
    """Over 2,500 records the writer keeps tile roots; proofs built from tiles and segments
    (and from segments alone) verify against the tree head's root."""
    signer = Signer.generate()
    writer = LedgerWriter(SegmentLog(tmp_path, "local"), signer=signer, head_interval=3600)
    for start in range(0, 2_500, 500):
        pendings = [writer.submit(r) for r in decisions(500, start)]
        for pending in pendings:
            pending.result(10)
    shut(writer)
    assert len(read_tiles(tmp_path / "local")) == 2  # 2,501 records: two complete runs
    ((seq, head, _),) = heads(tmp_path)
    assert seq == 2_501 and head.tree_size == 2_500
    root = hash_bytes(head.root_hash)
    log = SegmentLog(tmp_path, "local", readonly=True)
    try:
        fast, slow = LogTree(log), LogTree(log, trusted=False)
        leaves = [leaf_hash(b) for _, b in stored(tmp_path)]
        for index in (0, 1, 1023, 1024, 2047, 2048, 2499):
            path = fast.inclusion(index, head.tree_size)
            assert path == slow.inclusion(index, head.tree_size)
            verify_inclusion(index, head.tree_size, leaves[index], path, root)
        for old in (1, 1024, 1500, 2048):
            proof = fast.consistency(old, head.tree_size)
            verify_consistency(old, head.tree_size, root_of(leaves[:old]), root, proof)
    finally:
        log.close()


def _frames(path: Path) -> tuple[bytes, list[bytes]]:
    """The first segment's magic and each whole frame's bytes (header and body)."""
    data = (path / "local" / segment_name(1)).read_bytes()
    offset, frames = len(MAGIC), []
    while offset < len(data):
        length, _ = HEADER.unpack_from(data, offset)
        frames.append(data[offset : offset + HEADER.size + length])
        offset += HEADER.size + length
    return data[: len(MAGIC)], frames


def _reframe(body: bytes) -> bytes:
    return HEADER.pack(len(body), leaf_hash(body)) + body


def _rewrite(path: Path, frames: list[bytes]) -> None:
    (path / "local" / segment_name(1)).write_bytes(MAGIC + b"".join(frames))


def _signed_ledger(path: Path, records: int = 6) -> Signer:
    """A log of ``records`` decisions and, after them, the tree head its writer signed when
    it closed; the signer."""
    signer = Signer.generate()
    writer = LedgerWriter(SegmentLog(path, "local"), signer=signer, head_interval=3600)
    for record in decisions(records):
        writer.append_blocking(record)
    shut(writer)
    return signer


def _edit(frame: bytes, change: bytes, to: bytes) -> bytes:
    body = frame[HEADER.size :]
    return _reframe(body.replace(change, to, 1))


TAMPERING = {
    # what was done → (where verify stops, what it says)
    "a byte changed": (
        lambda f: [*f[:2], f[2][:-3] + b"X" + f[2][-2:], *f[3:]],
        3,
        "its bytes do not match its hash",
    ),
    "a record deleted": (lambda f: [*f[:2], *f[3:]], 3, "says it is record 4"),
    "two swapped": (lambda f: [f[0], f[2], f[1], *f[3:]], 2, "says it is record 3"),
    "forged, hashes recomputed": (
        lambda f: [*f[:2], _edit(f[2], b'"c-2"', b'"c-9"'), *f[3:]],
        4,
        "does not follow record 3",
    ),
    "a tree head forged without the key": (
        lambda f: [*f[:6], _edit(f[6], b'"tree_size":6', b'"tree_size":5')],
        7,
        "the tree head at record 7 does not carry a valid signature",
    ),
}


@pytest.mark.parametrize("attack", list(TAMPERING))
def test_tampering_is_found_by_verify_naming_the_record(tmp_path: Path, attack: str) -> None:
    signer = _signed_ledger(tmp_path)
    change, at, says = TAMPERING[attack]
    _, frames = _frames(tmp_path)
    _rewrite(tmp_path, change(frames))
    log = SegmentLog(tmp_path, "local", readonly=True)
    try:
        report = verify(log, public_key=signer.public_key)
    finally:
        log.close()
    assert not report.ok
    assert report.broken_at == at, report.reason
    assert report.reason is not None and says in report.reason


def test_a_chain_rewritten_whole_still_fails_its_signed_root(tmp_path: Path) -> None:
    """Every record after a forged one re-chained and re-hashed: the links hold, but the tree
    head's root, which only the key could sign again, does not."""
    signer = _signed_ledger(tmp_path)
    _, frames = _frames(tmp_path)
    bodies = [f[HEADER.size :] for f in frames]
    bodies[2] = bodies[2].replace(b'"c-2"', b'"c-9"', 1)
    for k in range(3, len(bodies)):
        previous = hash_text(leaf_hash(bodies[k - 1]))
        record = decode(bodies[k])
        bodies[k] = bodies[k].replace(record.prev_hash.encode(), previous.encode(), 1)
    _rewrite(tmp_path, [_reframe(b) for b in bodies])
    log = SegmentLog(tmp_path, "local", readonly=True)
    try:
        report = verify(log, public_key=signer.public_key)
    finally:
        log.close()
    assert report.broken_at == 7
    assert report.reason is not None and "promised 6 records with root" in report.reason
    with pytest.raises(LedgerTampered, match="tree head at record 7 of instance local promised"):
        reopen(tmp_path, signer)


def test_a_tree_head_signed_by_another_key_is_refused(tmp_path: Path) -> None:
    _signed_ledger(tmp_path)
    intruder = Signer.generate()
    log = SegmentLog(tmp_path, "local", readonly=True)
    try:
        report = verify(log, public_key=intruder.public_key)
    finally:
        log.close()
    assert report.broken_at == 7 and "names the key" in (report.reason or "")
    with pytest.raises(LedgerTampered, match="names the key"):
        reopen(tmp_path, intruder)


def test_a_kept_checkpoint_catches_a_cut_tail_and_a_rewritten_history(tmp_path: Path) -> None:
    """Someone holding the key can sign a new history, but not one that extends a tree head
    an auditor kept: a tail cut below it, or an early record rewritten, is named."""
    _signed_ledger(tmp_path)
    ((_, head, _),) = heads(tmp_path)
    kept = head.to_dict()
    log = SegmentLog(tmp_path, "local", readonly=True)
    try:
        assert "extends the checkpoint of 6 records" in check_extends(log, kept)
    finally:
        log.close()
    _, frames = _frames(tmp_path)
    _rewrite(tmp_path, frames[:4])  # records 5 onwards cut
    log = SegmentLog(tmp_path, "local", readonly=True)
    try:
        with pytest.raises(ProofError, match="holds 4 records, fewer than the 6 of the checkpoint"):
            check_extends(log, kept)
    finally:
        log.close()
    _rewrite(tmp_path, [frames[0], _edit(frames[1], b'"c-1"', b'"c-8"'), *frames[2:]])
    log = SegmentLog(tmp_path, "local", readonly=True)
    try:
        with pytest.raises(ProofError, match="no longer have the checkpoint's root"):
            check_extends(log, kept)
    finally:
        log.close()

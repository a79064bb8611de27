"""Inclusion and consistency proofs over one instance's log, read from its files.

A proof needs the roots of ranges of leaves. Aligned runs of ``TILE_LEAVES`` (1,024) leaves
never change once complete, so the writer keeps their roots in a file beside the segments,

    <ledger dir>/<instance>/tiles        32 bytes per complete run, in order

and a proof reads at most two runs' leaves from the segments (the run holding the record,
and the incomplete run at the end); every larger subtree is built from tiles. The file is
derived: the writer rewrites it whenever it rebuilds the tree at start, and a wrong tile can
only make a proof that fails against the signed root, never one that passes.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from audit.merkle import (
    EMPTY_ROOT,
    TILE_LEAVES,
    ProofError,
    consistency_proof,
    inclusion_proof,
    node_hash,
    root_of,
    verify_inclusion,
)
from audit.record import hash_bytes, leaf_hash
from audit.segments import SegmentLog
from audit.signing import TreeHead, parse_public_key, verify_tree_head

TILES = "tiles"
_HASH = 32


def write_tiles(directory: Path, first: int, roots: list[bytes]) -> None:
    """Store tile roots ``first``, ``first + 1``, ... (no sync: the file is derived)."""
    if not roots:
        return
    fd = os.open(directory / TILES, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, b"".join(roots), first * _HASH)
        if first == 0:
            os.ftruncate(fd, len(roots) * _HASH)
    finally:
        os.close(fd)


PRUNED = "pruned"  # the leaf hashes of records retention removed, record 1 first


def keep_pruned(directory: Path, first: int, leaves: list[bytes]) -> None:
    """Durably keep the leaf hashes of records ``first`` … about to be removed, so that the
    log's Merkle tree can still be rebuilt (and its older proofs given) without them."""
    fd = os.open(directory / PRUNED, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, b"".join(leaves), (first - 1) * _HASH)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_pruned(directory: Path, through: int) -> list[bytes] | None:
    """The kept leaf hashes of records 1 … ``through``; None if they are not all kept."""
    try:
        data = (directory / PRUNED).read_bytes()
    except FileNotFoundError:
        return None
    if len(data) < through * _HASH:
        return None
    return [data[k : k + _HASH] for k in range(0, through * _HASH, _HASH)]


def read_tiles(directory: Path) -> list[bytes]:
    """The tile roots stored for this log (none if the file is absent)."""
    try:
        data = (directory / TILES).read_bytes()
    except FileNotFoundError:
        return []
    return [data[k : k + _HASH] for k in range(0, len(data) - len(data) % _HASH, _HASH)]


class LogTree:
    """The Merkle tree of one instance's log as its files hold it, for building proofs."""

    def __init__(self, log: SegmentLog, *, trusted: bool = True) -> None:
        """``trusted=False`` reads every leaf from the segments, each checked against its
        record's bytes, and no tile: for checking the log rather than proving from it."""
        self.log = log
        self.trusted = trusted
        self.tiles = read_tiles(log.directory) if trusted else []
        self._runs: dict[int, list[bytes]] = {}  # run number → its leaves, as read
        self._pruned: list[bytes] | None = None  # leaves of records retention removed
        self._perfect: dict[tuple[int, int], bytes] = {}  # (start, size) → root, above tiles

    def _run(self, number: int) -> list[bytes]:
        """The leaves of run ``number`` (fewer than TILE_LEAVES for the last, incomplete one)."""
        leaves = self._runs.get(number)
        if leaves is None:
            first = number * TILE_LEAVES
            leaves = []
            pruned = self._pruned_leaves()
            if first < len(pruned):  # records retention removed: their kept leaves
                leaves = pruned[first : first + TILE_LEAVES]
            for frame in self.log.frames(after_seq=first + len(leaves), check=not self.trusted):
                if len(leaves) == TILE_LEAVES or frame.seq != first + len(leaves) + 1:
                    break  # the run is complete, or a record is missing or damaged
                leaves.append(frame.leaf)
            if len(self._runs) >= 8:
                self._runs.clear()
            self._runs[number] = leaves
        return leaves

    def _pruned_leaves(self) -> list[bytes]:
        """The kept leaves of the records retention removed from the log's start."""
        if self._pruned is None:
            segments = self.log.segments()
            gone = segments[0] - 1 if segments else 0
            self._pruned = (read_pruned(self.log.directory, gone) or []) if gone else []
        return self._pruned

    def leaves(self, start: int, end: int) -> list[bytes]:
        """Leaf hashes ``start`` … ``end - 1`` (leaf ``k`` is record ``seq`` k + 1)."""
        out: list[bytes] = []
        at = start
        while at < end:
            number, offset = divmod(at, TILE_LEAVES)
            run = self._run(number)
            take = run[offset : offset + (end - at)]
            if not take:
                raise ValueError(f"the log of {self.log.instance} holds no record {at + 1}")
            out.extend(take)
            at += len(take)
        return out

    def root(self, start: int, end: int) -> bytes:
        """The root of leaves ``start`` … ``end - 1``."""
        size = end - start
        if size >= TILE_LEAVES and size & (size - 1) == 0 and start % size == 0:
            if size == TILE_LEAVES and start // TILE_LEAVES < len(self.tiles):
                return self.tiles[start // TILE_LEAVES]
            found = self._perfect.get((start, size))
            if found is None:
                half = size // 2
                found = node_hash(self.root(start, start + half), self.root(start + half, end))
                self._perfect[(start, size)] = found
            return found
        if size <= TILE_LEAVES:
            return root_of(self.leaves(start, end))
        k = 1 << ((size - 1).bit_length() - 1)
        return node_hash(self.root(start, start + k), self.root(start + k, end))

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return inclusion_proof(index, size, self.root)

    def consistency(self, old: int, new: int) -> list[bytes]:
        return consistency_proof(old, new, self.root)


def check_proof(proof: dict[str, Any], public_key: str) -> str:
    """Check a saved inclusion proof (the answer of ``GET /v1/audit/decisions/{id}/proof``)
    with nothing but the instance's public key; return one sentence saying what it proves,
    or raise ProofError saying which check failed."""
    try:
        body = base64.b64decode(proof["record_bytes"], validate=True)
        index = int(proof["leaf_index"])
        claimed = hash_bytes(proof["leaf_hash"])
        path = [hash_bytes(h) for h in proof["inclusion_path"]]
        head, named_key = TreeHead.from_data(proof["tree_head"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ProofError(f"not a Frontline inclusion proof ({exc})") from None
    key = parse_public_key(public_key)
    if not verify_tree_head(head, key):
        signed_by = f" (it names {named_key})" if named_key and named_key != public_key else ""
        raise ProofError(f"the tree head is not signed by {public_key}{signed_by}")
    record = json.loads(body)
    erased = record.get("kind") == "erased"
    leaf = claimed if erased else leaf_hash(body)  # an erased record keeps only its leaf
    if leaf != claimed:
        raise ProofError("the record's bytes do not hash to the proof's leaf_hash")
    if record.get("instance") != head.instance or record.get("seq") != index + 1:
        raise ProofError(
            f"the record is {record.get('instance')}#{record.get('seq')}, but the proof is "
            f"for leaf {index} of {head.instance}"
        )
    verify_inclusion(index, head.tree_size, leaf, path, hash_bytes(head.root_hash))
    if erased:
        return (
            f"record {record.get('id')} was erased (by {record.get('data', {}).get('erasure')}); "
            f"its leaf is still record {index + 1} of instance {head.instance}'s log, under "
            f"the tree head of {head.tree_size} records signed at {head.time}"
        )
    return (
        f"record {record.get('id')} ({record.get('kind')}) is record {index + 1} of instance "
        f"{head.instance}'s log, under the tree head of {head.tree_size} records signed at "
        f"{head.time}"
    )


def check_extends(log: SegmentLog, checkpoint: dict[str, Any]) -> str:
    """Check that ``log`` still begins with the tree a kept checkpoint (a signed tree head)
    describes; return one sentence, or raise ProofError naming what differs."""
    try:
        size = int(checkpoint["tree_size"])
        root = hash_bytes(checkpoint["root_hash"])
        instance = str(checkpoint["instance"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ProofError(f"not a Frontline checkpoint ({exc})") from None
    if instance != log.instance:
        raise ProofError(f"the checkpoint is of instance {instance}, not {log.instance}")
    held, _ = log.head()
    if held < size:
        raise ProofError(
            f"the log of {instance} holds {held} records, fewer than the {size} of the "
            "checkpoint: its tail was cut"
        )
    try:
        now = LogTree(log, trusted=False).root(0, size) if size else EMPTY_ROOT
    except ValueError as exc:
        raise ProofError(
            f"the log of {instance} cannot give its first {size} records: {exc}"
        ) from None
    if now != root:
        raise ProofError(
            f"the first {size} records of {instance} no longer have the checkpoint's root "
            f"{checkpoint['root_hash']}: its history was rewritten"
        )
    return f"the log of {instance} ({held} records) extends the checkpoint of {size} records"

"""The Merkle tree over one instance's log, as RFC 9162 (Certificate Transparency 2.0) defines
it, so that any tool that checks CT proofs checks Frontline's.

    leaf hash  = SHA-256(0x00 || record bytes)        (audit/record.py ``leaf_hash``)
    node hash  = SHA-256(0x01 || left || right)
    root of n leaves: the empty string's SHA-256 for none, the leaf hash for one; otherwise, with
    k the largest power of two below n, the node hash of the roots of the first k and the rest.

The leaf hash is taken over the record's bytes as the segment stores them, so every field of
a record, those queries filter on included, is under the tree.

``Frontier`` keeps the tree's right edge (one hash per set bit of its size) so that the writer
can extend the tree by each record it appends and give a root at any moment in O(log n).
``inclusion_proof`` and ``consistency_proof`` build proofs from a function giving the root of
any range of leaves; ``verify_inclusion`` and ``verify_consistency`` check them with nothing
but hashes (RFC 9162 §2.1.3.2 and §2.1.4.2), which is all an auditor's copy needs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()
TILE_LEVEL = 10
TILE_LEAVES = 1 << TILE_LEVEL  # leaves under one tile: the roots of aligned runs of 1,024
_NODE = hashlib.sha256(b"\x01")


class ProofError(ValueError):
    """A proof does not prove what it claims; the message says which check failed."""


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    h = _NODE.copy()
    h.update(left)
    h.update(right)
    return h.digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The right edge of a tree: the roots of its perfect subtrees, largest first.

    A tree of ``size`` leaves is the concatenation of perfect subtrees, one per set bit of
    ``size``; appending a leaf merges the equal-sized ones, as a binary counter carries."""

    __slots__ = ("hashes", "size", "tiles")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != size.bit_count():
            raise ValueError(f"a frontier of {size} leaves has {size.bit_count()} hashes")
        self.size = size
        self.hashes = list(hashes)
        # The root of each run of TILE_LEAVES leaves completed since the owner last took
        # them (the carry passes through that level exactly when a run completes).
        self.tiles: list[bytes] = []

    def append(self, leaf: bytes) -> None:
        carry, size, level = leaf, self.size, 0
        while size & 1:
            carry = node_hash(self.hashes.pop(), carry)
            size >>= 1
            level += 1
            if level == TILE_LEVEL:
                self.tiles.append(carry)
        self.hashes.append(carry)
        self.size += 1

    def root(self) -> bytes:
        """The root of the tree so far."""
        if not self.hashes:
            return EMPTY_ROOT
        root = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            root = node_hash(left, root)
        return root

    def copy(self) -> Frontier:
        return Frontier(self.size, self.hashes)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """The root of a tree over ``leaves`` (leaf hashes)."""
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()


# A function giving the root of leaves [start, end) of the tree a proof is built over.
RangeRoot = Callable[[int, int], bytes]


def range_root_of(leaves: Sequence[bytes]) -> RangeRoot:
    """A RangeRoot over a list of leaf hashes held in memory."""
    return lambda start, end: root_of(leaves[start:end])


def inclusion_proof(index: int, size: int, subtree: RangeRoot) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``size`` leaves (RFC 9162 §2.1.3.1),
    nearest sibling first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index - start < k:
            path.append(subtree(start + k, end))
            end = start + k
        else:
            path.append(subtree(start, start + k))
            start += k
    path.reverse()
    return path


def consistency_proof(old: int, new: int, subtree: RangeRoot) -> list[bytes]:
    """The proof that the tree of ``old`` leaves is a prefix of the tree of ``new``
    (RFC 9162 §2.1.4.1)."""
    if not 0 <= old <= new:
        raise ValueError(f"a tree of {old} cannot be a prefix of one of {new}")
    if old in (0, new):
        return []
    proof: list[bytes] = []

    def walk(m: int, start: int, end: int, whole: bool) -> None:
        # SUBPROOF(m, D[start:end], whole): ``whole`` is true while the old tree's root is a
        # node of this subtree that the verifier knows (so it need not be sent).
        if m == end - start:
            if not whole:
                proof.append(subtree(start, end))
            return
        k = _split(end - start)
        if m <= k:
            walk(m, start, start + k, whole)
            proof.append(subtree(start + k, end))
        else:
            walk(m - k, start + k, end, False)
            proof.append(subtree(start, start + k))

    walk(old, 0, new, True)
    return proof


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """The root that ``path`` proves ``leaf`` at ``index`` under (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size}")
    fn, sn = index, size - 1
    root = leaf
    for sibling in path:
        if sn == 0:
            raise ProofError("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            root = node_hash(sibling, root)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            root = node_hash(root, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the inclusion proof is shorter than the tree is deep")
    return root


def verify_inclusion(
    index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes
) -> None:
    """ProofError unless ``path`` proves ``leaf`` at ``index`` in the tree whose root is
    ``root``."""
    if root_from_inclusion(index, size, leaf, path) != root:
        raise ProofError(f"the inclusion proof of leaf {index} does not lead to the root")


def verify_consistency(  # noqa: PLR0912 -- RFC 9162 2.1.4.2, step for step
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """ProofError unless ``proof`` shows the tree of ``old`` leaves with ``old_root`` is a
    prefix of the tree of ``new`` leaves with ``new_root`` (RFC 9162 §2.1.4.2)."""
    if not 0 <= old <= new:
        raise ProofError(f"a tree of {old} cannot be a prefix of one of {new}")
    if old == new:
        if proof:
            raise ProofError("trees of one size need an empty consistency proof")
        if old_root != new_root:
            raise ProofError(f"two different roots for the tree of {old}")
        return
    if old == 0:
        if proof:
            raise ProofError("an empty tree needs an empty consistency proof")
        return
    if not proof:
        raise ProofError("the consistency proof is empty")
    nodes = list(proof)
    if old & (old - 1) == 0:  # a power of two: the old root is the first node
        nodes.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the consistency proof is shorter than the tree is deep")
    if fr != old_root:
        raise ProofError(f"the consistency proof does not lead to the old root (tree of {old})")
    if sr != new_root:
        raise ProofError(f"the consistency proof does not lead to the new root (tree of {new})")

"""The Merkle tree against RFC 6962/9162's published test vectors (the eight leaves of the
Certificate Transparency test suite), and proofs that fail when anything in them is wrong."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    ProofError,
    consistency_proof,
    inclusion_proof,
    range_root_of,
    root_of,
    verify_consistency,
    verify_inclusion,
)
from audit.record import leaf_hash

DATA = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
LEAVES = [leaf_hash(d) for d in DATA]
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
H = bytes.fromhex
INCLUSION = [  # (leaf index, tree size, path)
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CONSISTENCY = [  # (old size, new size, proof)
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]


def test_roots_match_the_published_vectors() -> None:
    assert root_of([]) == EMPTY_ROOT
    frontier = Frontier()
    for n, leaf in enumerate(LEAVES, 1):
        frontier.append(leaf)
        assert frontier.root() == ROOTS[n - 1] == root_of(LEAVES[:n])


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_proofs_match_the_published_vectors(
    index: int, size: int, path: list[str]
) -> None:
    expected = [H(p) for p in path]
    assert inclusion_proof(index, size, range_root_of(LEAVES)) == expected
    verify_inclusion(index, size, LEAVES[index], expected, ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_proofs_match_the_published_vectors(
    old: int, new: int, proof: list[str]
) -> None:
    expected = [H(p) for p in proof]
    assert consistency_proof(old, new, range_root_of(LEAVES)) == expected
    verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], expected)


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_a_wrong_inclusion_proof_fails(index: int, size: int, path: list[str]) -> None:
    proof, root, leaf = [H(p) for p in path], ROOTS[size - 1], LEAVES[index]
    wrong = [
        (index ^ 1, size, leaf, proof, root),
        (index, size * 2, leaf, proof, root),
        (index, size, LEAVES[(index + 1) % 8], proof, root),
        (index, size, leaf, proof, EMPTY_ROOT),
        (index, size, leaf, [*proof, root], root),
        (index, size, leaf, [root, *proof], root),
        (index, size, leaf, proof[:-1], root),
    ]
    for k in range(len(proof)):  # one bit flipped in each node of the path
        flipped = list(proof)
        flipped[k] = bytes([flipped[k][0] ^ 8]) + flipped[k][1:]
        wrong.append((index, size, leaf, flipped, root))
    for case in wrong:
        with pytest.raises(ProofError):
            verify_inclusion(*case)


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_a_wrong_consistency_proof_fails(old: int, new: int, proof: list[str]) -> None:
    nodes, r1, r2 = [H(p) for p in proof], ROOTS[old - 1], ROOTS[new - 1]
    wrong = [
        (old - 1, new, r1, r2, nodes),
        (old + 1, new, r1, r2, nodes),
        (old, new * 2, r1, r2, nodes),
        (old, new, r2, r1, nodes),
        (old, new, r1, r2, []),
        (old, new, r1, r2, [*nodes, r1]),
        (old, new, r1, r2, [r2, *nodes]),
        (old, new, r1, r2, nodes[:-1]),
    ]
    for k in range(len(nodes)):
        flipped = list(nodes)
        flipped[k] = bytes([flipped[k][0] ^ 16]) + flipped[k][1:]
        wrong.append((old, new, r1, r2, flipped))
    for case in wrong:
        with pytest.raises(ProofError):
            verify_consistency(*case)


def test_every_proof_over_small_trees_verifies() -> None:
    """Every leaf of every tree up to 40 leaves, and every pair of sizes, proves."""
    leaves = [leaf_hash(str(k).encode()) for k in range(40)]
    subtree = range_root_of(leaves)
    roots = [root_of(leaves[:n]) for n in range(41)]
    for size in range(1, 41):
        for index in range(size):
            path = inclusion_proof(index, size, subtree)
            verify_inclusion(index, size, leaves[index], path, roots[size])
    for old, new in itertools.combinations_with_replacement(range(41), 2):
        verify_consistency(old, new, roots[old], roots[new], consistency_proof(old, new, subtree))


@given(st.integers(1, 3000), st.data())
def test_a_frontier_resumes_where_it_stopped(size: int, data: st.DataObject) -> None:
    """A frontier saved at any size and extended gives the root of the whole tree."""
    cut = data.draw(st.integers(0, size))
    leaves = [leaf_hash(k.to_bytes(4, "big")) for k in range(size)]
    first = Frontier()
    for leaf in leaves[:cut]:
        first.append(leaf)
    resumed = Frontier(first.size, first.hashes)
    for leaf in leaves[cut:]:
        resumed.append(leaf)
    assert resumed.root() == root_of(leaves)
    assert len(resumed.hashes) == size.bit_count()

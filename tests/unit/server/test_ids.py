"""Identifiers: ULIDs in Crockford base32, sorted by creation, unique across threads."""

from __future__ import annotations

import random
import threading
import time

from server.ids import encode_ulid, new_id, request_id

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def by_hand(value: int) -> str:
    """The ULID spelling of ``value``, five bits at a time from the bottom."""
    out = []
    for _ in range(26):
        out.append(CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def test_encoding_is_crockford_base32_of_the_128_bits() -> None:
    rng = random.Random(3)
    for value in [0, 1, 31, 32, 2**80, 2**128 - 1, *(rng.getrandbits(128) for _ in range(2000))]:
        assert encode_ulid(value) == by_hand(value)
    assert encode_ulid(2**128 - 1) == "7" + "Z" * 25


def test_ids_carry_the_millisecond_and_sort_in_creation_order() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(20_000)]  # many share a millisecond
    after = time.time_ns() // 1_000_000
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    first = sum(CROCKFORD.index(c) << (5 * (25 - i)) for i, c in enumerate(ids[0])) >> 80
    assert before <= first <= after


def test_ids_made_on_many_threads_are_unique() -> None:
    made: list[list[str]] = [[] for _ in range(8)]

    def make(k: int) -> None:
        made[k].extend(new_id() for _ in range(5_000))

    threads = [threading.Thread(target=make, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for chunk in made for i in chunk]
    assert len(set(every)) == len(every) == 40_000


def test_request_ids_are_24_hex_digits_and_differ() -> None:
    ids = {request_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(len(i) == 24 and int(i, 16) >= 0 for i in ids)

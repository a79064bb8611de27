"""The machine's PostgreSQL for tests: each test gets a schema of its own, dropped after;
``check_chain`` walks an instance's chain as shipped there."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from audit.postgres import PostgresLedgerStore
from audit.record import GENESIS, decode, hash_text, leaf_hash

URL = os.environ.get("FRONTLINE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def require_postgres() -> None:
    """Skip without PostgreSQL, unless CI says services are required (then fail)."""
    try:
        psycopg.connect(URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        if os.environ.get("FRONTLINE_REQUIRE_SERVICES") == "1":
            raise
        pytest.skip(f"PostgreSQL is not reachable at {URL}: {exc}")


@pytest.fixture
def pg_schema() -> Iterator[str]:
    require_postgres()
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@dataclass(frozen=True)
class ShippedChain:
    """What ``check_chain`` found: ``ok`` when every record links to the one before it."""

    ok: bool
    records: int
    reason: str | None = None


def check_chain(store: PostgresLedgerStore) -> ShippedChain:
    """Walk an instance's chain as PostgreSQL holds it, from record 1: each stored body
    decodes to a record of this instance at its own ``seq``, carries the previous body's
    hash as ``prev_hash``, and the last body's hash is the head PostgreSQL reports."""
    previous = GENESIS
    count = 0
    for seq, body in store.scan():
        record = decode(body)
        if seq != count + 1 or record.seq != seq:
            return ShippedChain(False, count, f"record {count + 1} is followed by {seq}")
        if record.instance != store.instance:
            return ShippedChain(False, count, f"record {seq} is of {record.instance!r}")
        if record.prev_hash != previous:
            return ShippedChain(False, count, f"record {seq} does not follow record {count}")
        previous = hash_text(leaf_hash(body))
        count += 1
    if store.head() != (count, previous):
        return ShippedChain(False, count, f"the head is {store.head()}, not record {count}")
    return ShippedChain(True, count)

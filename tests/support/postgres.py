"""The machine's PostgreSQL for tests: each test gets a schema of its own, dropped after."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

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

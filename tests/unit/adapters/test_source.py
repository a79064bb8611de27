"""The context source: filled on a miss, kept after, refreshed when old, served stale and
marked when the source fails, never waited on longer than its timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from adapters.memory import MemoryContextStore
from adapters.source import HttpContextSource, SourcedContextStore
from tests.support.source import ContextSource


@pytest.fixture
def source() -> Iterator[ContextSource]:
    server = ContextSource()
    yield server
    server.close()


def store(source: ContextSource, **options: object) -> SourcedContextStore:
    return SourcedContextStore(
        MemoryContextStore(),
        HttpContextSource(source.url, timeout=0.2),
        name="crm",
        **options,  # type: ignore[arg-type]
    )


def test_a_miss_is_fetched_once_and_then_served_from_the_store(source: ContextSource) -> None:
    source.contexts["c-1"] = {"customer": {"tier": "gold", "churn_score": 0.4}}

    async def scenario() -> None:
        contexts = store(source)
        found = await asyncio.gather(*(contexts.get("c-1") for _ in range(5)))
        assert all(f is not None and f.values["customer"]["tier"] == "gold" for f in found)
        assert found[0] is not None and found[0].sources["customer.tier"] == "crm"
        assert found[0].as_of["customer.tier"].endswith("Z")
        again = await contexts.get("c-1")
        assert again is not None and not again.degraded
        assert await contexts.get("c-unknown") is None
        assert await contexts.get("c-unknown") is None  # remembered as unknown

    asyncio.run(scenario())
    assert source.requests == ["/customers/c-1", "/customers/c-unknown"]


def test_a_failing_source_serves_the_old_copy_marked_and_opens_its_breaker(
    source: ContextSource,
) -> None:
    source.contexts["c-1"] = {"customer": {"tier": "gold"}}

    async def scenario() -> None:
        contexts = store(source, refresh=timedelta(milliseconds=50), failures=2, cooldown=60)
        first = await contexts.get("c-1")
        assert first is not None and not first.degraded
        await asyncio.sleep(0.06)  # now older than the refresh interval
        source.status = 500
        for _ in range(2):
            stale = await contexts.get("c-1")
            assert stale is not None and stale.degraded
            assert stale.values == {"customer": {"tier": "gold"}}
        assert contexts.breaker_open
        asked = len(source.requests)
        empty = await contexts.get("c-2")  # breaker open: the source is not asked
        assert empty is not None and empty.degraded and empty.values == {}
        assert len(source.requests) == asked

    asyncio.run(scenario())


def test_a_slow_source_never_holds_a_read_longer_than_its_timeout(
    source: ContextSource,
) -> None:
    source.contexts["c-1"] = {"customer": {"tier": "gold"}}
    source.delay = 2.0

    async def scenario() -> float:
        contexts = store(source)
        started = time.perf_counter()
        found = await contexts.get("c-1")
        assert found is not None and found.degraded and found.values == {}
        return time.perf_counter() - started

    assert asyncio.run(scenario()) < 0.5


def test_a_url_template_without_the_customer_is_refused() -> None:
    with pytest.raises(ValueError, match="customer_id"):
        HttpContextSource("http://crm.internal/customers")

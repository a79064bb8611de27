"""The DecisionReads contract, store by store in process and as one pipeline on Redis: the
same answers as the stores read one by one, and on Redis one round trip for all three."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
import redis.asyncio

from adapters.memory import MemoryContextStore, MemoryEventCounters, MemoryInteractions
from adapters.ports import (
    ContextStore,
    DecisionReads,
    EventCounters,
    Interaction,
    InteractionStore,
    StoreUnavailable,
)
from adapters.reads import StoreByStore
from adapters.redis import (
    RedisContextStore,
    RedisDecisionReads,
    RedisEventCounters,
    RedisInteractions,
)
from tests.support.redis import URL, CountingRedis

T = TypeVar("T")
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
NEEDED = frozenset({("payment_failed", "7d"), ("contact", "24h")})
_LOOP = asyncio.new_event_loop()


def run(coro: Coroutine[Any, Any, T]) -> T:
    return _LOOP.run_until_complete(coro)


@dataclass
class Stores:
    contexts: ContextStore
    counters: EventCounters
    interactions: InteractionStore
    reads: DecisionReads
    client: CountingRedis | None = None


@pytest.fixture(params=["memory", "redis"])
def stores(request: pytest.FixtureRequest) -> Iterator[Stores]:
    if request.param == "memory":
        contexts, counters, interactions = (
            MemoryContextStore(),
            MemoryEventCounters(),
            MemoryInteractions(),
        )
        yield Stores(
            contexts, counters, interactions, StoreByStore(contexts, counters, interactions)
        )
        return
    yield from on_redis(request.getfixturevalue("redis_prefix"))


def on_redis(prefix: str) -> Iterator[Stores]:
    client = CountingRedis.counting(URL)
    shared = RedisContextStore(client, prefix=prefix)
    events = RedisEventCounters(client, prefix=prefix)
    live = RedisInteractions(client, prefix=prefix)
    yield Stores(shared, events, live, RedisDecisionReads(client, shared, events, live), client)
    run(client.aclose())


@pytest.fixture
def redis_stores(redis_prefix: str) -> Iterator[Stores]:
    yield from on_redis(redis_prefix)


def interaction(customer_id: str = "c-1") -> Interaction:
    return Interaction("i-1", customer_id, "a-1", "retention-desk", 3, "2026-11-22T09:59:00Z")


def fill(stores: Stores) -> None:
    async def go() -> None:
        await stores.contexts.put("c-1", {"customer": {"tier": "gold"}}, "crm", None)
        for hours in (1, 30, 100, 200):
            await stores.counters.record("c-1", "payment_failed", NOW - timedelta(hours=hours))
        await stores.counters.record("c-1", "contact", NOW - timedelta(hours=2))
        await stores.interactions.start(interaction())

    run(go())


def test_the_reads_agree_with_each_store(stores: Stores) -> None:
    fill(stores)
    got = run(stores.reads.read("c-1", NEEDED, "i-1", NOW))
    assert got.context is not None and got.context.values == {"customer": {"tier": "gold"}}
    assert got.context.sources == {"customer.tier": "crm"}
    assert got.counters == {"payment_failed": {"7d": 3}, "contact": {"24h": 1}}
    assert got.counters == run(stores.counters.counts("c-1", NEEDED, NOW))
    assert not got.counters_unavailable
    assert got.interaction == interaction()


def test_nothing_there_reads_as_nothing(stores: Stores) -> None:
    got = run(stores.reads.read("c-9", NEEDED, "i-9", NOW))
    assert got.context is None and got.interaction is None
    assert got.counters == {"payment_failed": {"7d": 0}, "contact": {"24h": 0}}
    none_asked = run(stores.reads.read("c-9", frozenset(), None, NOW))
    assert none_asked.counters is None and not none_asked.counters_unavailable


def test_on_redis_the_three_reads_are_one_round_trip(redis_stores: Stores) -> None:
    stores = redis_stores
    assert stores.client is not None
    fill(stores)
    assert isinstance(stores.contexts, RedisContextStore)
    run(stores.reads.read("c-2", NEEDED, None, NOW))  # connected (a handshake)
    stores.contexts.invalidate("c-1")  # not cached: the context is read too
    before = stores.client.round_trips
    got = run(stores.reads.read("c-1", NEEDED, "i-1", NOW))
    assert stores.client.round_trips - before == 1
    assert got.context is not None and got.interaction is not None and got.counters
    # Cached now: the next read still takes one round trip, for the counters and interaction.
    before = stores.client.round_trips
    run(stores.reads.read("c-1", NEEDED, "i-1", NOW))
    assert stores.client.round_trips - before == 1
    # Cached, no counters, no interaction: none.
    before = stores.client.round_trips
    assert run(stores.reads.read("c-1", frozenset(), None, NOW)).context is not None
    assert stores.client.round_trips == before


def test_redis_away_each_read_falls_back_as_its_store_does(redis_prefix: str) -> None:
    """The last context seen, marked degraded; counters reported unavailable; the
    interaction this process started, or StoreUnavailable for one it never saw."""
    client = redis.asyncio.Redis.from_url(URL)
    shared = RedisContextStore(client, prefix=redis_prefix, cache_ttl=0.01)
    events = RedisEventCounters(client, prefix=redis_prefix)
    live = RedisInteractions(client, prefix=redis_prefix)

    async def go() -> None:
        await shared.put("c-1", {"customer": {"tier": "gold"}}, "crm", None)
        await shared.get("c-1")
        await live.start(interaction())

    run(go())
    run(client.aclose())
    away = redis.asyncio.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    for store in (shared, events, live):
        store._redis = away  # the same stores, their server gone
    reads = RedisDecisionReads(away, shared, events, live)
    run(asyncio.sleep(0.02))  # the cached copy expires
    got = run(reads.read("c-1", NEEDED, "i-1", NOW))
    assert got.context is not None and got.context.degraded
    assert got.context.values == {"customer": {"tier": "gold"}}
    assert got.counters is None and got.counters_unavailable
    assert got.interaction == interaction()
    with pytest.raises(StoreUnavailable):
        run(reads.read("c-1", NEEDED, "i-other", NOW))


def test_an_event_is_recorded_and_the_alert_inputs_read(stores: Stores) -> None:
    fill(stores)
    event = ("payment_failed", NOW - timedelta(minutes=1))
    got = run(stores.reads.for_alerts("c-1", NEEDED, NOW, event=event))
    assert got.interactions == [interaction()]
    assert got.context is not None and got.context.values == {"customer": {"tier": "gold"}}
    # The event just recorded is counted: three in the last week before it, four now.
    assert got.counters == {"payment_failed": {"7d": 4}, "contact": {"24h": 1}}
    assert run(stores.counters.counts("c-1", NEEDED, NOW))["payment_failed"] == {"7d": 4}
    # Without an event, nothing is recorded.
    again = run(stores.reads.for_alerts("c-1", NEEDED, NOW))
    assert again.counters == got.counters
    # A customer with no live interaction: the event is recorded, nothing else read.
    alone = run(stores.reads.for_alerts("c-9", NEEDED, NOW, event=event))
    assert alone.interactions == [] and alone.counters is None
    assert run(stores.counters.counts("c-9", NEEDED, NOW))["payment_failed"] == {"7d": 1}


def test_on_redis_an_event_and_the_alert_inputs_are_one_round_trip(redis_stores: Stores) -> None:
    stores = redis_stores
    assert stores.client is not None
    fill(stores)
    assert isinstance(stores.contexts, RedisContextStore)
    event = ("payment_failed", NOW - timedelta(minutes=1))
    run(stores.reads.for_alerts("c-2", NEEDED, NOW, event=event))  # connected (a handshake)
    stores.contexts.invalidate("c-1")
    before = stores.client.round_trips
    got = run(stores.reads.for_alerts("c-1", NEEDED, NOW, event=event))
    assert got.interactions and got.context is not None and got.counters
    assert stores.client.round_trips - before == 1


def test_redis_away_an_event_is_refused(redis_prefix: str) -> None:
    away = redis.asyncio.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    reads = RedisDecisionReads(
        away,
        RedisContextStore(away, prefix=redis_prefix),
        RedisEventCounters(away, prefix=redis_prefix),
        RedisInteractions(away, prefix=redis_prefix),
    )
    with pytest.raises(StoreUnavailable, match="recording an event"):
        run(reads.for_alerts("c-1", NEEDED, NOW, event=("payment_failed", NOW)))

"""What only the Redis adapters do: cross-instance cache invalidation, degraded reads while
Redis is away, keys that expire on their own."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import redis.asyncio

from adapters.redis import Invalidations, RedisContextStore, RedisEventCounters
from tests.support.redis import URL, PrivateRedis


async def _instances(prefix: str) -> tuple[list[RedisContextStore], list[asyncio.Task[None]]]:
    """Two stores as two instances would have them, each with its invalidation listener."""
    stores, tasks = [], []
    for _ in range(2):
        client = redis.asyncio.Redis.from_url(URL)
        store = RedisContextStore(client, prefix=prefix, cache_ttl=60)
        follower = Invalidations(client, {store.channel: store.invalidate})
        tasks.append(asyncio.create_task(follower.run()))
        await asyncio.wait_for(follower.ready.wait(), 5)
        stores.append(store)
    return stores, tasks


def test_a_write_on_one_instance_drops_the_cached_copy_on_the_other(redis_prefix: str) -> None:
    async def scenario() -> float:
        (one, two), tasks = await _instances(redis_prefix)
        await one.put("c-1", {"customer": {"tier": "gold"}}, "crm", None)
        seen = await two.get("c-1")
        assert seen is not None and seen.values == {"customer": {"tier": "gold"}}
        assert (await two.get("c-1")) is not None and two.cache_hits == 1  # now cached
        started = time.perf_counter()
        await one.patch("c-1", {"customer": {"tier": "platinum"}}, "crm", None)
        while True:
            found = await two.get("c-1")
            assert found is not None
            if found.values["customer"]["tier"] == "platinum":
                break
            assert time.perf_counter() - started < 1.0, "the other instance kept a stale copy"
            await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - started
        for task in tasks:
            task.cancel()
        return elapsed

    elapsed = asyncio.run(scenario())
    assert elapsed < 0.05, f"invalidation took {elapsed * 1000:.1f} ms"


def test_a_customer_without_context_is_cached_as_absent_until_a_write(redis_prefix: str) -> None:
    """The second read of a customer with no context is answered in process; a write on
    another instance drops that answer, as it drops a cached context."""

    async def scenario() -> None:
        (one, two), tasks = await _instances(redis_prefix)
        assert await two.get("c-9") is None and two.cache_misses == 1
        assert await two.get("c-9") is None and two.cache_hits == 1  # not asked again
        await one.put("c-9", {"customer": {"tier": "gold"}}, "crm", None)
        started = time.perf_counter()
        while (found := await two.get("c-9")) is None:
            assert time.perf_counter() - started < 1.0, "the other instance kept 'absent'"
            await asyncio.sleep(0.001)
        assert found.values == {"customer": {"tier": "gold"}}
        for task in tasks:
            task.cancel()

    asyncio.run(scenario())


def test_reads_are_served_degraded_while_redis_is_away_and_fresh_after(
    private_redis: PrivateRedis,
) -> None:
    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(
            private_redis.url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        store = RedisContextStore(client, cache_ttl=0.05)
        await store.put("c-1", {"customer": {"tier": "gold"}}, "crm", None)
        await asyncio.sleep(0.06)  # the in-process copy is no longer fresh
        private_redis.stop()
        started = time.perf_counter()
        found = await store.get("c-1")
        assert found is not None and found.degraded
        assert found.values == {"customer": {"tier": "gold"}}
        unknown = await store.get("c-2")
        assert unknown is not None and unknown.degraded and unknown.values == {}
        assert time.perf_counter() - started < 1.0
        private_redis.start()
        store.breaker.succeeded()  # skip the cool-down rather than sleep through it
        await client.connection_pool.disconnect()
        again = await store.get("c-1")
        # The private server started empty: nothing cached there, and not degraded.
        assert again is None
        await client.aclose()

    asyncio.run(scenario())


def test_event_keys_expire_on_their_own(redis_prefix: str) -> None:
    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(URL)
        counters = RedisEventCounters(client, prefix=redis_prefix, horizon=timedelta(days=1))
        await counters.record("c-1", "payment_failed", datetime.now(UTC))
        ttl = await client.pttl(f"{redis_prefix}events:c-1:payment_failed")
        assert 0 < ttl <= 86_400_000
        await client.aclose()

    asyncio.run(scenario())

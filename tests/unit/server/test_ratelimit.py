"""Rate limits: a key's budget per minute, in process and shared through Redis in leases."""

from __future__ import annotations

import asyncio

import redis
import redis.asyncio

from server.ratelimit import WINDOW, Limits
from tests.support.redis import URL

NOW = 1_800_000_000.0  # the start of a window (a multiple of 60)


def spend_all(limits: list[Limits], key: str, times: int, now: float = NOW) -> list[bool]:
    """Spend ``times`` requests of ``key``, round robin over ``limits``: allowed or not."""

    async def run() -> list[bool]:
        return [await limits[k % len(limits)].spend(key, now) is None for k in range(times)]

    return asyncio.run(run())


def test_in_process_a_key_gets_its_budget_and_then_a_retry_after() -> None:
    limits = Limits(3)
    assert spend_all([limits], "agent:a", 4) == [True, True, True, False]
    assert asyncio.run(limits.spend("agent:a", NOW + 15)) == WINDOW - 15
    assert spend_all([limits], "agent:b", 1) == [True]  # another key, its own budget
    assert spend_all([limits], "agent:a", 1, now=NOW + WINDOW) == [True]  # the next window


def test_a_small_budget_is_exact_across_instances(redis_prefix: str) -> None:
    async def run() -> list[bool]:
        client = redis.asyncio.Redis.from_url(URL)
        a, b = Limits(6, client, redis_prefix), Limits(6, client, redis_prefix)
        assert a.lease == 1
        out = [await (a, b)[k % 2].spend("agent:a", NOW) is None for k in range(9)]
        await client.aclose()
        return out

    assert asyncio.run(run()) == [True] * 6 + [False] * 3


def test_a_large_budget_is_leased_and_never_overspent(redis_prefix: str) -> None:
    """5,000 a minute: leases of 5, one Redis round trip per 5 requests; three instances
    together admit exactly the budget when each uses its leases."""

    async def run() -> tuple[list[bool], int, list[bool]]:
        client = redis.asyncio.Redis.from_url(URL)
        limits = [Limits(5_000, client, redis_prefix) for _ in range(3)]
        assert limits[0].lease == 5
        out = [await limits[(k // 5) % 3].spend("agent:a", NOW) is None for k in range(5_010)]
        # Once Redis said the budget is used, an instance stops asking for the window.
        again = [await lim.spend("agent:a", NOW + 1) is None for lim in limits]
        again += [await lim.spend("agent:a", NOW + 2) is None for lim in limits]
        taken = int(await client.get(f"{redis_prefix}rate:agent:a:{int(NOW) // WINDOW}"))
        await client.aclose()
        return out, taken, again

    out, taken, again = asyncio.run(run())
    assert out == [True] * 5_000 + [False] * 10
    # 1,003 leases asked for: 1,000 granted, then one by each instance finding it used.
    assert taken == 5_015
    assert again == [False] * 6


def test_leases_asked_for_at_once_are_both_kept(redis_prefix: str) -> None:
    """Two requests of one key waiting on Redis together: neither lease is lost."""

    async def run() -> int:
        client = redis.asyncio.Redis.from_url(URL)
        limits = Limits(10_000, client, redis_prefix)
        first = await asyncio.gather(*(limits.spend("agent:a", NOW) for _ in range(2)))
        assert first == [None, None]
        allowed = 2
        while await limits.spend("agent:a", NOW) is None:
            allowed += 1
        await client.aclose()
        return allowed

    assert asyncio.run(run()) == 10_000


def test_without_redis_budgets_are_counted_in_process() -> None:
    client = redis.asyncio.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    limits = Limits(2, client)
    assert spend_all([limits], "agent:a", 3) == [True, True, False]
    assert limits.breaker.open
    redis.Redis.from_url(URL).ping()  # the shared Redis was never the one asked

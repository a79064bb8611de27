"""The AlertBus contract, in process and on Redis (the machine's server, a key prefix per
test): history then live, in order; a stalled reader receives everything; a reader on another
instance too; what a subscription cannot keep is counted and logged, never dropped silently.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio
import structlog
import structlog.testing

from adapters.alertbus import MemoryAlertBus, RedisAlertBus, Subscription
from adapters.ports import AlertBus, AlertSubscription
from tests.support.redis import URL

Make = Callable[[], Awaitable[AlertBus]]


def message(n: int) -> bytes:
    return json.dumps({"id": f"alert-{n:05d}", "n": n}).encode()


def numbers(batch: list[bytes]) -> list[int]:
    return [json.loads(raw)["n"] for raw in batch]


@pytest.fixture(params=["memory", "redis"])
def make(request: pytest.FixtureRequest) -> Make:
    """A factory of buses sharing one backing (one process's bus, or one Redis prefix)."""
    if request.param == "memory":
        shared = MemoryAlertBus(history=10)

        async def memory() -> AlertBus:
            return shared

        return memory
    prefix = request.getfixturevalue("redis_prefix")

    async def on_redis() -> AlertBus:
        bus = RedisAlertBus(redis.asyncio.Redis.from_url(URL), prefix=prefix, history=10)
        await bus.start()
        return bus

    return on_redis


async def stop(*buses: AlertBus) -> None:
    for bus in set(buses):
        await bus.stop()
        if isinstance(bus, RedisAlertBus):
            await bus._redis.aclose()


async def take_until(
    subscription: AlertSubscription, count: int, seconds: float = 5.0
) -> list[int]:
    got: list[int] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while len(got) < count and loop.time() < deadline:
        got += numbers(await subscription.take(0.2))
    return got


def test_history_then_live_in_order(make: Make) -> None:
    async def run() -> None:
        bus = await make()
        for n in range(15):
            bus.publish("a-1", message(n))
        await asyncio.sleep(0.1)  # on Redis: published
        subscription = await bus.subscribe("a-1")
        assert numbers(await subscription.take(1.0)) == list(range(5, 15))  # the last 10
        for n in range(15, 20):
            bus.publish("a-1", message(n))
        assert await take_until(subscription, 5) == list(range(15, 20))
        other = await bus.subscribe("a-2")
        assert await other.take(0.05) == []  # nothing for another agent
        bus.unsubscribe(subscription)
        bus.unsubscribe(other)
        await stop(bus)

    asyncio.run(run())


def test_a_stalled_reader_receives_every_alert(make: Make) -> None:
    """500 alerts published while the desktop's reader does not take any: all 500 arrive,
    in order, once it reads again; nothing is counted as dropped."""

    async def run() -> None:
        publisher, reader = await make(), await make()  # two instances on Redis
        subscription = await reader.subscribe("a-1")
        await asyncio.sleep(0.3)  # the reader follows the stream
        for n in range(500):
            publisher.publish("a-1", message(n))
        await asyncio.sleep(1.0)  # stalled: taken by nobody meanwhile
        got = await take_until(subscription, 500)
        assert got == list(range(500))
        assert reader.dropped == 0
        reader.unsubscribe(subscription)
        await stop(publisher, reader)

    asyncio.run(run())


def test_what_a_subscription_cannot_keep_is_counted_and_logged() -> None:
    bus = MemoryAlertBus(history=10)

    async def run() -> list[int]:
        subscription = Subscription("a-1", bus, backlog=100)
        subscription.put(message(n) for n in range(130))
        return numbers(await subscription.take(0.1))

    with structlog.testing.capture_logs() as logged:
        kept = asyncio.run(run())
    assert kept == list(range(30, 130))
    assert bus.dropped == 30
    (entry,) = [e for e in logged if e["event"].startswith("alerts dropped")]
    assert entry["log_level"] == "error" and entry["count"] == 30
    assert entry["alert_ids"] == [f"alert-{n:05d}" for n in range(30)]


def test_redis_streams_are_trimmed_by_age_not_to_the_history(redis_prefix: str) -> None:
    """The reconnect history is 10; a stream still holds 300 recent alerts."""

    async def run() -> int:
        client = redis.asyncio.Redis.from_url(URL)
        bus = RedisAlertBus(client, prefix=redis_prefix, history=10)
        await bus.start()
        for n in range(300):
            bus.publish("a-1", message(n))
        await asyncio.sleep(0.3)
        length = int(await client.xlen(f"{redis_prefix}alerts:a-1"))
        await bus.stop()
        await client.aclose()
        return length

    assert asyncio.run(run()) == 300


def test_publishing_is_batched(redis_prefix: str) -> None:
    """Alerts published in one turn of the loop go to Redis in one pipeline."""

    async def run() -> tuple[int, int]:
        client = redis.asyncio.Redis.from_url(URL)
        bus = RedisAlertBus(client, prefix=redis_prefix, history=10)
        sends = 0
        send = bus._send

        async def counted(batch: list[tuple[str, bytes]]) -> None:
            nonlocal sends
            sends += 1
            await send(batch)

        bus._send = counted  # type: ignore[method-assign]
        for n in range(200):
            bus.publish(f"a-{n % 7}", message(n))
        await asyncio.sleep(0.3)
        await bus.stop()
        await client.aclose()
        return sends, bus.published

    sends, published = asyncio.run(run())
    assert published == 200 and sends == 1

"""Script calls made at the same time share a round trip on the machine's Redis, and each
caller still gets its own reply or its own error."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
import redis
import redis.asyncio

from adapters.pipelining import ScriptCalls, script_calls
from tests.support.redis import URL, CountingRedis

T = TypeVar("T")

# Echo the key and the arguments back, after writing the first argument under the key; an
# argument "fail" is an error reply for that call alone.
ECHO = """
if ARGV[1] == 'fail' then return redis.error_reply('asked to fail') end
redis.call('SET', KEYS[1], ARGV[1])
return {KEYS[1], ARGV[1], ARGV[2]}
"""


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def test_calls_made_together_share_one_round_trip_and_each_gets_its_reply(
    redis_prefix: str,
) -> None:
    async def go() -> tuple[list[Any], int, ScriptCalls]:
        client = CountingRedis.counting(URL)
        script = client.register_script(ECHO)
        calls = script_calls(client)
        await calls.run(script, [f"{redis_prefix}warm"], ["w", 0])  # connected, loaded
        before = client.round_trips
        replies = await asyncio.gather(
            *(calls.run(script, [f"{redis_prefix}k{n}"], [f"v{n}", n]) for n in range(20))
        )
        used = client.round_trips - before
        values = [await client.get(f"{redis_prefix}k{n}") for n in range(20)]
        await client.aclose()
        assert values == [f"v{n}".encode() for n in range(20)]
        return list(replies), used, calls

    replies, used, calls = run(go())
    assert replies == [
        [f"{redis_prefix}k{n}".encode(), f"v{n}".encode(), str(n).encode()] for n in range(20)
    ]
    # The first call goes alone; the 19 queued while it was on its way go in the next write.
    assert used <= 2
    assert calls.calls == 21 and calls.pipelines <= 3


def test_an_error_reply_reaches_only_its_own_caller(redis_prefix: str) -> None:
    async def go() -> list[Any]:
        client = redis.asyncio.Redis.from_url(URL)
        script = client.register_script(ECHO)
        calls = script_calls(client)
        found = await asyncio.gather(
            calls.run(script, [f"{redis_prefix}a"], ["one", 1]),
            calls.run(script, [f"{redis_prefix}b"], ["fail", 2]),
            calls.run(script, [f"{redis_prefix}c"], ["three", 3]),
            return_exceptions=True,
        )
        await client.aclose()
        return list(found)

    first, second, third = run(go())
    assert first == [f"{redis_prefix}a".encode(), b"one", b"1"]
    assert isinstance(second, redis.exceptions.ResponseError)
    assert "asked to fail" in str(second)
    assert third == [f"{redis_prefix}c".encode(), b"three", b"3"]


def test_a_script_redis_no_longer_holds_is_loaded_again(redis_prefix: str) -> None:
    async def go() -> Any:
        client = redis.asyncio.Redis.from_url(URL)
        # A script of its own (a comment makes its digest unique): flushing it touches nobody.
        script = client.register_script(f"-- {redis_prefix}\n{ECHO}")
        calls = script_calls(client)
        first = await calls.run(script, [f"{redis_prefix}x"], ["x", 1])
        assert await client.script_exists(script.sha) == [True]
        await client.script_flush()
        again = await calls.run(script, [f"{redis_prefix}y"], ["y", 2])
        await client.aclose()
        return first, again

    first, again = run(go())
    assert first == [f"{redis_prefix}x".encode(), b"x", b"1"]
    assert again == [f"{redis_prefix}y".encode(), b"y", b"2"]


def test_when_redis_cannot_be_reached_every_caller_gets_the_error() -> None:
    async def go() -> list[Any]:
        away = redis.asyncio.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
        script = away.register_script(ECHO)
        calls = script_calls(away)
        found = await asyncio.gather(
            *(calls.run(script, ["k"], ["v", n]) for n in range(3)), return_exceptions=True
        )
        await away.aclose()
        return list(found)

    found = run(go())
    assert len(found) == 3
    assert all(isinstance(f, redis.exceptions.ConnectionError) for f in found)


def test_arguments_are_bytes_text_or_whole_numbers(redis_prefix: str) -> None:
    async def go() -> Any:
        client = redis.asyncio.Redis.from_url(URL)
        script = client.register_script(ECHO)
        calls = script_calls(client)
        reply = await calls.run(script, [f"{redis_prefix}é".encode()], ["naïve", -12])
        with pytest.raises(TypeError, match="bytes, str or int, not float"):
            await calls.run(script, [f"{redis_prefix}f"], ["v", 1.5])
        with pytest.raises(TypeError, match="not bool"):
            await calls.run(script, [f"{redis_prefix}g"], ["v", True])
        await client.aclose()
        return reply

    assert run(go()) == [f"{redis_prefix}é".encode(), "naïve".encode(), b"-12"]


def test_every_store_on_a_client_shares_its_calls() -> None:
    first = redis.asyncio.Redis.from_url(URL)
    second = redis.asyncio.Redis.from_url(URL)
    assert script_calls(first) is script_calls(first)
    assert script_calls(first) is not script_calls(second)


def test_calls_on_a_second_event_loop_get_a_connection_of_their_own(redis_prefix: str) -> None:
    client = redis.asyncio.Redis.from_url(URL)
    script = client.register_script(ECHO)
    calls = script_calls(client)
    first = run(calls.run(script, [f"{redis_prefix}one"], ["a", 1]))
    second = run(calls.run(script, [f"{redis_prefix}two"], ["b", 2]))  # another loop
    assert first == [f"{redis_prefix}one".encode(), b"a", b"1"]
    assert second == [f"{redis_prefix}two".encode(), b"b", b"2"]

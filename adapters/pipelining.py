"""Scripts called at the same time reach Redis together: one pipeline, one write, one read.

    caller ─ await calls.run(script, keys, args) ─▶ queued ─┐
    caller ─ await calls.run(script, keys, args) ─▶ queued ─┤  one flush at a time: all queued
    ...                                                     ├─ EVALSHA … EVALSHA as a pipeline
                                                            ┘  (no transaction), each reply to
                                                               its caller
While a pipeline is on its way, what callers queue waits for the next one, so under load the
batches grow by themselves and an idle server still sends a lone call at once (on the next
turn of the event loop). This is how a busy event path spends one round trip for several
events: with uvloop, a script call through redis-py costs about 90 µs of CPU on its own and
about 35 µs in a pipeline of four (docs/decisions.md). Each script stays atomic on its own;
nothing makes two callers' scripts one transaction.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio
from redis.commands.core import AsyncScript

# A queued call: the script, its keys and arguments, the command as sent, its caller.
_Call = tuple[AsyncScript, Sequence[Any], Sequence[Any], bytes, "asyncio.Future[Any]"]


class ScriptCalls:
    """Runs script calls for one Redis client, the calls queued together in one pipeline.

    The pipelines go one at a time on a connection of their own (made with the client's
    settings), so none is taken from the client's pool and given back for each, and one
    timeout (the client's command timeout) bounds each round trip rather than each reply."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._client: Any = client
        self._queued: list[_Call] = []
        self._flushing = False
        self._connection: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the one the connection is on
        self._timeout: float | None = client.connection_pool.connection_kwargs.get("socket_timeout")
        self.pipelines = 0  # how many pipelines were sent
        self.calls = 0  # how many calls they held

    async def run(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run ``script`` once, with the calls queued beside it; its reply, or its error."""
        command = _evalsha(script.sha, keys, args)  # a bad argument fails this call alone
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued.append((script, keys, args, command, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._queued:
                calls, self._queued = self._queued, []
                await self._send(calls)
        finally:
            self._flushing = False

    async def _send(self, calls: list[_Call]) -> None:
        try:
            replies = await self._round_trip(calls)
        except BaseException as exc:  # the round trip failed: every caller gets the error
            for *_, future in calls:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        self.pipelines += 1
        self.calls += len(calls)
        for (script, keys, args, _, future), reply in zip(calls, replies, strict=True):
            if future.done():  # its caller stopped waiting
                continue
            if isinstance(reply, redis.exceptions.NoScriptError):
                # Redis restarted or its scripts were flushed: load it and run this one alone.
                try:
                    future.set_result(await script(keys=list(keys), args=list(args)))
                except Exception as exc:
                    future.set_exception(exc)
            elif isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _round_trip(self, calls: list[_Call]) -> list[Any]:
        """One write holding every call, then each reply in turn (an error reply as its
        exception), on this object's connection, within the client's command timeout."""
        connection = self._connected()
        async with asyncio.timeout(self._timeout):
            return await _exchange(connection, [command for _, _, _, command, _ in calls])

    def _connected(self) -> Any:
        """This object's connection (it connects on its first write), made again on another
        event loop than the one it was made on."""
        loop = asyncio.get_running_loop()
        if self._connection is None or self._loop is not loop:
            pool = self._client.connection_pool
            # The pool's settings (address, credentials, database), without a timeout per
            # reply: the round trip has one.
            settings = {**pool.connection_kwargs, "socket_timeout": None}
            self._connection = pool.connection_class(**settings)
            self._loop = loop
        return self._connection


async def round_trip(client: redis.asyncio.Redis, commands: Sequence[bytes]) -> list[Any]:
    """Send packed ``commands`` in one write on one pooled connection of ``client``; their
    replies in order, an error reply as its exception (raised: only a failed round trip)."""
    pool: Any = client.connection_pool
    connection = await pool.get_connection()
    try:
        return await _exchange(connection, commands)
    finally:
        await pool.release(connection)


async def _exchange(connection: Any, commands: Sequence[bytes]) -> list[Any]:
    """Write ``commands`` at once on ``connection`` and read a reply for each, an error reply
    as its exception. A failed exchange disconnects it (a reply may be half read) and raises;
    the next write connects afresh."""
    replies: list[Any] = []
    try:
        await connection.send_packed_command(b"".join(commands), check_health=False)
        for _ in commands:
            try:
                replies.append(await connection.read_response())
            except redis.exceptions.ResponseError as exc:  # this command's error only
                replies.append(exc)
    except BaseException:
        await connection.disconnect(nowait=True)
        raise
    return replies


def pack(*parts: bytes | str | int) -> bytes:
    """One command in the Redis protocol (RESP), ready to send: its name, then arguments.

    redis-py packs each argument through its encoder, which cost more per call than the
    script itself on the event path; the arguments here are only bytes, str and int."""
    out = [b"*%d\r\n" % len(parts)]
    for value in parts:
        if isinstance(value, str):  # the most common first
            data = value.encode()
        elif isinstance(value, bytes):
            data = value
        elif isinstance(value, int) and not isinstance(value, bool):
            data = b"%d" % value
        else:
            raise TypeError(
                f"a command argument must be bytes, str or int, not {type(value).__name__}"
            )
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _evalsha(sha: str, keys: Sequence[Any], args: Sequence[Any]) -> bytes:
    """``EVALSHA sha numkeys keys… args…``, packed."""
    return pack("EVALSHA", sha, len(keys), *keys, *args)


_SHARED: weakref.WeakKeyDictionary[Any, ScriptCalls] = weakref.WeakKeyDictionary()


def script_calls(client: redis.asyncio.Redis) -> ScriptCalls:
    """The one ``ScriptCalls`` of ``client``: every store on a client shares its pipelines."""
    found = _SHARED.get(client)
    if found is None:
        found = _SHARED[client] = ScriptCalls(client)
    return found

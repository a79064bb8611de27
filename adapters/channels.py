"""Alert fan-out through Litestar channels: in process (the embedded default) or between
instances on Redis streams, each adjusted for desktops that reconnect.

In process: Litestar's memory backend forgets a channel's history when its last subscriber
leaves, which is exactly when a desktop that reconnects needs it; here the history stays
(the last ``history`` messages of each of the most recent ``channels`` channels).

On Redis: Litestar's stream backend lets a failed publish end its publishing task (every later
alert would wait in memory for ever) and a failed read end its reading task. Here a publish is
retried with backoff until Redis takes it, so alerts raised during an outage queue in order and
are
delivered when Redis returns; the reader reconnects the same way.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Iterable
from typing import Any

import redis
import structlog
from cachetools import LRUCache
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.channels.backends.redis import RedisChannelsStreamBackend

log = structlog.get_logger("frontline")
_FAILURES = (redis.RedisError, OSError, asyncio.TimeoutError)


class KeptHistoryMemoryBackend(MemoryChannelsBackend):
    def __init__(self, history: int, channels: int = 10_000) -> None:
        super().__init__(history=history)
        self._history: Any = _Histories(channels, history)

    async def unsubscribe(self, channels: Iterable[str]) -> None:
        self._channels -= set(channels)  # the history stays


class _Histories(LRUCache[str, deque[bytes]]):
    """A bounded ``defaultdict(deque)``: the least recently used channel's history goes first."""

    def __init__(self, channels: int, history: int) -> None:
        super().__init__(channels)
        self._length = history

    def __missing__(self, channel: str) -> deque[bytes]:
        found: deque[bytes] = deque(maxlen=self._length)
        self[channel] = found
        return found


class ResilientStreamBackend(RedisChannelsStreamBackend):
    max_delay = 2.0

    async def publish(self, data: bytes, channels: Iterable[str]) -> None:
        channels = list(channels)
        delay = 0.05
        while True:
            try:
                await super().publish(data, channels)
                return
            except _FAILURES as exc:
                log.warning("alert not yet published; retrying", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_delay)

    async def stream_events(self) -> AsyncGenerator[tuple[str, Any], None]:
        delay = 0.05
        while True:
            try:
                async for item in super().stream_events():
                    delay = 0.05
                    yield item
            except _FAILURES as exc:
                log.warning("alert stream lost; reconnecting", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_delay)

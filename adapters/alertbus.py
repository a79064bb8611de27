"""The alert bus: alerts carried to the desktops of the agent they are for, in process (the
embedded default) or between instances on Redis streams.

    publish(agent, alert) ── queued; never waits ──▶ in process: every subscription of the
                                                     agent, and the agent's history
                                                     on Redis: one pipeline per batch of
                                                     queued alerts (XADD to the agent's stream)
    reader (Redis) ── one XREAD for every followed stream, from where it left off ──▶
                      everything read handed to the agent's subscriptions in one go
    subscription ── take(): every message queued since the last take, one wake-up

Nothing is dropped silently. A stream keeps ``retain`` of alerts (by age: entries older than
that are trimmed as new ones arrive), so a reader that falls behind resumes from its position
and reads everything it missed. A subscription that is not read (a desktop that stalled)
holds up to ``backlog`` messages; past that the oldest go, and each one dropped is counted
(``dropped``) and logged with its id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import msgspec
import redis
import structlog
from cachetools import LRUCache

from adapters.pipelining import pack, round_trip
from adapters.ports import AlertSubscription

log = structlog.get_logger("frontline")
_FAILURES = (redis.RedisError, OSError, asyncio.TimeoutError)
_ID = msgspec.json.Decoder(dict[str, Any])

BACKLOG = 10_000  # messages a subscription holds for a reader that does not take them


class Subscription:
    """One reader's queue of an agent's messages: history first, then live ones."""

    def __init__(self, agent_id: str, bus: _Drops, backlog: int = BACKLOG) -> None:
        self.agent_id = agent_id
        self._bus = bus
        self._backlog = backlog
        self._items: deque[bytes] = deque()
        self._ready = asyncio.Event()
        self.closed = False

    def close(self) -> None:
        """End the subscription: a ``take`` under way returns at once (the server stops)."""
        self.closed = True
        self._ready.set()

    def put(self, items: Iterable[bytes]) -> None:
        self._items.extend(items)
        excess = len(self._items) - self._backlog
        if excess > 0:
            dropped = [self._items.popleft() for _ in range(excess)]
            self._bus.dropped_for(self.agent_id, dropped)
        if self._items:
            self._ready.set()

    async def take(self, timeout: float) -> list[bytes]:
        """Every message queued since the last take, waiting up to ``timeout`` seconds for one
        (an empty list: none came)."""
        if not self._items and not self.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout)
        items = list(self._items)
        self._items.clear()
        if not self.closed:
            self._ready.clear()
        return items


class _Drops:
    """Counting and logging what a subscription could not keep."""

    def __init__(self) -> None:
        self.dropped = 0
        self.published = 0

    def dropped_for(self, agent_id: str, messages: list[bytes]) -> None:
        self.dropped += len(messages)
        ids = []
        for raw in messages:
            try:
                ids.append(str(_ID.decode(raw).get("id")))
            except msgspec.DecodeError:
                ids.append("?")
        log.error(
            "alerts dropped: a desktop stream did not read them",
            agent_id=agent_id,
            count=len(messages),
            alert_ids=ids,
        )


class MemoryAlertBus(_Drops):
    """One process: messages go straight to the agent's subscriptions; the last ``history``
    of each of the ``agents`` most recently alerted agents are kept for reconnecting desktops.
    """

    def __init__(self, history: int, agents: int = 10_000) -> None:
        super().__init__()
        self.history = history
        self._history: LRUCache[str, deque[bytes]] = LRUCache(agents)
        self._subscriptions: dict[str, set[Subscription]] = {}

    def publish(self, agent_id: str, message: bytes) -> None:
        kept = self._history.get(agent_id)
        if kept is None:
            kept = self._history[agent_id] = deque(maxlen=self.history)
        kept.append(message)
        self.published += 1
        for subscription in self._subscriptions.get(agent_id, ()):
            subscription.put((message,))

    async def subscribe(self, agent_id: str) -> Subscription:
        subscription = Subscription(agent_id, self)
        subscription.put(self._history.get(agent_id, ()))
        self._subscriptions.setdefault(agent_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: AlertSubscription) -> None:
        found = self._subscriptions.get(subscription.agent_id)
        if found is not None:
            found.discard(subscription)
            if not found:
                del self._subscriptions[subscription.agent_id]

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class RedisAlertBus(_Drops):
    """Each agent's alerts on a Redis stream ``<prefix>alerts:<agent>``, shared by every
    instance. Publishing is batched (one pipeline for whatever is queued); one reader per
    instance follows the streams of the agents it has desktops for."""

    max_delay = 2.0  # seconds between attempts while Redis is away
    block_ms = 200  # how long an XREAD waits; a stream subscribed meanwhile joins after it

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "frontline:",
        history: int = 100,
        retain: timedelta = timedelta(hours=12),
    ) -> None:
        super().__init__()
        self._redis = client  # with no command timeout: XREAD blocks on purpose
        self._prefix = f"{prefix}alerts:"
        self.history = history
        self._retain_ms = int(retain.total_seconds() * 1000)
        self._outbox: list[tuple[str, bytes]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._positions: dict[str, bytes] = {}  # stream key → the last entry id read
        self._stopping = False

    def _key(self, agent_id: str) -> str:
        return self._prefix + agent_id

    # -- publishing ------------------------------------------------------------------------

    def publish(self, agent_id: str, message: bytes) -> None:
        self._outbox.append((agent_id, message))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Send what is queued, a pipeline at a time, in order; retried until Redis takes it."""
        delay = 0.05
        while self._outbox:
            batch, self._outbox = self._outbox, []
            while True:
                try:
                    await self._send(batch)
                    self.published += len(batch)
                    delay = 0.05
                    break
                except _FAILURES as exc:
                    if self._stopping:
                        log.error(
                            "alerts not published: Redis did not take them before shutdown",
                            count=len(batch),
                        )
                        return
                    log.warning(
                        "alerts not yet published; retrying", error=str(exc), retry_in=delay
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.max_delay)

    async def _send(self, batch: list[tuple[str, bytes]]) -> None:
        # Entries older than ``retain`` go as new ones arrive (MINID, approximately), and the
        # stream itself expires ``retain`` after its last alert.
        oldest = f"{max(0, int(time.time() * 1000) - self._retain_ms)}-0"
        commands = []
        keys = set()
        for agent_id, message in batch:
            key = self._key(agent_id)
            keys.add(key)
            commands.append(pack("XADD", key, "MINID", "~", oldest, "*", "data", message))
        commands += [pack("PEXPIRE", key, self._retain_ms) for key in keys]
        for reply in await round_trip(self._redis, commands):
            if isinstance(reply, Exception):  # sent again, whole: a desktop skips repeats
                raise reply

    # -- reading ---------------------------------------------------------------------------

    async def subscribe(self, agent_id: str) -> Subscription:
        """The agent's last ``history`` alerts, then everything published after them."""
        subscription = Subscription(agent_id, self)
        key = self._key(agent_id)
        latest: list[tuple[bytes, dict[bytes, bytes]]] = []
        # Without the history (Redis away), reading starts two seconds back, as a stream
        # without a cursor does: not from the start of twelve hours of alerts.
        start = f"{int(time.time() * 1000) - 2000}-0".encode()
        with contextlib.suppress(*_FAILURES):
            latest = await self._redis.xrevrange(key, count=self.history)
            start = latest[0][0] if latest else b"0-0"
        # A stream the reader already follows keeps its position; the history may repeat
        # what it then reads, which the desktop stream skips by id.
        self._positions.setdefault(key, start)
        subscription.put(entry[b"data"] for _, entry in reversed(latest))
        self._subscriptions.setdefault(agent_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: AlertSubscription) -> None:
        found = self._subscriptions.get(subscription.agent_id)
        if found is None:
            return
        found.discard(subscription)
        if not found:
            del self._subscriptions[subscription.agent_id]
            self._positions.pop(self._key(subscription.agent_id), None)

    async def start(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def stop(self) -> None:
        """Publish what is queued (a few seconds at most), then stop reading."""
        self._stopping = True
        if self._flushing is not None and not self._flushing.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._flushing), 5.0)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _read(self) -> None:
        delay = 0.05
        while True:
            if not self._positions:
                await asyncio.sleep(self.block_ms / 1000)
                continue
            positions = dict(self._positions)
            read = pack("XREAD", "BLOCK", self.block_ms, "STREAMS", *positions, *positions.values())
            try:
                (found,) = await round_trip(self._redis, [read])
                if isinstance(found, Exception):
                    raise found
                delay = 0.05
            except _FAILURES as exc:
                log.warning("alert stream lost; reconnecting", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_delay)
                continue
            # [[stream, [[entry id, [field, value, ...]], ...]], ...], or nil after BLOCK ms
            for raw_key, entries in found or ():
                key = raw_key.decode()
                if key not in self._positions:
                    continue  # nobody follows it any more
                self._positions[key] = entries[-1][0]
                agent_id = key[len(self._prefix) :]
                messages = [_data(fields) for _, fields in entries]
                for subscription in self._subscriptions.get(agent_id, ()):
                    subscription.put(messages)


def _data(fields: list[bytes]) -> bytes:
    """The ``data`` value of a stream entry's flat field list (the only field published)."""
    if fields[0] == b"data":
        return fields[1]
    return dict(zip(fields[::2], fields[1::2], strict=True))[b"data"]

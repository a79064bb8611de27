"""The ports on Redis: what several Frontline instances share.

    <prefix>context:<customer>               JSON {"v": values, "s": sources, "a": as_of}
    <prefix>events:<customer>:<type>         sorted set: one member per event, scored by its time
    <prefix>interaction:<id>                 JSON of an Interaction (expires after a day)
    <prefix>customer-interactions:<customer> set of the customer's live interaction ids
    <prefix>alert-claim:<interaction>:<rule> present while a repeat of that alert is suppressed
    <prefix>alert:<alert_id>                 JSON: who an alert went to (for acks)
    <prefix>alert-acked:<alert_id>           present once the alert was answered
    <prefix>escalation-claim:<interaction>:<rule>  present once that escalation rule was raised
                                             in the interaction (for as long as it lives)
    <prefix>rulesets                         set of ruleset names
    <prefix>ruleset:<name>:digests           hash digest → revision
    <prefix>ruleset:<name>:revision:<n>      JSON {"digest", "text"}
    <prefix>ruleset:<name>:routing           JSON Routing
    <prefix>ruleset:<name>:reviews           hash revision → JSON Review (revisions deployed
                                             while approval was required)
    channels <prefix>context-changed, <prefix>rulesets-changed: the name of what changed

Reads of context go through an in-process TTL cache first; a write anywhere publishes the
customer id and every instance drops its cached copy (``Invalidations``). When Redis cannot
be reached, a read is served from the last copy this process saw, marked ``degraded``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import msgspec
import redis
import redis.asyncio
import structlog
from cachetools import LRUCache, TTLCache

from adapters.memory import written
from adapters.pipelining import pack, round_trip, script_calls
from adapters.ports import (
    AlertClaim,
    AlertInputs,
    AlertLimit,
    CustomerContext,
    DecisionInputs,
    Interaction,
    StoreUnavailable,
)
from engine import HISTORY_KEPT, Provenance, Review, Routing, StoreCorrupt, StoredRevision
from engine.durations import duration_ms

log = structlog.get_logger("frontline")

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_FAILURES = (redis.RedisError, OSError, asyncio.TimeoutError)


class Missing:
    """Not in the cache: the caller reads Redis."""


MISSING = Missing()


@contextlib.contextmanager
def unavailable_as(what: str) -> Iterator[None]:
    """Turn Redis failures into the ports' ``StoreUnavailable``, naming what failed."""
    try:
        yield
    except _FAILURES as exc:
        raise StoreUnavailable(f"Redis is unreachable ({what}): {exc}") from exc


class Breaker:
    """Stops calling a failing dependency for ``cooldown`` seconds after a failure, so that a
    dead Redis or source costs each request nothing instead of a connect attempt."""

    def __init__(self, cooldown: float = 1.0) -> None:
        self.cooldown = cooldown
        self._open_until = 0.0

    @property
    def open(self) -> bool:
        return time.monotonic() < self._open_until

    def failed(self) -> None:
        self._open_until = time.monotonic() + self.cooldown

    def succeeded(self) -> None:
        self._open_until = 0.0


# -- context -----------------------------------------------------------------------------------


class RedisContextStore:
    """Customer contexts in Redis, behind an in-process TTL cache of their encoded bytes.

    Every read decodes a fresh copy (a 1 KB context in ~3 µs), so callers may keep or change
    what they get. ``ttl`` bounds how long Redis keeps a context nobody writes (None: for ever).
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        prefix: str = "frontline:",
        cache_ttl: float = 5.0,
        cache_size: int = 100_000,
        ttl: timedelta | None = None,
    ) -> None:
        self._redis: Any = client  # redis-py types results as "Awaitable | value"
        self._prefix = prefix
        self._fresh: TTLCache[str, bytes] = TTLCache(cache_size, cache_ttl)
        self._last: LRUCache[str, bytes] = LRUCache(cache_size)
        self._ttl = int(ttl.total_seconds() * 1000) if ttl else None
        self.channel = f"{prefix}context-changed"
        self.breaker = Breaker()
        self.cache_hits = 0
        self.cache_misses = 0

    def _key(self, customer_id: str) -> str:
        return f"{self._prefix}context:{customer_id}"

    async def get(self, customer_id: str) -> CustomerContext | None:
        found = self.cached(customer_id)
        if not isinstance(found, Missing):
            return found
        if self.breaker.open:
            return self._degraded(customer_id)
        try:
            raw = await self._redis.get(self._key(customer_id))
        except _FAILURES as exc:
            return self.unreachable(customer_id, exc)
        return self.fetched(customer_id, raw)

    # The two halves of ``get`` around the Redis read, for reads that share a round trip.

    def cached(self, customer_id: str) -> CustomerContext | Missing | None:
        """The cached context (None: cached as absent), or MISSING: ask Redis for its key."""
        raw = self._fresh.get(customer_id)
        if raw is not None:
            self.cache_hits += 1
            return _context(customer_id, raw) if raw else None
        self.cache_misses += 1
        return MISSING

    def fetched(self, customer_id: str, raw: bytes | None) -> CustomerContext | None:
        """What Redis answered for the customer's key, cached."""
        self.breaker.succeeded()
        if raw is None:
            # Cached as absent too (b""): a customer with no context is asked about as often
            # as one with, and a write anywhere drops the entry just the same.
            self._fresh[customer_id] = b""
            return None
        self._fresh[customer_id] = raw
        self._last[customer_id] = raw
        return _context(customer_id, raw)

    def unreachable(self, customer_id: str, exc: BaseException) -> CustomerContext:
        """Redis did not answer: the last copy this process saw, marked degraded."""
        self.breaker.failed()
        log.warning("context store unreachable", error=str(exc))
        return self._degraded(customer_id)

    def _degraded(self, customer_id: str) -> CustomerContext:
        raw = self._last.get(customer_id)
        if raw is None:
            return CustomerContext(customer_id, {}, {}, {}, degraded=True)
        found = _context(customer_id, raw)
        return CustomerContext(customer_id, found.values, found.sources, found.as_of, True)

    def invalidate(self, customer_id: str | None = None) -> None:
        """Drop the cached copy of one customer (all, with None): another instance wrote."""
        if customer_id is None:
            self._fresh.clear()
        else:
            self._fresh.pop(customer_id, None)

    async def put(
        self, customer_id: str, values: dict[str, Any], source: str | None, as_of: str | None
    ) -> CustomerContext:
        stored = written(customer_id, values, source, as_of)
        raw = _encoded(stored)
        with unavailable_as("writing a context"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._key(customer_id), raw, px=self._ttl)
                pipe.publish(self.channel, customer_id)
                await pipe.execute()
        self._remember(customer_id, raw)
        return _context(customer_id, raw)

    async def patch(
        self, customer_id: str, values: dict[str, Any], source: str | None, as_of: str | None
    ) -> CustomerContext:
        key = self._key(customer_id)
        with unavailable_as("writing a context"):
            raw = await self._patch(key, customer_id, values, source, as_of)
        self._remember(customer_id, raw)
        return _context(customer_id, raw)

    async def _patch(
        self,
        key: str,
        customer_id: str,
        values: dict[str, Any],
        source: str | None,
        as_of: str | None,
    ) -> bytes:
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:  # optimistic: retried if another writer changed the key meanwhile
                try:
                    await pipe.watch(key)
                    current = await pipe.get(key)
                    found = _context(customer_id, current) if current is not None else None
                    stored = written(customer_id, values, source, as_of, found)
                    raw = _encoded(stored)
                    pipe.multi()
                    pipe.set(key, raw, px=self._ttl)
                    pipe.publish(self.channel, customer_id)
                    await pipe.execute()
                    return raw
                except redis.WatchError:
                    continue

    def _remember(self, customer_id: str, raw: bytes) -> None:
        self._fresh[customer_id] = raw
        self._last[customer_id] = raw


def _encoded(context: CustomerContext) -> bytes:
    return _encode({"v": context.values, "s": context.sources, "a": context.as_of})


def _context(customer_id: str, raw: bytes) -> CustomerContext:
    data = _decode(raw)
    return CustomerContext(customer_id, data["v"], data["s"], data["a"])


# -- event counters ----------------------------------------------------------------------------


class RedisEventCounters:
    """One sorted set per customer and event type, scored by event time in milliseconds.

    Each write trims events older than ``horizon`` and sets the key to expire ``horizon``
    after its newest event, so counts need no sweeper and idle customers cost nothing.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        prefix: str = "frontline:",
        horizon: timedelta = timedelta(days=90),
    ) -> None:
        self._redis: Any = client  # redis-py types results as "Awaitable | value"
        self._prefix = prefix
        self._horizon_ms = int(horizon.total_seconds() * 1000)
        self.breaker = Breaker()
        # Members must differ for events of the same millisecond: a counter, and this
        # process's random tag for events recorded by other instances in that millisecond.
        self._serial = itertools.count()
        self._instance = os.urandom(6).hex()

    def _key(self, customer_id: str, event_type: str) -> str:
        return f"{self._prefix}events:{customer_id}:{event_type}"

    async def record(self, customer_id: str, event_type: str, at: datetime) -> None:
        key = self._key(customer_id, event_type)
        member, score, older = self.entry(at)
        with unavailable_as("recording an event"):
            # Not a transaction: each step stands on its own (a trim or expiry missed is done
            # by the next event), and MULTI/EXEC would add two commands to every event.
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zadd(key, {member: score})
                pipe.zremrangebyscore(key, "-inf", older)
                pipe.pexpire(key, self._horizon_ms)
                await pipe.execute()

    def entry(self, at: datetime) -> tuple[str, int, str]:
        """An event at ``at`` as its sorted set holds it: (member, score), and the bound
        below which older events are trimmed."""
        score = int(at.timestamp() * 1000)
        member = f"{score}:{next(self._serial)}:{self._instance}"
        return member, score, f"({score - self._horizon_ms}"

    async def counts(
        self, customer_id: str, needed: frozenset[tuple[str, str]], now: datetime
    ) -> dict[str, dict[str, int]]:
        if self.breaker.open:
            raise StoreUnavailable("Redis is unreachable (counting events)")
        pairs = sorted(needed)
        windows = self.windows(customer_id, pairs, now)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for at in range(0, len(windows), 3):
                    pipe.zcount(*windows[at : at + 3])
                found = await pipe.execute()
        except _FAILURES as exc:
            self.breaker.failed()
            raise StoreUnavailable(f"Redis is unreachable (counting events): {exc}") from exc
        return self.counted(pairs, found)

    # What a read sharing a round trip (a script) sends for the counters, and makes of them.

    def windows(
        self, customer_id: str, pairs: list[tuple[str, str]], now: datetime
    ) -> list[str | int]:
        """For each ``(event_type, window)`` of ``pairs``, in order: the counter's key, then
        the window's start and end (milliseconds), one flat list as a script takes them."""
        end = int(now.timestamp() * 1000)
        found: list[str | int] = []
        for event_type, window in pairs:
            found += [self._key(customer_id, event_type), end - duration_ms(window), end]
        return found

    def counted(self, pairs: list[tuple[str, str]], found: list[Any]) -> dict[str, dict[str, int]]:
        self.breaker.succeeded()
        out: dict[str, dict[str, int]] = {}
        for (event_type, window), count in zip(pairs, found, strict=True):
            out.setdefault(event_type, {})[window] = int(count)
        return out


# -- interactions ------------------------------------------------------------------------------


# The ids in a customer's set of interactions, and each one's JSON (false where it expired).
_LIVE_INTERACTIONS = """
local ids = redis.call('SMEMBERS', KEYS[1])
if #ids == 0 then return {{}, {}} end
local keys = {}
for i, id in ipairs(ids) do keys[i] = ARGV[1] .. id end
return {ids, redis.call('MGET', unpack(keys))}
"""


class RedisInteractions:
    """Live interactions, readable by every instance; one left open expires after ``ttl``.

    Interactions never change once started, so each instance keeps the ones it started or
    read: while Redis is away, decisions in those interactions go on, and an interaction
    started meanwhile is kept here and written to Redis once it answers again.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        prefix: str = "frontline:",
        ttl: timedelta = timedelta(hours=24),
        kept: int = 100_000,
    ) -> None:
        self._redis: Any = client  # redis-py types results as "Awaitable | value"
        self._prefix = prefix
        self._ttl = int(ttl.total_seconds() * 1000)
        self._kept: LRUCache[str, Interaction] = LRUCache(kept)
        self._raw: LRUCache[str, bytes] = LRUCache(kept)  # the JSON each kept one was read from
        self._unwritten: dict[str, Interaction] = {}
        self.breaker = Breaker()
        self._live = self._redis.register_script(_LIVE_INTERACTIONS)

    def _key(self, interaction_id: str) -> str:
        return f"{self._prefix}interaction:{interaction_id}"

    def _customer(self, customer_id: str) -> str:
        return f"{self._prefix}customer-interactions:{customer_id}"

    async def start(self, interaction: Interaction) -> None:
        self._kept[interaction.interaction_id] = interaction
        self._raw.pop(interaction.interaction_id, None)
        if self.breaker.open:
            self._unwritten[interaction.interaction_id] = interaction
            return
        try:
            await self._write([interaction, *self._unwritten.values()])
        except _FAILURES as exc:
            self.breaker.failed()
            log.warning("interaction kept in process until Redis answers", error=str(exc))
            self._unwritten[interaction.interaction_id] = interaction
            return
        self.breaker.succeeded()
        self._unwritten.clear()

    async def _write(self, interactions: list[Interaction]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            for interaction in interactions:
                raw = _encode(asdict(interaction))
                pipe.set(self._key(interaction.interaction_id), raw, px=self._ttl)
                pipe.sadd(self._customer(interaction.customer_id), interaction.interaction_id)
                pipe.pexpire(self._customer(interaction.customer_id), self._ttl)
            await pipe.execute()

    async def _catch_up(self) -> None:
        """Write the interactions started while Redis was away."""
        if self._unwritten and not self.breaker.open:
            pending = list(self._unwritten.values())
            await self._write(pending)
            for interaction in pending:
                self._unwritten.pop(interaction.interaction_id, None)
            log.info("interactions written to Redis after an outage", count=len(pending))

    async def get(self, interaction_id: str) -> Interaction | None:
        if self.breaker.open:
            return self._known(interaction_id)
        try:
            await self._catch_up()
            raw = await self._redis.get(self._key(interaction_id))
        except _FAILURES:
            return self.unreachable(interaction_id)
        return self.fetched(interaction_id, raw)

    # The halves of ``get`` around the Redis read, for reads that share a round trip (after
    # ``_catch_up``, which has nothing to do unless Redis was away).

    def fetched(self, interaction_id: str, raw: bytes | None) -> Interaction | None:
        self.breaker.succeeded()
        if raw is None:
            self._kept.pop(interaction_id, None)  # ended, perhaps through another instance
            self._raw.pop(interaction_id, None)
            return None
        kept = self._kept.get(interaction_id)
        if kept is not None and self._raw.get(interaction_id) == raw:
            return kept  # unchanged since it was last read: not decoded again
        found = Interaction(**_decode(raw))
        self._kept[interaction_id] = found
        self._raw[interaction_id] = raw
        return found

    def unreachable(self, interaction_id: str) -> Interaction:
        """Redis did not answer: the interaction as this process knows it, if it does."""
        self.breaker.failed()
        return self._known(interaction_id)

    def _known(self, interaction_id: str) -> Interaction:
        found = self._kept.get(interaction_id)
        if found is None:
            raise StoreUnavailable("Redis is unreachable (reading an interaction)")
        return found

    async def end(self, interaction_id: str) -> Interaction | None:
        self._unwritten.pop(interaction_id, None)
        self._kept.pop(interaction_id, None)
        self._raw.pop(interaction_id, None)
        with unavailable_as("ending an interaction"):
            raw = await self._redis.getdel(self._key(interaction_id))
            if raw is None:
                return None
            found = Interaction(**_decode(raw))
            await self._redis.srem(self._customer(found.customer_id), interaction_id)
        return found

    async def for_customer(self, customer_id: str) -> list[Interaction]:
        with unavailable_as("listing interactions"):
            await self._catch_up()
            # One round trip: the customer's interaction ids and each one's JSON.
            ids, found = await self._live(
                keys=[self._customer(customer_id)], args=[f"{self._prefix}interaction:"]
            )
            gone = [i for i, raw in zip(ids, found, strict=True) if not raw]
            if gone:  # expired without an end: forget them
                await self._redis.srem(self._customer(customer_id), *gone)
        pairs = sorted(zip(ids, found, strict=True))
        return [Interaction(**_decode(raw)) for _, raw in pairs if raw]


# -- a decision's reads ------------------------------------------------------------------------


# What a decision reads, in one script (sent with other callers' scripts): the context (if
# asked), the interaction (if asked), then a ZCOUNT per counter. KEYS: the context and the
# interaction. ARGV: ask the context, ask the interaction, the counters' number, then per
# counter its key, start and end (milliseconds).
_DECISION_INPUTS = """
local context, interaction = false, false
if ARGV[1] == '1' then context = redis.call('GET', KEYS[1]) end
if ARGV[2] == '1' then interaction = redis.call('GET', KEYS[2]) end
local counts = {}
for i = 0, tonumber(ARGV[3]) - 1 do
  counts[i + 1] = redis.call('ZCOUNT', ARGV[4 + 3 * i], ARGV[5 + 3 * i], ARGV[6 + 3 * i])
end
return {context, interaction, counts}
"""


class RedisDecisionReads:
    """A decision's reads in one round trip: the context (unless cached), the counters its
    revision needs and the interaction it is pinned to, as one pipeline. Each store keeps its
    own cache, breaker and fallback; a failed round trip fails each part as its own read would.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        contexts: RedisContextStore,
        counters: RedisEventCounters,
        interactions: RedisInteractions,
    ) -> None:
        self._redis: Any = client
        self.contexts = contexts
        self.counters = counters
        self.interactions = interactions
        self._alerts = _Alerts(self)
        self._script = self._redis.register_script(_DECISION_INPUTS)
        self._calls = script_calls(client)

    async def for_alerts(
        self,
        customer_id: str,
        counters: frozenset[tuple[str, str]],
        now: datetime,
        *,
        event: tuple[str, datetime] | None = None,
    ) -> AlertInputs:
        return await self._alerts(customer_id, counters, now, event)

    async def read(
        self,
        customer_id: str,
        counters: frozenset[tuple[str, str]],
        interaction_id: str | None,
        now: datetime,
    ) -> DecisionInputs:
        contexts, events, interactions = self.contexts, self.counters, self.interactions
        context = contexts.cached(customer_id)
        ask_context = context is MISSING and not contexts.breaker.open
        if context is MISSING and not ask_context:
            context = contexts._degraded(customer_id)
        ask_counters = bool(counters) and not events.breaker.open
        ask_interaction = interaction_id is not None and not interactions.breaker.open
        if ask_interaction:
            with contextlib.suppress(*_FAILURES):
                await interactions._catch_up()  # nothing to do unless Redis was away
        raw_context = raw_interaction = None
        counts: list[Any] = []
        failure: BaseException | None = None
        pairs = sorted(counters) if ask_counters else []
        if ask_context or ask_counters or ask_interaction:
            args: list[Any] = ["1" if ask_context else "0", "1" if ask_interaction else "0"]
            args += [len(pairs), *events.windows(customer_id, pairs, now)]
            keys = [contexts._key(customer_id), interactions._key(interaction_id or "")]
            try:
                raw_context, raw_interaction, counts = await self._calls.run(
                    self._script, keys, args
                )
            except _FAILURES as exc:
                failure = exc
        if ask_context:
            context = (
                contexts.fetched(customer_id, raw_context)
                if failure is None
                else contexts.unreachable(customer_id, failure)
            )
        counted: dict[str, dict[str, int]] | None = None
        if ask_counters and failure is None:
            counted = events.counted(pairs, counts)
        elif ask_counters:
            events.breaker.failed()
        interaction = None
        if interaction_id is not None:
            if not ask_interaction:
                interaction = interactions._known(interaction_id)
            elif failure is None:
                interaction = interactions.fetched(interaction_id, raw_interaction)
            else:
                interaction = interactions.unreachable(interaction_id)
        assert not isinstance(context, Missing)
        return DecisionInputs(
            context,
            counted,
            counters_unavailable=bool(counters) and counted is None,
            interaction=interaction,
        )


# What re-evaluating a customer's alert rules reads, after recording the event (if any): the
# customer's interaction ids and each one's JSON, the context (if asked), the counts asked for.
_ALERT_INPUTS = """
if ARGV[1] == '1' then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
local ids = redis.call('SMEMBERS', KEYS[2])
local found = {}
if #ids > 0 then
  local keys = {}
  for i, id in ipairs(ids) do keys[i] = ARGV[6] .. id end
  found = redis.call('MGET', unpack(keys))
end
local context = false
if ARGV[7] == '1' and #ids > 0 then context = redis.call('GET', KEYS[3]) end
local counts = {}
if #ids > 0 then
  for i = 0, tonumber(ARGV[8]) - 1 do
    counts[i + 1] = redis.call('ZCOUNT', ARGV[9 + 3 * i], ARGV[10 + 3 * i], ARGV[11 + 3 * i])
  end
end
return {ids, found, context, counts}
"""


class _Alerts:
    """``RedisDecisionReads.for_alerts``: one script for an event's whole Redis side."""

    def __init__(self, reads: RedisDecisionReads) -> None:
        self.reads = reads
        self.script = reads._redis.register_script(_ALERT_INPUTS)
        self.calls = script_calls(reads._redis)

    async def __call__(
        self,
        customer_id: str,
        counters: frozenset[tuple[str, str]],
        now: datetime,
        event: tuple[str, datetime] | None,
    ) -> AlertInputs:
        contexts, events, live = self.reads.contexts, self.reads.counters, self.reads.interactions
        args: list[Any] = ["0", "", "0", "0", "0"]
        event_key = ""
        if event is not None:
            event_type, at = event
            event_key = events._key(customer_id, event_type)
            member, score, older = events.entry(at)
            args = ["1", member, score, older, events._horizon_ms]
        context = contexts.cached(customer_id)
        ask_context = isinstance(context, Missing) and not contexts.breaker.open
        pairs = sorted(counters) if not events.breaker.open else []
        args += [live._key(""), "1" if ask_context else "0", len(pairs)]
        args += events.windows(customer_id, pairs, now)
        with unavailable_as("reading for alerts" if event is None else "recording an event"):
            await live._catch_up()
            ids, found, raw_context, counts = await self.calls.run(
                self.script,
                [event_key or "-", live._customer(customer_id), contexts._key(customer_id)],
                args,
            )
        for breaker in (events.breaker, live.breaker):
            breaker.succeeded()
        gone = [i for i, raw in zip(ids, found, strict=True) if not raw]
        if gone:  # expired without an end: forget them
            with contextlib.suppress(*_FAILURES):
                await live._redis.srem(live._customer(customer_id), *gone)
        interactions = [
            live.fetched(i.decode(), raw) for i, raw in sorted(zip(ids, found, strict=True)) if raw
        ]
        if not interactions:
            return AlertInputs([], None, None)
        if ask_context:
            context = contexts.fetched(customer_id, raw_context)
        elif isinstance(context, Missing):
            context = contexts._degraded(customer_id)
        counted = events.counted(pairs, counts) if pairs else None
        return AlertInputs(
            [i for i in interactions if i is not None],
            context,
            counted,
            counters_unavailable=bool(counters) and not pairs,
        )


# -- alerts ------------------------------------------------------------------------------------


# The contact policy of one interaction, weighed for each alert in order (AlertStore.claim
# says what each outcome means). KEYS: the interaction's quiet key and window (a sorted set of
# raised alert ids by time), then per alert its claim, alert and topic keys. ARGV: interval ms,
# ttl ms, whom (JSON), max alerts (0: no limit), window ms, now ms, then per alert its rank,
# whether it has a topic, its id.
_CLAIM_ALERTS = """
local quiet = redis.call('EXISTS', KEYS[1]) == 1
local max, per, now = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local used = 0
if max > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - per)
  used = redis.call('ZCARD', KEYS[2])
end
local out = {}
for i = 0, (#KEYS - 2) / 3 - 1 do
  local claim, alert, topic = KEYS[3 + 3 * i], KEYS[4 + 3 * i], KEYS[5 + 3 * i]
  local rank, has_topic, id = tonumber(ARGV[7 + 3 * i]), ARGV[8 + 3 * i] == '1', ARGV[9 + 3 * i]
  if not redis.call('SET', claim, '1', 'NX', 'PX', ARGV[1]) then
    out[#out + 1] = 'repeat'
  elseif quiet then
    out[#out + 1] = 'quiet'
  elseif has_topic and tonumber(redis.call('GET', topic) or '-1') >= rank then
    out[#out + 1] = 'topic'
  elseif max > 0 and used >= max then
    out[#out + 1] = 'limit'
  else
    redis.call('SET', alert, ARGV[3], 'PX', ARGV[2])
    if has_topic then redis.call('SET', topic, rank, 'PX', ARGV[1]) end
    if max > 0 then
      redis.call('ZADD', KEYS[2], now, id)
      redis.call('PEXPIRE', KEYS[2], per)
      used = used + 1
    end
    out[#out + 1] = 'raised'
  end
end
return out
"""

# An escalation rule raised once per interaction: the claim and, for the one caller whose SET NX
# succeeds, whom its alert went to. KEYS: the claim, the alert. ARGV: once ms, whom, ttl ms.
_CLAIM_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""

# An alert's acknowledgement is expected unless it was answered already (an answer can come
# before the alert's raising has finished: the desktop saw it, or the caller knew its id).
_EXPECT_ACK = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# An answer: the acknowledgement is no longer expected, and it is remembered as answered (as
# long as the alert) so that a late expectation is not recorded. 1 if it was expected.
_ACKED = """
local was = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return was
"""

# Take the alerts overdue for an acknowledgement: each ZREM succeeds for one caller only.
_OVERDUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return due
"""


class RedisAlertStore:
    """Recent alerts and each interaction's contact policy state, shared by every instance."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        prefix: str = "frontline:",
        retain: timedelta = timedelta(hours=12),
    ) -> None:
        self._redis: Any = client  # redis-py types results as "Awaitable | value"
        self._prefix = prefix
        self._ttl_ms = max(1, int(retain.total_seconds() * 1000))  # as long as the alerts
        self._claim = self._redis.register_script(_CLAIM_ALERTS)
        self._calls = script_calls(client)
        self._overdue = self._redis.register_script(_OVERDUE)
        self._expect_ack = self._redis.register_script(_EXPECT_ACK)
        self._acked = self._redis.register_script(_ACKED)
        self._claim_once = self._redis.register_script(_CLAIM_ONCE)
        self._due = f"{prefix}alert-acks-due"

    async def claim(
        self,
        interaction_id: str,
        alerts: Sequence[AlertClaim],
        whom: Mapping[str, Any],
        interval: timedelta,
        ttl: timedelta,
        limit: AlertLimit | None = None,
    ) -> list[str]:
        if not alerts:
            return []
        p = self._prefix
        keys = [f"{p}alert-quiet:{interaction_id}", f"{p}alert-window:{interaction_id}"]
        args: list[int | bytes | str] = [
            max(1, int(interval.total_seconds() * 1000)),
            max(1, int(ttl.total_seconds() * 1000)),
            _encode(dict(whom)),
            limit.max_alerts if limit is not None else 0,
            max(1, int(limit.per.total_seconds() * 1000)) if limit is not None else 0,
            int(time.time() * 1000),
        ]
        for alert in alerts:
            keys += [
                f"{p}alert-claim:{interaction_id}:{alert.rule}",
                f"{p}alert:{alert.alert_id}",
                f"{p}alert-topic:{interaction_id}:{alert.topic or ''}",
            ]
            args += [alert.rank, 1 if alert.topic else 0, alert.alert_id]
        with unavailable_as("claiming alerts"):
            found = await self._calls.run(self._claim, keys, args)
        return [o.decode() if isinstance(o, bytes) else str(o) for o in found]

    async def claim_once(
        self,
        interaction_id: str,
        rule: str,
        alert_id: str,
        whom: Mapping[str, Any],
        once: timedelta,
        ttl: timedelta,
    ) -> bool:
        p = self._prefix
        keys = [f"{p}escalation-claim:{interaction_id}:{rule}", f"{p}alert:{alert_id}"]
        args: list[int | bytes] = [
            max(1, int(once.total_seconds() * 1000)),
            _encode(dict(whom)),
            max(1, int(ttl.total_seconds() * 1000)),
        ]
        with unavailable_as("claiming an escalation"):
            return bool(await self._calls.run(self._claim_once, keys, args))

    async def lookup(self, alert_id: str) -> dict[str, Any] | None:
        keys = (f"{self._prefix}alert:{alert_id}", f"{self._prefix}alert-shown:{alert_id}")
        with unavailable_as("looking up an alert"):
            raw, shown = await self._redis.mget(*keys)
        if raw is None:
            return None
        found: dict[str, Any] = _decode(raw)
        if shown is not None:
            found["delivered_at"] = shown.decode()
        return found

    async def delivered(self, shown: Sequence[tuple[str, str]]) -> None:
        """One pipeline: each alert's first delivery time, kept as long as the alert."""
        if not shown:
            return
        prefix, ttl = self._prefix, self._ttl_ms
        commands = [
            pack("SET", f"{prefix}alert-shown:{alert_id}", at, "NX", "PX", ttl)
            for alert_id, at in shown
        ]
        with unavailable_as("recording deliveries"):
            await round_trip(self._redis, commands)

    async def quiet(self, interaction_id: str, period: timedelta) -> None:
        with unavailable_as("starting a quiet period"):
            await self._redis.set(
                f"{self._prefix}alert-quiet:{interaction_id}",
                b"1",
                px=max(1, int(period.total_seconds() * 1000)),
            )

    async def expect_ack(self, alert_id: str, due: float) -> None:
        keys = [self._due, f"{self._prefix}alert-acked:{alert_id}"]
        with unavailable_as("expecting an acknowledgement"):
            await self._calls.run(self._expect_ack, keys, [repr(due), alert_id])

    async def acked(self, alert_id: str) -> bool:
        keys = [self._due, f"{self._prefix}alert-acked:{alert_id}"]
        with unavailable_as("recording an acknowledgement"):
            return bool(await self._calls.run(self._acked, keys, [alert_id, self._ttl_ms]))

    async def overdue(self, now: float, limit: int = 100) -> list[str]:
        with unavailable_as("reading overdue acknowledgements"):
            found = await self._overdue(keys=[self._due], args=[now, limit])
        return [a.decode() if isinstance(a, bytes) else str(a) for a in found]


# -- timers ------------------------------------------------------------------------------------

# Take what is due and move each to its next period in one step: a period of a timer is handed
# to one caller only. A timer more than a period behind skips to a period from now.
_TAKE_TIMERS = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
local now = tonumber(ARGV[1])
for i = 1, #due, 2 do
  local period = tonumber(string.match(due[i], '^(%d+)|'))
  local following = tonumber(due[i + 1]) + period
  if following <= now then following = now + period end
  redis.call('ZADD', KEYS[1], following, due[i])
end
return due
"""


class RedisTimers:
    """Timers in one sorted set (``<prefix>timers``, scored by when each is due)."""

    def __init__(self, client: redis.asyncio.Redis, *, prefix: str = "frontline:") -> None:
        self._redis: Any = client
        self._key = f"{prefix}timers"
        self._take = self._redis.register_script(_TAKE_TIMERS)

    async def schedule(self, timers: Sequence[tuple[str, int]]) -> None:
        if timers:
            with unavailable_as("scheduling timers"):
                await self._redis.zadd(self._key, dict(timers))

    async def take(self, now: int, limit: int) -> list[tuple[str, int]]:
        with unavailable_as("taking due timers"):
            found = await self._take(keys=[self._key], args=[now, limit])
        return [(found[i].decode(), int(float(found[i + 1]))) for i in range(0, len(found), 2)]

    async def cancel(self, timers: Sequence[str]) -> None:
        if timers:
            with unavailable_as("cancelling timers"):
                await self._redis.zrem(self._key, *timers)


# -- rulesets ----------------------------------------------------------------------------------

# Atomic: the same digest always gets the same revision; a new digest gets the next number,
# and its review (ARGV[5], when not empty) in the same step.
_PUT_REVISION = """
local found = redis.call('HGET', KEYS[1], ARGV[1])
if found then return {tonumber(found), 0} end
local revision = redis.call('HLEN', KEYS[1]) + 1
redis.call('HSET', KEYS[1], ARGV[1], revision)
redis.call('SET', ARGV[3] .. revision, ARGV[2])
redis.call('SADD', KEYS[2], ARGV[4])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[3], revision, ARGV[5]) end
return {revision, 1}
"""

# Atomic: a review replaces the stored one only if that one's status is ARGV[3].
_SET_REVIEW = """
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if not stored or cjson.decode(stored)['status'] ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# Atomic: a routing replaces the stored one only if its version is higher (a routing stored
# before routings had versions has none: 0), and its change is announced in the same step.
_SET_ROUTING = """
local stored = redis.call('GET', KEYS[1])
if stored then
  local version = cjson.decode(stored)['version']
  if type(version) == 'number' and version >= tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"""


class RedisRulesetStore:
    """Every revision of every ruleset and their routing, shared by all instances.

    ``set_routing`` compares versions, replaces the routing, pushes it on the ruleset's
    history list (the last ``HISTORY_KEPT``) and publishes the ruleset's name on
    ``<prefix>rulesets-changed`` in one script; each instance's ``Invalidations`` listener
    then re-reads it.
    """

    def __init__(self, client: redis.Redis, *, prefix: str = "frontline:") -> None:
        self._redis: Any = client  # redis-py types results as "Awaitable | value"
        self._prefix = prefix
        self.channel = f"{prefix}rulesets-changed"
        self._put = client.register_script(_PUT_REVISION)
        self._set_routing = client.register_script(_SET_ROUTING)
        self._set_review = client.register_script(_SET_REVIEW)

    def _k(self, name: str, part: str) -> str:
        return f"{self._prefix}ruleset:{name}:{part}"

    def put_revision(
        self,
        name: str,
        digest: str,
        text: str,
        review: Review | None = None,
        provenance: Provenance | None = None,
    ) -> tuple[StoredRevision, bool]:
        kept = asdict(provenance) if provenance is not None else {}
        body = _encode({"digest": digest, "text": text, **kept})
        reviewed = _encode(asdict(review)) if review is not None else b""
        revision, created = self._put(
            keys=[self._k(name, "digests"), f"{self._prefix}rulesets", self._k(name, "reviews")],
            args=[digest, body, self._k(name, "revision:"), name, reviewed],
        )
        if not created:  # the revision stored before, with its own provenance
            found = self.get_revision(name, int(revision))
            if found is not None:
                return found, False
        return StoredRevision(name, int(revision), digest, text, provenance), bool(created)

    def get_revision(self, name: str, revision: int) -> StoredRevision | None:
        raw = self._redis.get(self._k(name, f"revision:{revision}"))
        if raw is None:
            return None
        return _revision(name, revision, raw)

    def revisions(self, name: str) -> list[StoredRevision]:
        count = int(self._redis.hlen(self._k(name, "digests")))
        if not count:
            return []
        found = self._redis.mget([self._k(name, f"revision:{n}") for n in range(1, count + 1)])
        out = []
        for n, raw in enumerate(found, start=1):
            if raw is not None:
                out.append(_revision(name, n, raw))
        return out

    def names(self) -> list[str]:
        return sorted(m.decode() for m in self._redis.smembers(f"{self._prefix}rulesets"))

    def set_routing(self, name: str, routing: Routing) -> bool:
        replaced = self._set_routing(
            keys=[self._k(name, "routing"), self._k(name, "history")],
            args=[_encode(asdict(routing)), routing.version, self.channel, name, HISTORY_KEPT],
        )
        return bool(replaced)

    def history(self, name: str, limit: int = 50) -> list[Routing]:
        found = self._redis.lrange(self._k(name, "history"), 0, limit - 1)
        return [Routing(**_decode(raw)) for raw in found]

    def get_routing(self, name: str) -> Routing | None:
        raw = self._redis.get(self._k(name, "routing"))
        return Routing(**_decode(raw)) if raw is not None else None

    def reviews(self, name: str) -> dict[int, Review]:
        key = self._k(name, "reviews")
        found = self._redis.hgetall(key)
        try:
            return {int(n): Review.from_data(_decode(raw), key) for n, raw in found.items()}
        except (ValueError, msgspec.DecodeError) as exc:
            raise StoreCorrupt(f"{key}: {exc}") from None

    def set_review(self, name: str, revision: int, review: Review, *, expect: str) -> bool:
        replaced = self._set_review(
            keys=[self._k(name, "reviews")],
            args=[revision, _encode(asdict(review)), expect],
        )
        return bool(replaced)


def _revision(name: str, revision: int, raw: bytes) -> StoredRevision:
    data = _decode(raw)
    provenance = Provenance.from_data(data)
    return StoredRevision(name, revision, data["digest"], data["text"], provenance)


# -- change notifications ----------------------------------------------------------------------


class Invalidations:
    """Follows the change channels and calls a handler per message, reconnecting for ever.

    After a reconnect, messages sent while it was away are lost; ``on_reconnect`` handlers run
    then, so that each cache can start over (drop everything, re-read every routing).
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        handlers: Mapping[str, Callable[[str], Awaitable[None] | None]],
        on_reconnect: Callable[[], Awaitable[None] | None] | None = None,
    ) -> None:
        self._redis: Any = client  # redis-py types results as "Awaitable | value"
        self._handlers = dict(handlers)
        self._on_reconnect = on_reconnect
        self.ready = asyncio.Event()

    async def run(self) -> None:
        delay = 0.05
        first = True
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*self._handlers)
                if not first and self._on_reconnect is not None:
                    await _maybe(self._on_reconnect())
                first = False
                self.ready.set()
                delay = 0.05
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None:
                        continue
                    channel = message["channel"].decode()
                    handler = self._handlers.get(channel)
                    if handler is not None:
                        try:
                            await _maybe(handler(message["data"].decode()))
                        except Exception as exc:  # one bad message must not stop the listener
                            log.error("change handler failed", channel=channel, error=str(exc))
            except asyncio.CancelledError:
                raise
            except _FAILURES as exc:
                self.ready.clear()
                log.warning("change channel lost; reconnecting", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            finally:
                with contextlib.suppress(*_FAILURES):
                    await pubsub.aclose()


async def _maybe(result: Awaitable[None] | None) -> None:
    if result is not None:
        await result

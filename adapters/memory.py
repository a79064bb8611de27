"""In-process implementations of the ports: rulesets, context, counters, interactions, alert
claims and timers; the embedded default and the test doubles.

One process holds the only copy; ``adapters.redis`` shares the same state between instances.
"""

from __future__ import annotations

import bisect
import heapq
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from adapters.ports import (
    LIMIT,
    QUIET,
    RAISED,
    REPEAT,
    TOPIC,
    AlertClaim,
    AlertLimit,
    CustomerContext,
    Interaction,
    timer_parts,
)
from engine.durations import parse_duration
from engine.ports import Provenance, Review, Routing, StoredRevision


def leaves(values: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted paths of the non-object values of a nested mapping."""
    found: list[str] = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            found.extend(leaves(value, path + "."))
        else:
            found.append(path)
    return found


def merge(target: dict[str, Any], values: dict[str, Any]) -> None:
    """Merge ``values`` into ``target``: objects merge key by key, other values replace."""
    for key, value in values.items():
        current = target.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            merge(current, value)
        else:
            target[key] = _copy(value)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def stamp(meta: dict[str, str], paths: list[str], value: str | None) -> dict[str, str]:
    """Per-leaf metadata after writing ``paths``: set to ``value``, or dropped when None."""
    out = {p: v for p, v in meta.items() if not _under_any(p, paths)}
    if value is not None:
        out.update(dict.fromkeys(paths, value))
    return out


def written(
    customer_id: str,
    values: dict[str, Any],
    source: str | None,
    as_of: str | None,
    onto: CustomerContext | None = None,
) -> CustomerContext:
    """A customer's context after a write: ``values`` alone (a PUT), or merged into ``onto``
    (a PATCH; its values are changed in place, so pass a copy you own), each written leaf
    stamped with ``source`` and ``as_of``. Shared by every context store."""
    paths = leaves(values)
    if onto is None:
        return CustomerContext(
            customer_id, values, stamp({}, paths, source), stamp({}, paths, as_of)
        )
    merge(onto.values, values)
    return CustomerContext(
        customer_id,
        onto.values,
        stamp(onto.sources, paths, source),
        stamp(onto.as_of, paths, as_of),
    )


def _under_any(path: str, written: list[str]) -> bool:
    """Whether ``path`` is one of the written leaves or lies under/over one of them."""
    return any(path == w or path.startswith(w + ".") or w.startswith(path + ".") for w in written)


class MemoryContextStore:
    """Customer contexts in a dict; every read returns a copy the caller may keep."""

    def __init__(self) -> None:
        self._data: dict[str, CustomerContext] = {}
        self._lock = threading.Lock()

    async def get(self, customer_id: str) -> CustomerContext | None:
        found = self._data.get(customer_id)
        if found is None:
            return None
        return CustomerContext(
            customer_id, _copy(found.values), dict(found.sources), dict(found.as_of)
        )

    async def put(
        self, customer_id: str, values: dict[str, Any], source: str | None, as_of: str | None
    ) -> CustomerContext:
        stored = written(customer_id, _copy(values), source, as_of)
        with self._lock:
            self._data[customer_id] = stored
        return stored

    async def patch(
        self, customer_id: str, values: dict[str, Any], source: str | None, as_of: str | None
    ) -> CustomerContext:
        with self._lock:
            current = self._data.get(customer_id)
            onto = (
                CustomerContext(customer_id, _copy(current.values), current.sources, current.as_of)
                if current is not None
                else None
            )
            stored = written(customer_id, values, source, as_of, onto)
            self._data[customer_id] = stored
        return stored


class MemoryEventCounters:
    """Event times per customer and type, kept for the longest window anyone asked about.

    Events older than ``horizon`` are dropped as new ones arrive, so memory stays bounded by
    the event rate times the horizon.
    """

    def __init__(self, horizon: timedelta = timedelta(days=90)) -> None:
        self._horizon = horizon
        self._events: dict[tuple[str, str], deque[datetime]] = defaultdict(deque)
        self._lock = threading.Lock()

    async def record(self, customer_id: str, event_type: str, at: datetime) -> None:
        with self._lock:
            times = self._events[(customer_id, event_type)]
            if not times or at >= times[-1]:
                times.append(at)
            else:  # late arrival: keep the deque sorted
                ordered = list(times)
                bisect.insort(ordered, at)
                times.clear()
                times.extend(ordered)
            while times and times[0] < at - self._horizon:
                times.popleft()

    async def counts(
        self, customer_id: str, needed: frozenset[tuple[str, str]], now: datetime
    ) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for event_type, window in needed:
                times = self._events.get((customer_id, event_type))
                count = 0
                if times:
                    since = now - parse_duration(window)
                    ordered = list(times)
                    count = bisect.bisect_right(ordered, now) - bisect.bisect_left(ordered, since)
                out.setdefault(event_type, {})[window] = count
        return out


class MemoryInteractions:
    """Live interactions in a dict, indexed by customer."""

    def __init__(self) -> None:
        self._by_id: dict[str, Interaction] = {}
        self._by_customer: dict[str, dict[str, Interaction]] = defaultdict(dict)
        self._lock = threading.Lock()

    async def start(self, interaction: Interaction) -> None:
        with self._lock:
            self._by_id[interaction.interaction_id] = interaction
            self._by_customer[interaction.customer_id][interaction.interaction_id] = interaction

    async def get(self, interaction_id: str) -> Interaction | None:
        return self._by_id.get(interaction_id)

    async def end(self, interaction_id: str) -> Interaction | None:
        with self._lock:
            found = self._by_id.pop(interaction_id, None)
            if found is not None:
                live = self._by_customer.get(found.customer_id, {})
                live.pop(interaction_id, None)
                if not live:
                    self._by_customer.pop(found.customer_id, None)
        return found

    async def for_customer(self, customer_id: str) -> list[Interaction]:
        return list(self._by_customer.get(customer_id, {}).values())


class MemoryAlertStore:
    """Alert claims, policy state and deliveries in dicts, pruned of what has expired as new
    ones arrive (one instance's view: what the Redis store shares between instances)."""

    def __init__(self, limit: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        self._claims: dict[tuple[str, str], float] = {}  # (interaction, rule) → until
        self._once: dict[tuple[str, str], float] = {}  # (interaction, escalation rule) → until
        self._topics: dict[tuple[str, str], tuple[float, int]] = {}  # → (until, rank)
        self._windows: dict[str, list[float]] = {}  # interaction → when each alert was raised
        self._quiet: dict[str, float] = {}  # interaction → until
        self._alerts: dict[str, tuple[float, dict[str, Any]]] = {}
        self._due: dict[str, float] = {}  # alert → when its acknowledgement is overdue
        self._acked: dict[str, float] = {}  # alert → until: answered, expected or not
        self._limit = limit
        self._clock = clock

    async def claim(
        self,
        interaction_id: str,
        alerts: Sequence[AlertClaim],
        whom: Mapping[str, Any],
        interval: timedelta,
        ttl: timedelta,
        limit: AlertLimit | None = None,
    ) -> list[str]:
        now = self._clock()
        self._prune(now)
        until = now + interval.total_seconds()
        quiet = self._quiet.get(interaction_id, 0.0) > now
        window = self._windows.get(interaction_id, [])
        if limit is not None:
            window = [t for t in window if t > now - limit.per.total_seconds()]
        outcomes = []
        for alert in alerts:
            claim = (interaction_id, alert.rule)
            if self._claims.get(claim, 0.0) > now:
                outcomes.append(REPEAT)
                continue
            self._claims[claim] = until
            held = self._topics.get((interaction_id, alert.topic)) if alert.topic else None
            if quiet:
                outcomes.append(QUIET)
            elif held is not None and held[0] > now and held[1] >= alert.rank:
                outcomes.append(TOPIC)
            elif limit is not None and len(window) >= limit.max_alerts:
                outcomes.append(LIMIT)
            else:
                if alert.topic:
                    self._topics[(interaction_id, alert.topic)] = (until, alert.rank)
                window.append(now)
                self._alerts[alert.alert_id] = (now + ttl.total_seconds(), dict(whom))
                outcomes.append(RAISED)
        if limit is not None:
            self._windows[interaction_id] = window
        return outcomes

    async def claim_once(
        self,
        interaction_id: str,
        rule: str,
        alert_id: str,
        whom: Mapping[str, Any],
        once: timedelta,
        ttl: timedelta,
    ) -> bool:
        now = self._clock()
        self._prune(now)
        if self._once.get((interaction_id, rule), 0.0) > now:
            return False
        self._once[(interaction_id, rule)] = now + once.total_seconds()
        self._alerts[alert_id] = (now + ttl.total_seconds(), dict(whom))
        return True

    def _prune(self, now: float) -> None:
        if len(self._once) >= self._limit:
            self._once = {k: v for k, v in self._once.items() if v > now}
        if len(self._claims) >= self._limit:
            self._claims = {k: v for k, v in self._claims.items() if v > now}
            self._topics = {k: v for k, v in self._topics.items() if v[0] > now}
            self._quiet = {k: v for k, v in self._quiet.items() if v > now}
            self._windows = {k: v for k, v in self._windows.items() if v and v[-1] > now - 86400}
        if len(self._alerts) >= self._limit:
            self._alerts = {k: v for k, v in self._alerts.items() if v[0] > now}
        if len(self._acked) >= self._limit:
            self._acked = {k: v for k, v in self._acked.items() if v > now}

    async def remember(
        self, alerts: Sequence[tuple[str, Mapping[str, Any]]], ttl: timedelta
    ) -> None:
        now = self._clock()
        self._prune(now)
        for alert_id, info in alerts:
            self._alerts[alert_id] = (now + ttl.total_seconds(), dict(info))

    async def lookup(self, alert_id: str) -> dict[str, Any] | None:
        found = self._alerts.get(alert_id)
        if found is None or found[0] <= self._clock():
            return None
        return dict(found[1])

    async def delivered(self, shown: Sequence[tuple[str, str]]) -> None:
        for alert_id, at in shown:
            found = self._alerts.get(alert_id)
            if found is not None and "delivered_at" not in found[1]:
                found[1]["delivered_at"] = at

    async def quiet(self, interaction_id: str, period: timedelta) -> None:
        self._quiet[interaction_id] = self._clock() + period.total_seconds()

    async def expect_ack(self, alert_id: str, due: float) -> None:
        if self._acked.get(alert_id, 0.0) <= self._clock():  # not answered already
            self._due[alert_id] = due

    async def acked(self, alert_id: str) -> bool:
        now = self._clock()
        self._prune(now)
        found = self._alerts.get(alert_id)
        self._acked[alert_id] = found[0] if found is not None else now + 86400
        return self._due.pop(alert_id, None) is not None

    async def overdue(self, now: float, limit: int = 100) -> list[str]:
        found = sorted((due, alert_id) for alert_id, due in self._due.items() if due <= now)
        taken = [alert_id for _, alert_id in found[:limit]]
        for alert_id in taken:
            del self._due[alert_id]
        return taken


class MemoryTimers:
    """Timers in a heap (with stale entries skipped), for one process."""

    def __init__(self) -> None:
        self._due: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []

    async def schedule(self, timers: Sequence[tuple[str, int]]) -> None:
        for key, due in timers:
            self._due[key] = due
            heapq.heappush(self._heap, (due, key))

    async def take(self, now: int, limit: int) -> list[tuple[str, int]]:
        taken: list[tuple[str, int]] = []
        heap = self._heap
        while heap and heap[0][0] <= now and len(taken) < limit:
            due, key = heapq.heappop(heap)
            if self._due.get(key) != due:
                continue  # rescheduled or cancelled since
            period = timer_parts(key)[0]
            following = due + period if due + period > now else now + period
            self._due[key] = following
            heapq.heappush(heap, (following, key))
            taken.append((key, due))
        return taken

    async def cancel(self, timers: Sequence[str]) -> None:
        for key in timers:
            self._due.pop(key, None)


class MemoryRulesetStore:
    """A RulesetStore in memory: the test double, and the store of a one-process setup."""

    def __init__(self) -> None:
        self._revisions: dict[str, list[StoredRevision]] = {}
        self._routing: dict[str, Routing] = {}
        self._history: dict[str, list[Routing]] = {}
        self._reviews: dict[str, dict[int, Review]] = {}
        self._lock = threading.Lock()

    def put_revision(
        self,
        name: str,
        digest: str,
        text: str,
        review: Review | None = None,
        provenance: Provenance | None = None,
    ) -> tuple[StoredRevision, bool]:
        with self._lock:
            existing = self._revisions.setdefault(name, [])
            for stored in existing:
                if stored.digest == digest:
                    return stored, False
            stored = StoredRevision(name, len(existing) + 1, digest, text, provenance)
            existing.append(stored)
            if review is not None:
                self._reviews.setdefault(name, {})[stored.revision] = review
            return stored, True

    def get_revision(self, name: str, revision: int) -> StoredRevision | None:
        existing = self._revisions.get(name, [])
        return existing[revision - 1] if 0 < revision <= len(existing) else None

    def revisions(self, name: str) -> list[StoredRevision]:
        return list(self._revisions.get(name, []))

    def names(self) -> list[str]:
        return sorted(self._revisions)

    def set_routing(self, name: str, routing: Routing) -> bool:
        with self._lock:
            stored = self._routing.get(name)
            if stored is not None and stored.version >= routing.version:
                return False
            self._routing[name] = routing
            self._history.setdefault(name, []).append(routing)
            return True

    def get_routing(self, name: str) -> Routing | None:
        return self._routing.get(name)

    def history(self, name: str, limit: int = 50) -> list[Routing]:
        return list(reversed(self._history.get(name, [])[-limit:]))

    def reviews(self, name: str) -> dict[int, Review]:
        return dict(self._reviews.get(name, {}))

    def set_review(self, name: str, revision: int, review: Review, *, expect: str) -> bool:
        with self._lock:
            found = self._reviews.get(name, {})
            if revision not in found or found[revision].status != expect:
                return False
            found[revision] = review
            return True

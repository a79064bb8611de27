"""Ports of the service's stores: customer context, event counters, live interactions, the
reads a decision makes, the alert bus, alert claims and timers.

The service (``server.service``) uses them; the modules beside this one implement them (memory
for tests and the embedded default, Redis to share state between instances, an HTTP source).
This module declares only: it imports no implementation and does no I/O. The ruleset store's
port is the engine's (``engine.ports``), because the revision registry uses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol


class StoreUnavailable(Exception):
    """A shared store (Redis) cannot be reached; what it holds is unknown for now."""


@dataclass(frozen=True)
class CustomerContext:
    """A customer's cached context: nested values, and per leaf field where and when from.

    ``sources`` and ``as_of`` are keyed by dotted leaf path (``customer.churn_score``); a
    field written without a source or time has no entry. ``as_of`` values are RFC 3339.
    """

    customer_id: str
    values: dict[str, Any]
    sources: dict[str, str]
    as_of: dict[str, str]
    degraded: bool = False  # served from a fallback (a stale cache) rather than the store


class ContextStore(Protocol):
    """The cached context of each customer; integrations write it, decisions read it."""

    async def get(self, customer_id: str) -> CustomerContext | None: ...

    async def put(
        self, customer_id: str, values: dict[str, Any], source: str | None, as_of: str | None
    ) -> CustomerContext:
        """Replace the whole context."""
        ...

    async def patch(
        self, customer_id: str, values: dict[str, Any], source: str | None, as_of: str | None
    ) -> CustomerContext:
        """Merge ``values`` into the context (objects merge, other values replace)."""
        ...


class EventCounters(Protocol):
    """Counts of each customer's events over sliding windows, for ``count(event, within)``."""

    async def record(self, customer_id: str, event_type: str, at: datetime) -> None: ...

    async def counts(
        self,
        customer_id: str,
        needed: frozenset[tuple[str, str]],
        now: datetime,
    ) -> dict[str, dict[str, int]]:
        """``{event_type: {window: count}}`` for each ``(event_type, window)`` in ``needed``."""
        ...


@dataclass(frozen=True)
class Interaction:
    """An agent handling a customer: the revision it started on serves it to the end."""

    interaction_id: str
    customer_id: str
    agent_id: str
    ruleset: str
    revision: int
    started_at: str
    context: dict[str, Any] | None = None  # the overrides it started with, for re-evaluation


class InteractionStore(Protocol):
    """The live interactions: which agent has which customer, on which revision."""

    async def start(self, interaction: Interaction) -> None: ...

    async def get(self, interaction_id: str) -> Interaction | None: ...

    async def end(self, interaction_id: str) -> Interaction | None:
        """Forget the interaction; return it, or None if it was not live."""
        ...

    async def for_customer(self, customer_id: str) -> list[Interaction]:
        """The customer's live interactions (for re-evaluating alert rules)."""
        ...


@dataclass(frozen=True, slots=True)
class DecisionInputs:
    """What a decision reads from the stores before it evaluates."""

    context: CustomerContext | None
    counters: dict[str, dict[str, int]] | None  # None when none were asked for or answered
    counters_unavailable: bool = False  # asked for, and the counters did not answer
    interaction: Interaction | None = None  # the live interaction asked for, if it is live


@dataclass(frozen=True, slots=True)
class AlertInputs:
    """What re-evaluating a customer's alert rules reads: its live interactions, its context
    and the counters asked for."""

    interactions: list[Interaction]
    context: CustomerContext | None
    counters: dict[str, dict[str, int]] | None
    counters_unavailable: bool = False


class DecisionReads(Protocol):
    """A decision's reads: the customer's context, the counters its revision needs and the
    interaction it is pinned to, in as few round trips as the stores allow (one on Redis)."""

    async def read(
        self,
        customer_id: str,
        counters: frozenset[tuple[str, str]],
        interaction_id: str | None,
        now: datetime,
    ) -> DecisionInputs:
        """Counters that cannot be read are reported, not raised (count(...) reads 0 then);
        an interaction that cannot be read raises ``StoreUnavailable``, as its store does."""
        ...

    async def for_alerts(
        self,
        customer_id: str,
        counters: frozenset[tuple[str, str]],
        now: datetime,
        *,
        event: tuple[str, datetime] | None = None,
    ) -> AlertInputs:
        """Record ``event`` (type, time) if given, then read the customer's live interactions,
        context and ``counters`` (the event counted): one round trip on Redis. Raises
        ``StoreUnavailable`` if the event or the interactions cannot be written or read."""
        ...


class AlertSubscription(Protocol):
    """One reader's queue of an agent's alerts: the recent history, then live ones."""

    agent_id: str
    closed: bool

    def close(self) -> None:
        """End it: a ``take`` under way returns at once."""
        ...

    async def take(self, timeout: float) -> list[bytes]:
        """Every alert queued since the last take, waiting up to ``timeout`` seconds."""
        ...


class AlertBus(Protocol):
    """Carries alerts to the desktops of the agent they are for, on any instance. ``dropped``
    counts alerts a subscription could not keep (each also logged); ``published``, those
    handed on."""

    history: int
    dropped: int
    published: int

    def publish(self, agent_id: str, message: bytes) -> None:
        """Queue ``message`` for ``agent_id``'s desktops; never waits."""
        ...

    async def subscribe(self, agent_id: str) -> AlertSubscription: ...

    def unsubscribe(self, subscription: AlertSubscription) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Hand on what is queued (briefly), then stop."""
        ...


@dataclass(frozen=True)
class AlertClaim:
    """An alert an evaluation raised, as the contact policy weighs it: its rule, its id, its
    severity's rank (0 info, 1 warning, 2 critical) and its topic."""

    rule: str
    alert_id: str
    rank: int
    topic: str | None = None


@dataclass(frozen=True)
class AlertLimit:
    """At most ``max_alerts`` alerts raised per interaction in any window of ``per``."""

    max_alerts: int
    per: timedelta


# What a claim decided for one alert: raised, or held back and why.
RAISED, REPEAT, TOPIC, LIMIT, QUIET = "raised", "repeat", "topic", "limit", "quiet"


class AlertStore(Protocol):
    """Recently raised alerts and the state of each interaction's contact policy, shared by
    every instance: repeats suppressed for an interval, topics held by their most severe
    alert, the alerts raised in the policy's window, quiet periods after a dismissal, whom
    each alert went to (so that only that agent can acknowledge it), and the alerts waiting
    for an acknowledgement."""

    async def claim(
        self,
        interaction_id: str,
        alerts: Sequence[AlertClaim],
        whom: Mapping[str, Any],
        interval: timedelta,
        ttl: timedelta,
        limit: AlertLimit | None = None,
    ) -> list[str]:
        """Weigh each alert, in order, and say what became of it: ``repeat`` if its
        ``(interaction_id, rule)`` was claimed within ``interval``; else ``quiet`` during a
        quiet period of the interaction; ``topic`` if its topic is held by an alert at least
        as severe within ``interval``; ``limit`` if ``limit.max_alerts`` were raised in the
        last ``limit.per``; else ``raised``. Every alert that is not a repeat claims its rule
        for ``interval`` (one record per rule and interval, raised or held back); a raised
        one holds its topic for ``interval`` and is remembered as sent to ``whom`` for
        ``ttl`` (for acks). All in one round trip."""
        ...

    async def claim_once(
        self,
        interaction_id: str,
        rule: str,
        alert_id: str,
        whom: Mapping[str, Any],
        once: timedelta,
        ttl: timedelta,
    ) -> bool:
        """Claim the escalation rule ``rule`` in the interaction for ``once`` (as long as an
        interaction lives): True for the one caller that claims it, across instances, and
        the alert ``alert_id`` it raises is then remembered as sent to ``whom`` for ``ttl``
        (for acks); False for every other. No contact policy weighs it. One round trip."""
        ...

    async def lookup(self, alert_id: str) -> dict[str, Any] | None:
        """Whom a raised alert went to (what ``claim`` remembered), with ``delivered_at``
        once a desktop stream has sent it; None if unknown or expired."""
        ...

    async def delivered(self, shown: Sequence[tuple[str, str]]) -> None:
        """Each ``(alert_id, at)``: the alert was sent on a desktop stream at ``at`` (RFC 3339;
        the first time counts)."""
        ...

    async def quiet(self, interaction_id: str, period: timedelta) -> None:
        """Hold back the interaction's alerts for ``period`` (the agent dismissed one)."""
        ...

    async def expect_ack(self, alert_id: str, due: float) -> None:
        """The alert must be acknowledged by ``due`` (seconds since the epoch), unless it has
        been answered already."""
        ...

    async def acked(self, alert_id: str) -> bool:
        """The alert was acknowledged: True if it was still expected (not yet overdue). It is
        remembered as answered, so that expecting its acknowledgement later does nothing."""
        ...

    async def overdue(self, now: float, limit: int = 100) -> list[str]:
        """Take the alerts whose acknowledgement is overdue at ``now``: each is handed to
        exactly one caller, across instances."""
        ...


def timer_key(period_ms: int, customer_id: str, interaction_id: str) -> str:
    """A timer's name in a TimerStore: its period first (the store reschedules by it)."""
    return f"{period_ms}|{customer_id}|{interaction_id}"


def timer_parts(key: str) -> tuple[int, str, str]:
    """``(period_ms, customer_id, interaction_id)`` of a timer's name."""
    period, customer_id, interaction_id = key.split("|", 2)
    return int(period), customer_id, interaction_id


class TimerStore(Protocol):
    """When each live interaction's timer rules are next due, shared by every instance.

    A timer is named by ``timer_key``; its period is in its name. Times are milliseconds
    since the epoch.
    """

    async def schedule(self, timers: Sequence[tuple[str, int]]) -> None:
        """Set each ``(timer, due)``."""
        ...

    async def take(self, now: int, limit: int) -> list[tuple[str, int]]:
        """The timers due at ``now`` (at most ``limit``, the earliest first) with when each
        was due. Each is moved to its next period in the same step, so a period of a timer
        is handed to exactly one caller across instances: a lease for that period."""
        ...

    async def cancel(self, timers: Sequence[str]) -> None:
        """Forget the timers (the interaction ended)."""
        ...

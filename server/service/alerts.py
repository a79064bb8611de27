"""Alerts pushed to agents' desktops while they handle a customer.

    interaction starts ─▶ the first decision's alerts ──────────────┐
    context PUT/PATCH, event POST ─▶ for each live interaction of   │
        the customer: its revision's rules on the cached context    │
        (plus the overrides it started with) ─▶ alerts ─────────────┤
                                                                    ▼
        claim (interaction, rule): a repeat within ``repeat_after`` is suppressed
        ─▶ ledger record ``alert`` (durable) ─▶ published on channel ``alerts:<agent>``
    desktop ─GET /v1/agents/<agent>/alerts (WebSocket or SSE)─▶ history after its cursor,
        then live messages; ``Last-Event-ID`` resumes where it left off
    agent ─POST /v1/alerts/<id>/ack─▶ ledger record ``ack``

An alert's id is ``<evaluation id>.<rule>``; the evaluation id is a ULID, so ids sort by the
time they were raised and serve as the stream's event ids.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import structlog

from adapters.memory import MemoryAlertStore
from audit.record import Actor, RulesetRef
from audit.recording import ACK_OUTCOMES, ack_record, alert_record
from engine import (
    AlertBus,
    AlertInputs,
    AlertStore,
    AlertSubscription,
    CompiledRuleset,
    DecisionReads,
    EvaluationError,
    Interaction,
    RulesetRegistry,
    StoreUnavailable,
    UnknownRuleset,
)
from engine.decision import format_time
from server.ids import encode_ulid, new_id
from server.keys import Principal
from server.service.access import authorize
from server.service.answers import AckRecorded, DecisionAnswer
from server.service.errors import Invalid, NotFound
from server.service.inputs import context_view
from server.service.recorder import Recorder

log = structlog.get_logger("frontline")

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def id_floor(at: float) -> str:
    """The smallest ULID of the millisecond ``at`` (seconds since the epoch): a stream cursor."""
    return encode_ulid(int(at * 1000) << 80)


class Alerting:
    """Raises, records, publishes and acknowledges alerts."""

    def __init__(
        self,
        registry: RulesetRegistry,
        reads: DecisionReads,
        recorder: Recorder,
        store: AlertStore,
        bus: AlertBus,
        *,
        repeat_after: timedelta = timedelta(minutes=10),
        retain: timedelta = timedelta(hours=12),
        history: int = 100,
    ) -> None:
        self.registry = registry
        self.reads = reads
        self.recorder = recorder
        self.store = store
        # Used when the shared store cannot be reached: repeats are then suppressed per
        # instance, and this instance can still take acks for the alerts it raised.
        self._local = store if isinstance(store, MemoryAlertStore) else MemoryAlertStore()
        self.bus = bus
        self._streams: set[AlertSubscription] = set()
        self.repeat_after = repeat_after
        self.retain = retain
        self.history = history
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = asyncio.Event()
        self.raised = 0

    def stop_streams(self) -> None:
        """End every open stream (the server is stopping; desktops will resume elsewhere)."""
        self._stopping.set()
        for subscription in list(self._streams):
            subscription.close()

    # -- raising ---------------------------------------------------------------------------

    async def deliver(
        self,
        interaction: Interaction,
        alerts: Sequence[Mapping[str, Any]],
        *,
        ruleset: RulesetRef,
        trigger: str,
        decision_id: str | None = None,
    ) -> list[str]:
        """Record and publish each alert not raised for this interaction and rule lately.

        Returns the ids of the alerts delivered. Each is durable in the ledger before it is
        published, so a desktop never shows an alert the ledger does not hold.
        """
        whom = {
            "agent_id": interaction.agent_id,
            "customer_id": interaction.customer_id,
            "interaction_id": interaction.interaction_id,
        }
        ids = [alert.get("alert_id") or f"{new_id()}.{alert['rule']}" for alert in alerts]
        # Claimed, and remembered for acks, in one round trip: a repeat within the interval
        # is not raised again.
        claimed = await self._claim(
            interaction.interaction_id,
            [(alert["rule"], i) for alert, i in zip(alerts, ids, strict=True)],
            whom,
        )
        fresh = [(i, alert) for i, alert, won in zip(ids, alerts, claimed, strict=True) if won]
        if not fresh:
            return []
        raised_at = format_time(datetime.now(UTC))
        # Appended together: one group commit holds them all.
        await asyncio.gather(
            *(
                self.recorder.append(
                    alert_record(
                        record_id=new_id(),
                        alert_id=alert_id,
                        rule=alert["rule"],
                        severity=alert["severity"],
                        message=alert["message"],
                        ruleset=ruleset,
                        customer_id=interaction.customer_id,
                        agent_id=interaction.agent_id,
                        interaction_id=interaction.interaction_id,
                        trigger=trigger,
                        decision_id=decision_id,
                    )
                )
                for alert_id, alert in fresh
            )
        )
        for alert_id, alert in fresh:
            message = {
                "id": alert_id,
                "alert_id": alert_id,
                "rule": alert["rule"],
                "severity": alert["severity"],
                "message": alert["message"],
                "customer_id": interaction.customer_id,
                "interaction_id": interaction.interaction_id,
                "ruleset": ruleset.name,
                "revision": ruleset.revision,
                "trigger": trigger,
                "raised_at": raised_at,
            }
            self.bus.publish(interaction.agent_id, _encode(message))
        self.raised += len(fresh)
        return [alert_id for alert_id, _ in fresh]

    async def _claim(
        self, interaction_id: str, alerts: list[tuple[str, str]], whom: dict[str, Any]
    ) -> list[bool]:
        """Claim each ``(rule, alert_id)`` in the shared store; while it is away, in this
        instance (repeats are then suppressed per instance, and acks reach this instance)."""
        try:
            won = await self.store.claim(
                interaction_id, alerts, whom, self.repeat_after, self.retain
            )
        except StoreUnavailable as exc:
            won = await self._local.claim(
                interaction_id, alerts, whom, self.repeat_after, self.retain
            )
            log.warning(
                "alerts known to this instance only",
                alert_ids=[a for (_, a), ok in zip(alerts, won, strict=True) if ok],
                error=str(exc),
            )
            return won
        if self._local is not self.store:  # acks for them still work while Redis is away
            await self._local.remember(
                [(a, whom) for (_, a), ok in zip(alerts, won, strict=True) if ok], self.retain
            )
        return won

    async def _lookup(self, alert_id: str) -> dict[str, Any] | None:
        try:
            found = await self.store.lookup(alert_id)
        except StoreUnavailable:
            found = None
        return found if found is not None else await self._local.lookup(alert_id)

    def deliver_later(self, interaction: Interaction, decision: DecisionAnswer) -> None:
        """Deliver a decision's alerts without holding up its answer."""
        if not decision.get("alerts"):
            return
        ruleset = RulesetRef(
            name=decision["ruleset"], revision=decision["revision"], digest=decision["digest"]
        )
        task = asyncio.create_task(
            self.deliver(
                interaction,
                decision["alerts"],
                ruleset=ruleset,
                trigger="interaction_started",
                decision_id=decision["decision_id"],
            )
        )
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("alerts not delivered", error=str(task.exception()))

    async def reevaluate(
        self,
        customer_id: str,
        trigger: str,
        cause: str,
        *,
        event: tuple[str, datetime] | None = None,
    ) -> list[str]:
        """Run the alert rules listening for ``trigger`` (``context_change`` or ``event``) for
        each live interaction of the customer; deliver what fires. ``cause`` says what
        happened (``context``, ``event:payment_failed``) in the alert's ledger record.

        ``event`` (type, time) is recorded first, in the same round trip that reads the live
        interactions, the context and the counters the active revisions count (on Redis)."""
        now = datetime.now(UTC)
        needed = self._counted()
        inputs = await self.reads.for_alerts(customer_id, needed, now, event=event)
        delivered: list[str] = []
        for interaction in inputs.interactions:
            try:
                compiled = self.registry.get(interaction.ruleset, interaction.revision)
            except UnknownRuleset:
                continue
            if not compiled.model.alerts:
                continue
            counters = inputs.counters
            if not compiled.counters_needed <= needed:  # an older revision counting others
                counters = (
                    await self.reads.read(customer_id, compiled.counters_needed, None, now)
                ).counters
            alerts = self._evaluate(compiled, interaction, trigger, inputs, counters, now)
            if alerts:
                delivered += await self.deliver(
                    interaction,
                    alerts,
                    ruleset=RulesetRef(
                        name=compiled.name, revision=compiled.revision, digest=compiled.digest
                    ),
                    trigger=cause,
                )
        return delivered

    def _counted(self) -> frozenset[tuple[str, str]]:
        """The counters the revisions served now read (from memory, no store read)."""
        needed: set[tuple[str, str]] = set()
        for compiled in self.registry.serving():
            needed |= compiled.counters_needed
        return frozenset(needed)

    def _evaluate(
        self,
        compiled: CompiledRuleset,
        interaction: Interaction,
        trigger: str,
        inputs: AlertInputs,
        counters: dict[str, dict[str, int]] | None,
        now: datetime,
    ) -> list[dict[str, Any]]:
        context, _, as_of, _ = context_view(inputs.context, interaction.context, now)
        try:
            decision = compiled.evaluate(
                context, now=now, counters=counters, as_of=as_of, trigger=trigger
            )
        except EvaluationError as exc:
            log.warning(
                "alert rules not evaluated",
                interaction_id=interaction.interaction_id,
                error=str(exc),
            )
            return []
        found: list[dict[str, Any]] = decision.to_dict()["alerts"]
        return found

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait for deliveries still under way (at shutdown)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    # -- acknowledging ---------------------------------------------------------------------

    async def ack(
        self, alert_id: str, outcome: str, note: str | None, principal: Principal
    ) -> AckRecorded:
        if outcome not in ACK_OUTCOMES:
            raise Invalid(f"outcome must be one of {', '.join(ACK_OUTCOMES)}")
        found = await self._lookup(alert_id)
        if found is None:
            raise NotFound(f"there is no recent alert {alert_id!r}")
        authorize(principal, (found["agent_id"],), f"alert {alert_id!r}")
        record_id = new_id()
        await self.recorder.append(
            ack_record(
                record_id=record_id,
                alert_id=alert_id,
                outcome=outcome,
                actor=Actor(principal=principal.name, role=principal.role),
                agent_id=found["agent_id"],
                customer_id=found["customer_id"],
                interaction_id=found["interaction_id"],
                note=note,
            )
        )
        return AckRecorded(alert_id=alert_id, outcome=outcome, record_id=record_id)

    # -- the stream ------------------------------------------------------------------------

    def follow(
        self, principal: Principal, agent_id: str, last_event_id: str | None
    ) -> AsyncIterator[dict[str, Any] | None]:
        """``stream`` for the agent ``principal`` may read (checked now, before a response
        begins): only the agent the alerts are for."""
        authorize(principal, (agent_id,), f"agent {agent_id!r}")
        return self.stream(agent_id, last_event_id)

    async def stream(
        self,
        agent_id: str,
        last_event_id: str | None,
        *,
        keepalive: float = 15.0,
        clock: Callable[[], float] = time.time,
    ) -> AsyncIterator[dict[str, Any] | None]:
        """An agent's alerts: those after ``last_event_id`` (or raised in the last seconds),
        then live ones as they come; ``None`` every ``keepalive`` seconds of silence.

        The subscription hands over the agent's history and then every alert published after
        it; ids at or before the cursor or already sent are skipped, so nothing published in
        between is lost or sent twice. Each wake-up takes every alert queued since the last.
        """
        subscription = await self.bus.subscribe(agent_id)
        self._streams.add(subscription)
        cursor = last_event_id or id_floor(clock() - 2.0)
        sent: dict[str, None] = {}
        try:
            while not self._stopping.is_set():
                batch = await subscription.take(keepalive)
                if subscription.closed:
                    return
                if not batch:
                    yield None  # a keep-alive after ``keepalive`` seconds of silence
                    continue
                for raw in batch:
                    message: dict[str, Any] = _decode(raw)
                    key = message.get("id", "")
                    if key <= cursor or key in sent:
                        continue  # seen before the cursor, or both in the history and live
                    sent[key] = None
                    if len(sent) > 2 * self.history:
                        for old in list(sent)[: self.history]:
                            del sent[old]
                    yield message
        finally:
            self._streams.discard(subscription)
            self.bus.unsubscribe(subscription)

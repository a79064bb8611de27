"""Alerts pushed to agents' desktops while they handle a customer.

    interaction starts ─▶ the first decision's alerts ──────────────┐
    context PUT/PATCH, event POST ─▶ for each live interaction of   │
        the customer: its revision's rules on the cached context    │
        (plus the overrides it started with) ─▶ alerts ─────────────┤
                                                                    ▼
        claim, weighed by the ruleset's contact policy (one round trip to the shared store):
          a repeat of (interaction, rule) within ``repeat_after`` ─▶ counted, nothing else
          a quiet period, a topic held by an alert as severe, the window's limit reached
            ─▶ ledger record ``alert_suppressed`` with the reason
          raised ─▶ ledger record ``alert`` (durable) ─▶ published on ``alerts:<agent>``
            └▶ ``require_ack``: expected by ``ack_within``; overdue ─▶ ledger record
               ``alert_escalated`` ─▶ published on the policy's supervisor's stream
    an escalation rule wins on a timer, an event or a context write ─▶ claimed once per
        interaction and rule (no contact policy) ─▶ ledger record ``escalation_raised``
        ─▶ published on ``alerts:<agent>`` (an alert carrying the escalation) and on the
        policy's supervisor's stream
    desktop ─GET /v1/agents/<agent>/alerts (WebSocket or SSE)─▶ history after its cursor,
        then live messages; ``Last-Event-ID`` resumes where it left off
    agent ─POST /v1/alerts/<id>/ack─▶ ledger record ``ack``; ``dismissed`` starts the
        policy's quiet period for the interaction

An alert's id is ``<evaluation id>.<rule>``; the evaluation id is a ULID, so ids sort by the
time they were raised and serve as the stream's event ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import structlog

from adapters.memory import MemoryAlertStore
from adapters.ports import (
    RAISED,
    REPEAT,
    AlertBus,
    AlertClaim,
    AlertInputs,
    AlertLimit,
    AlertStore,
    AlertSubscription,
    DecisionReads,
    Interaction,
    InteractionStore,
    StoreUnavailable,
)
from audit.masking import Masker
from audit.record import Actor, LedgerRecord, RulesetRef
from audit.recording import (
    ACK_OUTCOMES,
    ack_record,
    alert_record,
    delivered_record,
    escalated_record,
    escalation_record,
    mask_shown,
    masked_paths,
    ruleset_ref,
    suppressed_record,
)
from engine import CompiledRuleset, EvaluationError, RulesetRegistry, UnknownRuleset
from engine.durations import parse_duration
from engine.times import format_time, read_time
from server.ids import encode_ulid, new_id
from server.keys import Principal
from server.service.access import authorize
from server.service.answers import AckRecorded, DecisionAnswer
from server.service.errors import Invalid, NotFound, TooMany, Unavailable
from server.service.explanations import reason_code
from server.service.inputs import context_view, interaction_overrides
from server.service.policy import ACK_SECONDS, RANK, Tally, Terms, supervisor_channel
from server.service.recorder import Recorder

log = structlog.get_logger("frontline")

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


SHOWN_EVERY = 0.05  # seconds between writes of delivery times to the store
# An escalation rule is raised once per interaction: its claim lasts as long as an interaction
# can (one left open expires after a day).
ESCALATE_ONCE = timedelta(hours=24)
ESCALATION_SEVERITY = "warning"  # what the agent's desktop shows an escalation as
ESCALATIONS_KNOWN = 100_000  # claimed escalations this instance remembers, at most


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
        interactions: InteractionStore,
        *,
        masker: Masker | None,
        shown: Masker,
        repeat_after: timedelta = timedelta(minutes=10),
        retain: timedelta = timedelta(hours=12),
        history: int = 100,
        streams_per_agent: int = 5,
        max_streams: int = 10_000,
    ) -> None:
        self.registry = registry
        self.reads = reads
        self.recorder = recorder
        self.store = store
        # Used when the shared store cannot be reached: repeats are then suppressed per
        # instance, and this instance can still take acks for the alerts it raised.
        self._local = store if isinstance(store, MemoryAlertStore) else MemoryAlertStore()
        self.bus = bus
        self.interactions = interactions
        self.masker = masker  # the ledger's
        self.shown = shown  # what agents are shown
        self._streams: set[AlertSubscription] = set()
        self.repeat_after = repeat_after
        self.retain = retain
        self.history = history
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = asyncio.Event()
        self.streams_per_agent = streams_per_agent
        self.max_streams = max_streams
        self._open: dict[str, int] = {}  # channel → streams open or about to open
        self._terms: dict[tuple[str, int], Terms] = {}
        self.raised = 0
        self.escalations = 0  # escalation rules raised (once each per interaction)
        # (interaction, escalation rule) known to be claimed, by this instance or another: a
        # rule that keeps winning is not claimed again, a store round trip each time.
        self._escalated: dict[tuple[str, str], None] = {}
        self.tally = Tally()
        self._shown: list[tuple[str, str]] = []  # (alert id, delivered at) not yet stored
        self.ack_seconds = ACK_SECONDS

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
        due_at: datetime | None = None,
    ) -> list[str]:
        """Weigh each alert by the contact policy; record and publish those raised, record
        those held back with the reason. Each alert's ``message`` is what the agent is shown;
        its ``recorded`` (if it differs) the message as the ledger keeps it.

        Returns the ids of the alerts raised. Each is durable in the ledger before it is
        published, so a desktop never shows an alert the ledger does not hold.
        """
        terms = self._terms_of(ruleset.name, ruleset.revision)
        raised_at = format_time(datetime.now(UTC))
        whom = _whom(interaction, ruleset.name, ruleset.revision, raised_at)
        # The most severe first: of one topic raised together, it is the one shown.
        ordered = sorted(alerts, key=lambda a: -RANK.get(a["severity"], 0))
        claims = [
            AlertClaim(
                rule=alert["rule"],
                alert_id=alert.get("alert_id") or f"{new_id()}.{alert['rule']}",
                rank=RANK.get(alert["severity"], 0),
                topic=terms.topics.get(alert["rule"]) if terms else None,
            )
            for alert in ordered
        ]
        # Weighed, and the raised ones remembered for acks, in one round trip.
        outcomes = await self._claim(
            interaction.interaction_id, claims, whom, terms.limit if terms else None
        )
        tally = self.tally
        records = []
        fresh = []
        for claim, alert, outcome in zip(claims, ordered, outcomes, strict=True):
            if outcome == REPEAT:
                tally.add(ruleset.name, claim.rule, "repeat")
                continue
            common = {
                "record_id": new_id(),
                "alert_id": claim.alert_id,
                "rule": claim.rule,
                "severity": alert["severity"],
                "message": alert.get("recorded", alert["message"]),
                "ruleset": ruleset,
                "customer_id": interaction.customer_id,
                "agent_id": interaction.agent_id,
                "interaction_id": interaction.interaction_id,
                "trigger": trigger,
                "decision_id": decision_id,
            }
            if outcome == RAISED:
                fresh.append((claim, alert))
                due = format_time(due_at) if due_at is not None else None
                records.append(alert_record(**common, due_at=due))
            else:
                tally.add(ruleset.name, claim.rule, f"suppressed:{outcome}")
                records.append(suppressed_record(reason=outcome, **common))
        if not records:
            return []
        # Appended together: one group commit holds them all.
        await asyncio.gather(*(self.recorder.append(record) for record in records))
        for claim, alert in fresh:
            message = {
                "id": claim.alert_id,
                "alert_id": claim.alert_id,
                "rule": claim.rule,
                "severity": alert["severity"],
                "message": alert["message"],
                "customer_id": interaction.customer_id,
                "interaction_id": interaction.interaction_id,
                "ruleset": ruleset.name,
                "revision": ruleset.revision,
                "trigger": trigger,
                "raised_at": raised_at,
            }
            within = terms.ack_within.get(claim.rule) if terms else None
            if within is not None:
                message["ack_within"] = within
                await self._expect_ack(claim.alert_id, within)
            self.bus.publish(interaction.agent_id, _encode(message))
            tally.add(ruleset.name, claim.rule, "raised")
        self.raised += len(fresh)
        return [claim.alert_id for claim, _ in fresh]

    def _terms_of(self, name: str, revision: int | None) -> Terms | None:
        """The contact policy terms of revision ``revision`` of ``name`` (None if gone)."""
        key = (name, revision or 0)
        found = self._terms.get(key)
        if found is None:
            try:
                found = Terms.of(self.registry.get(name, revision or 0))
            except UnknownRuleset:
                return None
            self._terms[key] = found
        return found

    async def _expect_ack(self, alert_id: str, within: str) -> None:
        due = time.time() + parse_duration(within).total_seconds()
        try:
            await self.store.expect_ack(alert_id, due)
        except StoreUnavailable:
            await self._local.expect_ack(alert_id, due)

    async def _claim(
        self,
        interaction_id: str,
        alerts: list[AlertClaim],
        whom: dict[str, Any],
        limit: AlertLimit | None,
    ) -> list[str]:
        """Weigh each alert in the shared store; while it is away, in this instance (the
        policy is then kept per instance, and acks reach this instance)."""
        try:
            outcomes = await self.store.claim(
                interaction_id, alerts, whom, self.repeat_after, self.retain, limit
            )
        except StoreUnavailable as exc:
            outcomes = await self._local.claim(
                interaction_id, alerts, whom, self.repeat_after, self.retain, limit
            )
            log.warning(
                "alerts known to this instance only",
                alert_ids=[
                    a.alert_id for a, o in zip(alerts, outcomes, strict=True) if o == RAISED
                ],
                error=str(exc),
            )
            return outcomes
        if self._local is not self.store:  # acks for them still work while Redis is away
            await self._local.remember(
                [(a.alert_id, whom) for a, o in zip(alerts, outcomes, strict=True) if o == RAISED],
                self.retain,
            )
        return outcomes

    async def _lookup(self, alert_id: str) -> dict[str, Any] | None:
        try:
            found = await self.store.lookup(alert_id)
        except StoreUnavailable:
            found = None
        return found if found is not None else await self._local.lookup(alert_id)

    def deliver_later(
        self, interaction: Interaction, decision: DecisionAnswer, record: LedgerRecord
    ) -> None:
        """Deliver a decision's alerts (as its answer shows them; as its ledger ``record``
        keeps them) without holding up its answer."""
        if not decision.get("alerts"):
            return
        ruleset = RulesetRef(
            name=decision["ruleset"], revision=decision["revision"], digest=decision["digest"]
        )
        recorded = {a["rule"]: a["message"] for a in (record.outputs or {}).get("alerts", ())}
        alerts = [
            {**a, "recorded": recorded.get(a["rule"], a["message"])} for a in decision["alerts"]
        ]
        task = asyncio.create_task(
            self.deliver(
                interaction,
                alerts,
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
        """Run the alert and escalation rules listening for ``trigger`` (``context_change`` or
        ``event``) for each live interaction of the customer; deliver what fires, and raise the
        escalation that wins (once per interaction and rule). ``cause`` says what happened
        (``context``, ``event:payment_failed``) in the ledger records.

        ``event`` (type, time) is recorded first, in the same round trip that reads the live
        interactions, the context and the counters the active revisions count (on Redis)."""
        now = datetime.now(UTC)
        needed = self.counted()
        inputs = await self.reads.for_alerts(customer_id, needed, now, event=event)
        delivered: list[str] = []
        for interaction in inputs.interactions:
            try:
                compiled = self.registry.get(interaction.ruleset, interaction.revision)
            except UnknownRuleset:
                continue
            terms = self._terms_of(compiled.name, compiled.revision)
            if not compiled.model.alerts and (terms is None or trigger not in terms.escalates_on):
                continue
            alerts, escalation = await self.outcome(
                compiled, interaction, trigger, inputs, needed, now
            )
            if alerts:
                delivered += await self.deliver(
                    interaction,
                    alerts,
                    ruleset=ruleset_ref(compiled),
                    trigger=cause,
                )
            if escalation is not None:
                raised = await self.escalate(interaction, escalation, compiled, trigger=cause)
                if raised is not None:
                    delivered.append(raised)
        return delivered

    def counted(self) -> frozenset[tuple[str, str]]:
        """The counters the revisions served now read (from memory, no store read)."""
        needed: set[tuple[str, str]] = set()
        for compiled in self.registry.serving():
            needed |= compiled.counters_needed
        return frozenset(needed)

    async def outcome(
        self,
        compiled: CompiledRuleset,
        interaction: Interaction,
        trigger: str,
        inputs: AlertInputs,
        needed: frozenset[tuple[str, str]],
        now: datetime,
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """The alerts ``compiled``'s rules listening for ``trigger`` raise for ``interaction``
        at ``now``, on ``inputs`` (read with the counters ``needed``; those of an older revision
        counting others are read on their own), and the escalation that wins among the
        escalation rules listening for ``trigger`` (None when none holds)."""
        counters = inputs.counters
        if not compiled.counters_needed <= needed:
            counters = (
                await self.reads.read(interaction.customer_id, compiled.counters_needed, None, now)
            ).counters
        return self._evaluate(compiled, interaction, trigger, inputs, counters, now)

    def _evaluate(
        self,
        compiled: CompiledRuleset,
        interaction: Interaction,
        trigger: str,
        inputs: AlertInputs,
        counters: dict[str, dict[str, int]] | None,
        now: datetime,
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        overrides = interaction_overrides(interaction, compiled)
        context, _, as_of, _ = context_view(inputs.context, overrides, now)
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
            return [], None
        answer = decision.to_dict()
        alerts: list[dict[str, Any]] = answer["alerts"]
        escalation: dict[str, Any] | None = answer["escalation"]
        if not any(a["rule"] in compiled.alert_templates for a in alerts):
            return alerts, escalation
        # The agent the interaction belongs to handles the customer: pii alone is masked.
        fired = {"alerts": alerts}
        shown = mask_shown(decision, fired, masked_paths(compiled, self.shown), self.shown.mask)
        kept = fired
        if self.masker is not None:
            kept = mask_shown(
                decision, fired, masked_paths(compiled, self.masker), self.masker.mask
            )
        return [
            {**alert, "recorded": recorded["message"]}
            for alert, recorded in zip(shown["alerts"], kept["alerts"], strict=True)
        ], escalation

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
        if outcome == "overridden" and not (note and note.strip()):
            raise Invalid("an override needs a reason: say why in note")
        found = await self._lookup(alert_id)
        if found is None:
            raise NotFound(f"there is no recent alert {alert_id!r}")
        authorize(principal, (found["agent_id"],), f"alert {alert_id!r}")
        record_id = new_id()
        delivered_at = found.get("delivered_at")
        after_ms = None
        if delivered_at is not None:
            shown = read_time(delivered_at).timestamp()
            after_ms = max(0, round((time.time() - shown) * 1000))
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
                delivered_at=delivered_at,
                after_ms=after_ms,
            )
        )
        await self._answered(alert_id, outcome, found)
        return AckRecorded(alert_id=alert_id, outcome=outcome, record_id=record_id)

    async def _answered(self, alert_id: str, outcome: str, found: dict[str, Any]) -> None:
        """After an ack: no escalation for it; a dismissal starts the quiet period; the
        time it took is counted."""
        name, revision = found.get("ruleset"), found.get("revision")
        rule = alert_id.rsplit(".", 1)[-1]
        try:
            await self.store.acked(alert_id)
            await self._local.acked(alert_id)
            terms = self._terms_of(name, revision) if name else None
            if outcome == "dismissed" and terms is not None and terms.quiet is not None:
                await self.store.quiet(found["interaction_id"], terms.quiet)
        except StoreUnavailable as exc:
            log.warning(
                "acknowledgement kept by this instance only", alert_id=alert_id, error=str(exc)
            )
        if name and not found.get("escalation"):  # the tally counts alert rules
            self.tally.add(name, rule, "acknowledged")
            raised_at = found.get("raised_at")
            if raised_at:
                waited = time.time() - read_time(raised_at).timestamp()
                self.tally.acked_after(name, rule, max(0.0, waited))

    def _delivered(self, agent_id: str, alerts: list[dict[str, Any]]) -> None:
        """Record that ``alerts`` were handed to a desktop stream of ``agent_id``, now: the
        ledger's ``alert_delivered`` records and the store's delivery times (for the time to
        an answer), without holding up the stream."""
        if not alerts:
            return
        at = format_time(datetime.now(UTC))
        for alert in alerts:
            if "escalation" not in alert:  # the tally counts alert rules
                self.tally.add(alert["ruleset"], alert["rule"], "delivered")
            self.recorder.later(
                delivered_record(
                    record_id=new_id(),
                    alert_id=alert["alert_id"],
                    delivered_at=at,
                    agent_id=agent_id,
                    customer_id=alert.get("customer_id"),
                    interaction_id=alert.get("interaction_id"),
                ),
                "alert delivery",
            )
        # Written to the store together, every SHOWN_EVERY seconds: one round trip for all the
        # alerts delivered meanwhile, not one per stream wake-up.
        first = not self._shown
        self._shown.extend((alert["alert_id"], at) for alert in alerts)
        if first:
            task = asyncio.create_task(self._store_delivered())
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    async def _store_delivered(self) -> None:
        await asyncio.sleep(SHOWN_EVERY)
        shown, self._shown = self._shown, []
        # The store away: the local copy below still answers this instance's acks.
        with contextlib.suppress(StoreUnavailable):
            await self.store.delivered(shown)
        if self._local is not self.store:
            await self._local.delivered(shown)

    # -- escalating ------------------------------------------------------------------------

    async def escalate(
        self,
        interaction: Interaction,
        escalation: Mapping[str, Any],
        compiled: CompiledRuleset,
        *,
        trigger: str,
        due_at: datetime | None = None,
    ) -> str | None:
        """Raise the escalation an escalation rule of ``compiled`` gave in ``interaction``
        (``{"rule", "queue", "priority", "because"}``, as a decision gives it), once per
        interaction and rule across instances: record it in the ledger
        (``escalation_raised``), then send it to the agent's desktop as an alert that carries
        the escalation, and to the policy's supervisor. The contact policy does not hold it
        back. Returns its alert id, or None when the rule was raised in the interaction before.
        """
        rule = escalation["rule"]
        known = (interaction.interaction_id, rule)
        if known in self._escalated:
            return None
        alert_id = f"{new_id()}.{rule}"
        raised_at = format_time(datetime.now(UTC))
        whom = _whom(interaction, compiled.name, compiled.revision, raised_at)
        whom["escalation"] = True
        once = (interaction.interaction_id, rule, alert_id, whom, ESCALATE_ONCE, self.retain)
        try:
            claimed = await self.store.claim_once(*once)
        except StoreUnavailable as exc:
            claimed = await self._local.claim_once(*once)
            log.warning("escalation known to this instance only", alert_id=alert_id, error=str(exc))
        else:
            if claimed and self._local is not self.store:  # acks still work while Redis is away
                await self._local.remember([(alert_id, whom)], self.retain)
        if len(self._escalated) >= ESCALATIONS_KNOWN:
            self._escalated.clear()  # the store's claim still holds; this only saves trips
        self._escalated[known] = None
        if not claimed:
            return None
        written = next((r.reason_code for r in compiled.model.escalation if r.id == rule), None)
        code = reason_code("escalation", rule, written)
        terms = self._terms_of(compiled.name, compiled.revision)
        supervisor = terms.supervisor if terms is not None else None
        due = format_time(due_at) if due_at is not None else None
        detail = {
            "queue": escalation["queue"],
            "priority": escalation["priority"],
            "because": escalation.get("because"),
            "reason_code": code,
        }
        await self.recorder.append(
            escalation_record(
                record_id=new_id(),
                alert_id=alert_id,
                rule=rule,
                queue=detail["queue"],
                priority=detail["priority"],
                because=detail["because"],
                reason_code=code,
                ruleset=ruleset_ref(compiled),
                customer_id=interaction.customer_id,
                agent_id=interaction.agent_id,
                interaction_id=interaction.interaction_id,
                trigger=trigger,
                supervisor=supervisor,
                due_at=due,
            )
        )
        common = {
            "alert_id": alert_id,
            "rule": rule,
            "customer_id": interaction.customer_id,
            "interaction_id": interaction.interaction_id,
            "ruleset": compiled.name,
            "revision": compiled.revision,
            "trigger": trigger,
            "raised_at": raised_at,
            "due_at": due,
            "escalation": detail,
        }
        message = detail["because"] or f"Escalate to {detail['queue']}"
        self.bus.publish(
            interaction.agent_id,
            _encode(
                {"id": alert_id, **common, "severity": ESCALATION_SEVERITY, "message": message}
            ),
        )
        if supervisor is not None:
            self.bus.publish(
                supervisor_channel(supervisor),
                _encode(
                    {
                        "id": new_id(),
                        "type": "escalation",
                        "agent_id": interaction.agent_id,
                        **common,
                        "escalated_at": raised_at,
                    }
                ),
            )
        self.escalations += 1
        return alert_id

    async def watch_acks(self, period: float = 1.0) -> None:
        """Re-raise overdue ``require_ack`` alerts to their supervisor, every ``period``
        seconds, until stopped. Each overdue alert is taken by one instance only."""
        while not self._stopping.is_set():
            try:
                await self.escalate_overdue()
            except Exception as exc:  # the next round tries again
                log.error("overdue acknowledgements not escalated", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), period)

    async def escalate_overdue(self, now: float | None = None) -> list[str]:
        """Escalate every alert whose acknowledgement is overdue at ``now``; their ids."""
        now = time.time() if now is None else now
        try:
            overdue = await self.store.overdue(now)
        except StoreUnavailable:
            overdue = []
        if self._local is not self.store:
            overdue += await self._local.overdue(now)
        escalated = []
        for alert_id in overdue:
            found = await self._lookup(alert_id)
            if found is None:
                log.warning("an overdue alert is no longer known", alert_id=alert_id)
                continue
            terms = self._terms_of(found["ruleset"], found["revision"])
            rule = alert_id.rsplit(".", 1)[-1]
            if terms is None or terms.supervisor is None:
                continue
            within = terms.ack_within.get(rule) or ""
            await self.recorder.append(
                escalated_record(
                    record_id=new_id(),
                    alert_id=alert_id,
                    supervisor=terms.supervisor,
                    raised_at=found.get("raised_at"),
                    ack_within=within,
                    customer_id=found["customer_id"],
                    agent_id=found["agent_id"],
                    interaction_id=found["interaction_id"],
                )
            )
            message = {
                "id": new_id(),
                "type": "escalation",
                "alert_id": alert_id,
                "rule": rule,
                "agent_id": found["agent_id"],
                "customer_id": found["customer_id"],
                "interaction_id": found["interaction_id"],
                "ruleset": found["ruleset"],
                "raised_at": found.get("raised_at"),
                "ack_within": within,
                "escalated_at": format_time(datetime.now(UTC)),
            }
            self.bus.publish(supervisor_channel(terms.supervisor), _encode(message))
            self.tally.add(found["ruleset"], rule, "escalated")
            escalated.append(alert_id)
        return escalated

    # -- the stream ------------------------------------------------------------------------

    def follow(
        self, principal: Principal, agent_id: str, last_event_id: str | None
    ) -> AsyncIterator[dict[str, Any] | None]:
        """``stream`` for the agent ``principal`` may read (checked now, before a response
        begins): only the agent the alerts are for."""
        authorize(principal, (agent_id,), f"agent {agent_id!r}")
        return self._reserved(agent_id, f"agent {agent_id!r}", last_event_id, agent=agent_id)

    def follow_supervisor(
        self, principal: Principal, supervisor_id: str, last_event_id: str | None
    ) -> AsyncIterator[dict[str, Any] | None]:
        """The escalations for the supervisor ``principal`` may read: only its own."""
        authorize(principal, (supervisor_id,), f"supervisor {supervisor_id!r}")
        channel = supervisor_channel(supervisor_id)
        return self._reserved(channel, f"supervisor {supervisor_id!r}", last_event_id)

    def _reserved(
        self, channel: str, whose: str, last_event_id: str | None, *, agent: str | None = None
    ) -> AsyncIterator[dict[str, Any] | None]:
        """``stream(channel)``, counted against the caps: at most ``streams_per_agent`` open
        per agent (or supervisor), ``max_streams`` in all. The count is taken now, before a
        response begins, and given back when the stream ends or is dropped unread."""
        held = self._open.get(channel, 0)
        if held >= self.streams_per_agent:
            raise TooMany(
                f"{whose} already has {held} alert streams open, the most allowed; close one first",
                retry_after=5,
            )
        if sum(self._open.values()) >= self.max_streams:
            raise Unavailable(
                "this server has as many alert streams open as it takes; try another instance",
                retry_after=5,
            )
        self._open[channel] = held + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self._open.get(channel, 1) - 1
            if left > 0:
                self._open[channel] = left
            else:
                self._open.pop(channel, None)

        messages = self.stream(channel, last_event_id, release=release, agent=agent)
        weakref.finalize(messages, release)  # dropped before it was ever read
        return messages

    async def _live(self, message: dict[str, Any], agent: str, seen: dict[str, bool]) -> bool:
        """Whether ``message``'s interaction is a live one of ``agent``'s, asked once per
        interaction and stream (an interaction that ended never comes back; one that ends
        while the stream is open raises nothing more after its end)."""
        interaction_id = message.get("interaction_id")
        if interaction_id is None:
            return True
        known = seen.get(interaction_id)
        if known is None:
            try:
                found = await self.interactions.get(interaction_id)
            except StoreUnavailable:
                log.warning(
                    "alert held back: its interaction cannot be checked",
                    alert_id=message.get("alert_id"),
                )
                return False
            known = found is not None and found.agent_id == agent
            if len(seen) > self.history:
                seen.clear()
            seen[interaction_id] = known
        return known

    async def stream(
        self,
        agent_id: str,
        last_event_id: str | None,
        *,
        keepalive: float = 15.0,
        clock: Callable[[], float] = time.time,
        release: Callable[[], None] | None = None,
        agent: str | None = None,
    ) -> AsyncIterator[dict[str, Any] | None]:
        """An agent's alerts (or a supervisor's escalations, on its channel): those after
        ``last_event_id`` (or raised in the last seconds), then live ones as they come;
        ``None`` every ``keepalive`` seconds of silence. With ``agent``, only the alerts of
        that agent's live interactions: an alert kept for a desktop that reconnects is not
        sent once its interaction has ended.

        The subscription hands over the agent's history and then every alert published after
        it; ids at or before the cursor or already sent are skipped, so nothing published in
        between is lost or sent twice. Each wake-up takes every alert queued since the last.
        """
        subscription = await self.bus.subscribe(agent_id)
        self._streams.add(subscription)
        cursor = last_event_id or id_floor(clock() - 2.0)
        sent: dict[str, None] = {}
        live: dict[str, bool] = {}  # interaction id → live and the agent's, as first seen
        try:
            while not self._stopping.is_set():
                batch = await subscription.take(keepalive)
                if subscription.closed:
                    return
                if not batch:
                    yield None  # a keep-alive after ``keepalive`` seconds of silence
                    continue
                fresh: list[dict[str, Any]] = []
                for raw in batch:
                    message: dict[str, Any] = _decode(raw)
                    key = message.get("id", "")
                    if key <= cursor or key in sent:
                        continue  # seen before the cursor, or both in the history and live
                    sent[key] = None
                    if len(sent) > 2 * self.history:
                        for old in list(sent)[: self.history]:
                            del sent[old]
                    fresh.append(message)
                if agent is not None:
                    fresh = [m for m in fresh if await self._live(m, agent, live)]
                self._delivered(agent_id, [m for m in fresh if "severity" in m])
                for message in fresh:
                    yield message
        finally:
            self._streams.discard(subscription)
            self.bus.unsubscribe(subscription)
            if release is not None:
                release()


def _whom(
    interaction: Interaction, ruleset: str, revision: int | None, raised_at: str
) -> dict[str, Any]:
    """Whom an alert went to, as the alert store keeps it for acks and escalations."""
    return {
        "agent_id": interaction.agent_id,
        "customer_id": interaction.customer_id,
        "interaction_id": interaction.interaction_id,
        "ruleset": ruleset,
        "revision": revision,
        "raised_at": raised_at,
    }

"""What the HTTP handlers do, without HTTP: decide, start and end interactions, write context.

    decide(request) ─▶ revision: pinned (interaction, revision) or routed (canary, shadow)
                    ─▶ context: cached (ContextStore) with the request's overrides on top
                    ─▶ counters for count(...) (EventCounters)
                    ─▶ engine.evaluate ─▶ ledger record ─▶ await durable ─▶ response
                    └▶ shadow revision: evaluated on the same inputs; a difference is recorded

Every failure is a ``Problem`` with an HTTP status and one plain sentence; handlers turn it
into RFC 9457 problem details.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import structlog

from audit.indexer import IndexFollower
from audit.masking import Masker
from audit.record import Actor, LedgerRecord, RulesetRef
from audit.recording import decision_record, mask_tree
from audit.shipper import LedgerShipper
from audit.writer import LedgerBusy, LedgerError, LedgerWriter
from engine import (
    CompiledRuleset,
    ContextStore,
    CustomerContext,
    DecisionReads,
    EvaluationError,
    EventCounters,
    Interaction,
    InteractionStore,
    RulesetRegistry,
    StoreUnavailable,
    UnknownRuleset,
)
from engine.decision import format_time
from engine.runtime import to_datetime
from server.ids import new_id
from server.keys import Principal
from server.metrics import Metrics
from server.schemas import DecisionRequest, InteractionRequest

log = structlog.get_logger("frontline")


def evaluation_time() -> datetime:
    """The ``now`` an evaluation sees: the clock rounded up to the millisecond, as the
    decision and its record write it, so a replay of the record evaluates at exactly the same
    instant. Up, not down: an event counted a few microseconds ago is not in the future."""
    now = datetime.now(UTC)
    return now + timedelta(microseconds=-now.microsecond % 1000)


class Problem(Exception):
    """A request Frontline will not carry out: an HTTP status and one plain sentence."""

    def __init__(
        self, status: int, detail: str, *, title: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title
        self.retry_after = retry_after


MAX_NESTING = 32


def too_deep(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether ``value`` nests objects and arrays more than ``limit`` levels deep."""
    level = [value]
    for _ in range(limit + 1):
        below: list[Any] = []
        for item in level:
            if item.__class__ is dict:
                below.extend(v for v in item.values() if v.__class__ in (dict, list))
            elif item.__class__ is list:
                below.extend(v for v in item if v.__class__ in (dict, list))
        if not below:
            return False
        level = below
    return True


def check_nesting(name: str, value: Any) -> None:
    if value is not None and too_deep(value, MAX_NESTING - 1):
        raise Problem(400, f"{name} nests deeper than {MAX_NESTING} levels")


def merge_over(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged on top (objects merge, other values replace)."""
    out = dict(base)
    for key, value in overrides.items():
        current = out.get(key)
        if value.__class__ is dict and current.__class__ is dict:
            out[key] = merge_over(current, value)
        else:
            out[key] = value
    return out


def override_paths(overrides: Mapping[str, Any], prefix: str = "") -> list[str]:
    paths: list[str] = []
    for key, value in overrides.items():
        path = prefix + key
        if value.__class__ is dict and value:
            paths.extend(override_paths(value, path + "."))
        else:
            paths.append(path)
    return paths


class Context(NamedTuple):
    values: dict[str, Any]
    sources: dict[str, str]
    as_of: dict[str, Any]
    degraded: bool  # served from a fallback while the context store was unreachable


@dataclass
class Frontline:
    """The service's collaborators, wired once at startup."""

    registry: RulesetRegistry
    contexts: ContextStore
    counters: EventCounters
    interactions: InteractionStore
    reads: DecisionReads  # the three above, read together for a decision
    ledger: LedgerWriter
    masker: Masker | None
    max_ruleset_bytes: int = 1_000_000
    metrics: Metrics | None = None
    shipper: LedgerShipper | None = None  # with PostgreSQL: ships the ledger's segments
    indexer: IndexFollower | None = None  # keeps the ledger's query index up
    # server.alerting.Alerting, set up with the app. Typed Any: Litestar resolves this
    # class's annotations at runtime, and server.alerting imports this module.
    alerting: Any = None
    redis: Any = None  # the asyncio Redis client of the shared stores, when there is one

    # -- decisions -------------------------------------------------------------------------

    async def decide(
        self, request: DecisionRequest, principal: Principal, *, interaction_id: str | None = None
    ) -> dict[str, Any]:
        """Evaluate, record durably, and return the decision (the HTTP API's decision shape)."""
        started = time.perf_counter_ns()
        self._check_agent(principal, request.agent_id)
        check_nesting("context", request.context)
        check_nesting("answers", request.answers)
        pinned = interaction_id or request.interaction
        now = evaluation_time()
        if pinned is None:
            if request.revision is not None:
                compiled, shadow = self._get(request.ruleset, request.revision), None
            else:
                compiled, shadow = self._route(request.ruleset, request.customer_id)
            needed = compiled.counters_needed
            if shadow is not None:
                needed = needed | shadow.counters_needed
        else:
            # Most interactions run on the active revision: its counters are read with the
            # context and the interaction, in one round trip.
            try:
                needed = self.registry.active(request.ruleset).counters_needed
            except UnknownRuleset:
                needed = frozenset()  # the interaction's checks say what is wrong
        reads = await self.reads.read(request.customer_id, needed, pinned, now)
        counters, degraded = reads.counters, reads.counters_unavailable
        if pinned is not None:
            compiled, shadow = self._pinned(request, pinned, reads.interaction), None
            if not compiled.counters_needed <= needed:  # it started on another revision
                try:
                    counters = await self.counters.counts(
                        request.customer_id, compiled.counters_needed, now
                    )
                    degraded = False
                except StoreUnavailable:
                    degraded = True
        # count(...) reads 0 while the counters do not answer; the decision says degraded.
        context, sources, as_of, context_degraded = self._context(
            reads.context, request.context, now
        )
        degraded = degraded or context_degraded
        try:
            decision = compiled.evaluate(
                context,
                answers=request.answers,
                now=now,
                counters=counters,
                trace=request.trace,
                as_of=as_of,
                tree=request.tree,
            )
        except EvaluationError as exc:
            raise Problem(422, str(exc), title="The decision could not be evaluated") from None
        decision_id = new_id()
        inputs: dict[str, Any] = {}
        if request.context:
            inputs["context"] = request.context
        if request.answers:
            inputs["answers"] = request.answers
        if request.tree:
            inputs["tree"] = request.tree
        if counters:
            inputs["counters"] = counters
        if pinned:
            inputs["interaction"] = pinned
        if degraded:
            inputs["degraded"] = True
        latency_us = (time.perf_counter_ns() - started) // 1000
        record = decision_record(
            decision,
            record_id=decision_id,
            context=context,
            inputs=inputs,
            sources=sources,
            as_of=as_of,
            actor=Actor(principal=principal.name, role=principal.role),
            customer_id=request.customer_id,
            agent_id=request.agent_id,
            interaction_id=pinned,
            latency_us=latency_us,
            masker=self.masker,
        )
        body = decision.to_dict()
        if degraded:
            body["degraded"] = True
        if shadow is not None:
            self._shadow(shadow, record, body, context, request, now, counters, as_of)
        await self.append(record)
        body["alerts"] = [{"alert_id": f"{decision_id}.{a['rule']}", **a} for a in body["alerts"]]
        if self.metrics is not None:
            self.metrics.decided(
                compiled.name, compiled.revision, (time.perf_counter_ns() - started) / 1e9
            )
        log.debug("decided", decision_id=decision_id, ruleset=compiled.name)
        return {
            "decision_id": decision_id,
            **body,
            "customer_id": request.customer_id,
            "agent_id": request.agent_id,
            "interaction_id": pinned,
        }

    async def start_interaction(
        self, request: InteractionRequest, principal: Principal
    ) -> dict[str, Any]:
        """Begin an interaction on the revision that serves the customer now, and decide."""
        self._check_agent(principal, request.agent_id)
        compiled, _ = self._route(request.ruleset, request.customer_id)
        interaction = Interaction(
            interaction_id=new_id(),
            customer_id=request.customer_id,
            agent_id=request.agent_id,
            ruleset=request.ruleset,
            revision=compiled.revision or 0,
            started_at=format_time(datetime.now(UTC)),
            context=request.context,
        )
        await self.interactions.start(interaction)
        decision = DecisionRequest(
            ruleset=request.ruleset,
            customer_id=request.customer_id,
            agent_id=request.agent_id,
            context=request.context,
            answers=request.answers,
            tree=request.tree,
        )
        try:
            result = await self.decide(
                decision, principal, interaction_id=interaction.interaction_id
            )
        except BaseException:
            await self.interactions.end(interaction.interaction_id)
            raise
        if self.alerting is not None:
            self.alerting.deliver_later(interaction, result)
        return result

    async def end_interaction(self, interaction_id: str, principal: Principal) -> None:
        found = await self.interactions.get(interaction_id)
        if found is None:
            raise Problem(404, f"there is no live interaction {interaction_id!r}")
        self._check_agent(principal, found.agent_id)
        await self.interactions.end(interaction_id)

    def readiness(self) -> list[str]:
        """Why the service is not ready to decide; empty when it is."""
        problems = []
        names = self.registry.names()
        if not names:
            problems.append("no ruleset is deployed")
        for name in names:
            if self.registry.active_revision(name) is None:
                problems.append(f"ruleset {name!r} has no active revision")
        if not self.ledger.accepting:
            problems.append("the ledger is not accepting records")
        failed = getattr(self.ledger.store, "failed", None)
        if failed:
            problems.append(failed)
        return problems

    def masked_context(self, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` with the fields any active ruleset classifies as masked, masked."""
        if self.masker is None:
            return values
        masked: set[str] = set()
        for name in self.registry.names():
            try:
                fields = self.registry.active(name).fields
            except UnknownRuleset:
                continue
            masked.update(p for p, m in fields.items() if self.masker.masks(m.classification))
        return dict(mask_tree(values, "", masked, self.masker)) if masked else values

    # -- the parts -------------------------------------------------------------------------

    @staticmethod
    def _check_agent(principal: Principal, agent_id: str) -> None:
        if principal.role == "agent" and principal.name != agent_id:
            raise Problem(
                403, f"this key belongs to agent {principal.name!r} and cannot act as {agent_id!r}"
            )

    def _route(self, name: str, customer_id: str) -> tuple[CompiledRuleset, CompiledRuleset | None]:
        try:
            return self.registry.route(name, customer_id)
        except UnknownRuleset as exc:
            raise Problem(404, str(exc)) from None

    def _pinned(
        self, request: DecisionRequest, interaction_id: str, found: Interaction | None
    ) -> CompiledRuleset:
        """The revision the live interaction ``found`` runs on, if the request may use it."""
        if found is None:
            raise Problem(404, f"there is no live interaction {interaction_id!r}")
        if found.customer_id != request.customer_id or found.ruleset != request.ruleset:
            raise Problem(
                409,
                f"interaction {interaction_id!r} is about customer {found.customer_id!r} "
                f"and ruleset {found.ruleset!r}",
            )
        if request.revision is not None and request.revision != found.revision:
            raise Problem(
                409,
                f"interaction {interaction_id!r} runs on revision {found.revision}, "
                f"not {request.revision}",
            )
        return self._get(request.ruleset, found.revision)

    def _get(self, name: str, revision: int) -> CompiledRuleset:
        try:
            return self.registry.get(name, revision)
        except UnknownRuleset as exc:
            raise Problem(404, str(exc)) from None

    async def context_for(
        self, customer_id: str, overrides: dict[str, Any] | None, now: datetime
    ) -> Context:
        """The cached context with ``overrides`` on top; per-field sources and times."""
        return self._context(await self.contexts.get(customer_id), overrides, now)

    def _context(
        self, cached: CustomerContext | None, overrides: dict[str, Any] | None, now: datetime
    ) -> Context:
        if self.metrics is not None:
            self.metrics.context_lookup(cached is not None)
        if cached is None:
            values: dict[str, Any] = {}
            sources: dict[str, str] = {}
            as_of: dict[str, Any] = {}
        else:
            values, sources = cached.values, dict(cached.sources)
            as_of = {path: _parsed(when) for path, when in cached.as_of.items()}
        if overrides:
            values = merge_over(values, overrides)
            for path in override_paths(overrides):
                sources[path] = "request"
                as_of[path] = now
        return Context(values, sources, as_of, cached is not None and cached.degraded)

    async def append(self, record: LedgerRecord) -> None:
        """Append durably, or raise a 503 Problem (never report an unrecorded action)."""
        try:
            await self.ledger.append(record)
        except LedgerBusy as exc:
            raise Problem(503, str(exc), title="The ledger is busy", retry_after=1) from None
        except LedgerError as exc:
            log.error("ledger append failed", decision_id=record.id, error=str(exc))
            raise Problem(
                503, "the decision could not be recorded; try again", retry_after=1
            ) from None

    def _shadow(
        self,
        shadow: CompiledRuleset,
        record: LedgerRecord,
        served: dict[str, Any],
        context: dict[str, Any],
        request: DecisionRequest,
        now: datetime,
        counters: dict[str, dict[str, int]] | None,
        as_of: dict[str, Any],
    ) -> None:
        """Evaluate the shadow revision; record a ``shadow`` record when it decides otherwise.

        The record is queued, not awaited: it does not hold up the answer, and a failure to
        record it is logged (the served decision's own record is what must never be lost).
        """
        try:
            other = shadow.evaluate(
                context,
                answers=request.answers,
                now=now,
                counters=counters,
                as_of=as_of,
                tree=request.tree,
            ).to_dict()
        except EvaluationError as exc:
            other = {"error": str(exc)}
        # Rule ids, queues, table outputs and tree nodes only: messages may render masked
        # fields, and the record keeps the inputs to reproduce both sides anyway.
        mine, theirs = _summary(served), _summary(other)
        differences = {
            key: {"served": mine[key], "shadow": theirs[key]}
            for key in mine
            if mine[key] != theirs[key]
        }
        if not differences:
            return
        try:
            self.ledger.submit_nowait(
                LedgerRecord(
                    id=new_id(),
                    kind="shadow",
                    customer_id=record.customer_id,
                    agent_id=record.agent_id,
                    interaction_id=record.interaction_id,
                    ruleset=RulesetRef(
                        name=shadow.name, revision=shadow.revision, digest=shadow.digest
                    ),
                    evaluated_at=record.evaluated_at,
                    context=record.context,
                    inputs=record.inputs,
                    data={
                        "decision_id": record.id,
                        "served_revision": record.ruleset.revision if record.ruleset else None,
                        "differences": differences,
                    },
                )
            ).add_done_callback(_log_failure)
        except LedgerError as exc:
            log.warning("shadow difference not recorded", decision_id=record.id, error=str(exc))


_PARSED: dict[str, datetime | None] = {}


def _parsed(when: str) -> datetime | None:
    """An ``as_of`` string as a datetime; the few distinct values are parsed once each."""
    found = _PARSED.get(when)
    if found is None:
        if len(_PARSED) > 10_000:
            _PARSED.clear()
        found = _PARSED[when] = to_datetime(when)
    return found


def _summary(decision: Mapping[str, Any]) -> dict[str, Any]:
    escalation = decision.get("escalation") or {}
    step = decision.get("next_step") or {}
    return {
        "eligible": [e["rule"] for e in decision.get("eligible") or ()],
        "escalation": escalation.get("rule"),
        "alerts": [a["rule"] for a in decision.get("alerts") or ()],
        "tables": decision.get("tables"),
        "next_step": step.get("outcome") or step.get("node"),
        "error": decision.get("error"),
    }


def _log_failure(future: Any) -> None:
    if future.exception() is not None:
        log.warning("shadow difference not recorded", error=str(future.exception()))

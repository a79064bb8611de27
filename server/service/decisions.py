"""Decisions and interactions: what agents' desktops ask for.

decide(request) ─▶ revision: routed (canary, shadow) or pinned by the interaction
                ─▶ reads, one round trip: cached context, counters, interaction
                ─▶ engine.evaluate ─▶ ledger record ─▶ await durable ─▶ the answer
                └▶ shadow revision: evaluated on the same inputs; a difference is recorded
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import structlog

from adapters.ports import (
    DecisionReads,
    EventCounters,
    Interaction,
    InteractionStore,
    StoreUnavailable,
)
from audit.masking import Masker
from audit.record import Actor, LedgerRecord
from audit.recording import (
    decision_record,
    lookup,
    mask_shown,
    masked_paths,
    ruleset_ref,
)
from audit.shown import differences as shown_differences
from audit.shown import shown
from engine import (
    APPROVED,
    CompiledRuleset,
    Decision,
    EvaluationError,
    RulesetRegistry,
    RulesetRetired,
    UnknownRuleset,
)
from engine.parts import json_value
from engine.times import format_time
from server.ids import new_id
from server.keys import Principal
from server.metrics import Metrics
from server.schemas import DecisionRequest, InteractionRequest
from server.service.access import authorize
from server.service.alerts import Alerting
from server.service.answers import DecisionAnswer
from server.service.errors import Conflict, Forbidden, NotFound, Refused
from server.service.inputs import check_nesting, context_view, interaction_overrides
from server.service.recorder import Recorder
from server.service.rulesets import refusal
from server.service.timers import Timers

log = structlog.get_logger("frontline")


def evaluation_time() -> datetime:
    """The ``now`` an evaluation sees: the clock rounded up to the millisecond, as the
    decision and its record write it, so a replay of the record evaluates at exactly the same
    instant. Up, not down: an event counted a few microseconds ago is not in the future."""
    now = datetime.now(UTC)
    return now + timedelta(microseconds=-now.microsecond % 1000)


class Decisions:
    """Decide for a customer, and start and end the interactions that pin a revision."""

    def __init__(
        self,
        registry: RulesetRegistry,
        reads: DecisionReads,
        counters: EventCounters,
        interactions: InteractionStore,
        recorder: Recorder,
        alerts: Alerting,
        timers: Timers,
        masker: Masker | None,
        shown: Masker,
        metrics: Metrics | None,
    ) -> None:
        self.registry = registry
        self.reads = reads
        self.counters = counters
        self.interactions = interactions
        self.recorder = recorder
        self.alerts = alerts
        self.timers = timers
        self.masker = masker  # the ledger's
        self.shown = shown  # what agents are shown
        self.metrics = metrics

    async def decide(self, request: DecisionRequest, principal: Principal) -> DecisionAnswer:
        """Evaluate, record durably, and return the decision (the HTTP API's decision shape)."""
        return (await self._decide(request, principal))[0]

    async def _decide(  # noqa: PLR0912, PLR0915 -- the hot path, kept in one frame
        self, request: DecisionRequest, principal: Principal, interaction_id: str | None = None
    ) -> tuple[DecisionAnswer, LedgerRecord]:
        """The decision's answer, and its ledger record (durable by now)."""
        started = time.perf_counter_ns()
        authorize(principal, (request.agent_id,), f"agent {request.agent_id!r}")
        check_nesting("context", request.context)
        check_nesting("answers", request.answers)
        pinned = interaction_id or request.interaction
        now = evaluation_time()
        if pinned is None:
            if request.revision is not None:
                self._serving(request.ruleset)
                self._reviewed(request.ruleset, request.revision)
                compiled, shadow = self._get(request.ruleset, request.revision), None
            else:
                compiled, shadow = self._route(request.ruleset, request.customer_id)
            needed = compiled.counters_needed
            if shadow is not None:
                needed = needed | shadow.counters_needed
        else:
            self._serving(request.ruleset)
            # Most interactions run on the active revision: its counters are read with the
            # context and the interaction, in one round trip.
            try:
                needed = self.registry.active(request.ruleset).counters_needed
            except UnknownRuleset:
                needed = frozenset()  # the interaction's checks say what is wrong
        reads = await self.reads.read(request.customer_id, needed, pinned, now)
        if request.trace and principal.role == "agent" and pinned is None:
            await self._handling(principal, request.customer_id)
        counters, degraded = reads.counters, reads.counters_unavailable
        if pinned is not None:
            compiled, shadow = self._pinned(request, principal, pinned, reads.interaction), None
            if not compiled.counters_needed <= needed:  # it started on another revision
                try:
                    counters = await self.counters.counts(
                        request.customer_id, compiled.counters_needed, now
                    )
                    degraded = False
                except StoreUnavailable:
                    degraded = True
        # count(...) reads 0 while the counters do not answer; the decision says degraded.
        if self.metrics is not None:
            self.metrics.context_lookup(reads.context is not None)
        overrides = request.context
        if pinned is not None and reads.interaction is not None:
            overrides = interaction_overrides(reads.interaction, compiled, request.context)
        context, sources, as_of, context_degraded = context_view(reads.context, overrides, now)
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
            raise Refused(str(exc), title="The decision could not be evaluated") from None
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
        shows = body["trace"] is not None or _shows_values(compiled, body)
        hide: frozenset[str] | None = frozenset()
        if shows or request.context_used:  # one look-up serves both
            hide = await self._hidden(principal, request, pinned, compiled)
        if shows and (hide is None or hide):
            body = mask_shown(decision, body, hide, self.shown.mask)
        step = body["next_step"]
        if step is not None and "answer" in step:
            shape = compiled.answer_shapes.get(step["answer"])
            if shape is not None:  # what the question takes, worked out at compile time
                body["next_step"] = {**step, **shape}
        if request.context_used:
            body["context_used"] = self._context_used(
                decision, body, record, context, request, hide, compiled
            )
        if shadow is not None:
            self._shadow(shadow, record, context, request, now, counters, as_of)
        sealed = await self.recorder.append(record)
        body["alerts"] = [{"alert_id": f"{decision_id}.{a['rule']}", **a} for a in body["alerts"]]
        if self.metrics is not None:
            self.metrics.decided(
                compiled.name, compiled.revision, (time.perf_counter_ns() - started) / 1e9
            )
        log.debug("decided", decision_id=decision_id, ruleset=compiled.name)
        answer = {
            "decision_id": decision_id,
            **body,
            "customer_id": request.customer_id,
            "agent_id": request.agent_id,
            "interaction_id": pinned,
            "receipt": {"instance": sealed.instance, "seq": sealed.seq, "leaf_hash": sealed.hash},
        }
        return cast(DecisionAnswer, answer), record

    async def start_interaction(
        self, request: InteractionRequest, principal: Principal
    ) -> DecisionAnswer:
        """Begin an interaction on the revision that serves the customer now, and decide."""
        authorize(principal, (request.agent_id,), f"agent {request.agent_id!r}")
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
            context_used=request.context_used,
        )
        try:
            result, record = await self._decide(decision, principal, interaction.interaction_id)
        except BaseException:
            await self.interactions.end(interaction.interaction_id)
            raise
        self.alerts.deliver_later(interaction, result, record)
        await self.timers.started(interaction)
        return result

    async def end_interaction(self, interaction_id: str, principal: Principal) -> None:
        found = await self.interactions.get(interaction_id)
        if found is None:
            raise NotFound(f"there is no live interaction {interaction_id!r}")
        authorize(principal, (found.agent_id,), f"interaction {interaction_id!r}")
        await self.interactions.end(interaction_id)
        await self.timers.ended(found)

    # -- the parts -------------------------------------------------------------------------

    async def _handles(self, principal: Principal, customer_id: str) -> bool:
        """Whether the agent ``principal`` has a live interaction with the customer."""
        live = await self.interactions.for_customer(customer_id)
        return any(i.agent_id == principal.name for i in live)

    async def _handling(self, principal: Principal, customer_id: str) -> None:
        """Forbidden unless the agent ``principal`` has a live interaction with the customer:
        a trace shows the values the rules read, the customer's context among them."""
        if not await self._handles(principal, customer_id):
            raise Forbidden(
                f"a trace shows customer {customer_id!r}'s context, and agent "
                f"{principal.name!r} is not handling that customer; start an interaction "
                "with the customer first"
            )

    async def _hidden(
        self,
        principal: Principal,
        request: DecisionRequest,
        pinned: str | None,
        compiled: CompiledRuleset,
    ) -> frozenset[str] | None:
        """What an answer that shows values of the customer's may not show: all of them
        (None) to an agent without a live interaction with the customer; else the fields
        classified pii (unless agents are shown pii).

        Only such answers cost the look-up of the customer's live interactions, and not those
        in the agent's own interaction or with a trace (refused before evaluation unless the
        agent handles the customer)."""
        if (
            principal.role == "agent"
            and pinned is None
            and not request.trace
            and not await self._handles(principal, request.customer_id)
        ):
            return None
        return masked_paths(compiled, self.shown)

    def _context_used(
        self,
        decision: Decision,
        body: Mapping[str, Any],
        record: LedgerRecord,
        context: Mapping[str, Any],
        request: DecisionRequest,
        hide: frozenset[str] | None,
        compiled: CompiledRuleset,
    ) -> list[dict[str, Any]]:
        """The fields the decision read, each with its value as the caller may see it, its
        source and age as the record holds them, or missing; labelled for people. Only asked
        for (``context_used``): the record already holds sources and ages, the labels are
        the revision's. ``hide``: what the caller may not see (``_hidden``)."""
        mask = self.shown.mask
        labels = compiled.field_labels
        stale = set(body["stale_fields"])
        answers = request.answers or context.get("answers") or {}
        used: list[dict[str, Any]] = []
        for path in decision.read_paths:
            held = record.context.get(path)
            entry: dict[str, Any] = {"field": path, "label": labels.get(path, path)}
            if held is None:
                entry.update(value=None, source=None, age_ms=None, missing=True, stale=False)
            else:
                if path.startswith("answers."):
                    value = json_value(lookup(answers, path[8:]))
                else:
                    value = json_value(lookup(context, path))
                if hide is None or path in hide:
                    value = mask(value)
                entry.update(
                    value=value,
                    source=held.source,
                    age_ms=held.age_ms,
                    missing=False,
                    stale=path in stale,
                )
            used.append(entry)
        return used

    def _route(self, name: str, customer_id: str) -> tuple[CompiledRuleset, CompiledRuleset | None]:
        try:
            return self.registry.route(name, customer_id)
        except UnknownRuleset as exc:
            raise NotFound(str(exc)) from None
        except RulesetRetired as exc:
            raise Conflict(str(exc), title="Ruleset retired") from None

    def _serving(self, name: str) -> None:
        """Conflict if ``name`` was retired: it decides for nobody, pinned or not."""
        try:
            self.registry.check_serving(name)
        except RulesetRetired as exc:
            raise Conflict(str(exc), title="Ruleset retired") from None

    def _reviewed(self, name: str, revision: int) -> None:
        """Conflict if a decision names a revision waiting for approval, or rejected: it
        decides for nobody. (One being served needs no look at the store.)"""
        served = self.registry.served_routing(name)
        if served is not None and revision in (served.active, served.canary):
            return
        review = self.registry.review(name, revision)
        if review is not None and review.status != APPROVED:
            raise Conflict(refusal(name, revision, review))

    def _get(self, name: str, revision: int) -> CompiledRuleset:
        try:
            return self.registry.get(name, revision)
        except UnknownRuleset as exc:
            raise NotFound(str(exc)) from None

    def _pinned(
        self,
        request: DecisionRequest,
        principal: Principal,
        interaction_id: str,
        found: Interaction | None,
    ) -> CompiledRuleset:
        """The revision the live interaction ``found`` runs on, if the request may use it."""
        if found is None:
            raise NotFound(f"there is no live interaction {interaction_id!r}")
        authorize(principal, (found.agent_id,), f"interaction {interaction_id!r}")
        if found.customer_id != request.customer_id or found.ruleset != request.ruleset:
            raise Conflict(
                f"interaction {interaction_id!r} is about customer {found.customer_id!r} "
                f"and ruleset {found.ruleset!r}"
            )
        if request.revision is not None and request.revision != found.revision:
            raise Conflict(
                f"interaction {interaction_id!r} runs on revision {found.revision}, "
                f"not {request.revision}"
            )
        return self._get(request.ruleset, found.revision)

    def _shadow(
        self,
        shadow: CompiledRuleset,
        record: LedgerRecord,
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
            decision = shadow.evaluate(
                context,
                answers=request.answers,
                now=now,
                counters=counters,
                as_of=as_of,
                tree=request.tree,
            )
            other = decision.to_dict()
            masker = self.masker
            hide = masked_paths(shadow, masker)
            if masker is not None and hide:
                other = mask_shown(decision, other, hide, masker.mask)
        except EvaluationError as exc:
            other = {"error": str(exc)}
        # Both sides as their records keep them: a text that shows a masked field holds its
        # keyed hash, so the differences never put a masked value in clear.
        differences = shown_differences(
            shown(record.outputs), shown(other), names=("served", "shadow")
        )
        if not differences:
            return
        self.recorder.later(
            LedgerRecord(
                id=new_id(),
                kind="shadow",
                customer_id=record.customer_id,
                agent_id=record.agent_id,
                interaction_id=record.interaction_id,
                ruleset=ruleset_ref(shadow),
                evaluated_at=record.evaluated_at,
                context=record.context,
                inputs=record.inputs,
                data={
                    "decision_id": record.id,
                    "served_revision": record.ruleset.revision if record.ruleset else None,
                    "differences": differences,
                },
            ),
            "shadow difference",
        )


def _shows_values(compiled: CompiledRuleset, body: Mapping[str, Any]) -> bool:
    """Whether a decision's answer shows values of the customer's: an alert message, an
    offer's parameter or a tree prompt or question with ``{...}`` parts, or an invalid value
    described."""
    if body["invalid_fields"]:
        return True
    templates = compiled.alert_templates
    if any(alert["rule"] in templates for alert in body["alerts"]):
        return True
    params = compiled.param_templates
    if params and any(offer["rule"] in params for offer in body["eligible"]):
        return True
    step = body["next_step"]
    if step is None:
        return False
    node = compiled.trees[step["tree"]].nodes[step["node"]]
    return (step.get("say") is not None and node.say_template is not None) or (
        step.get("ask") is not None and node.ask_template is not None
    )

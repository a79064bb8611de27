"""Rules that time moves: alert and escalation rules with ``on: [timer]`` and
``every: <duration>``.

    interaction starts ─▶ one timer per distinct ``every`` of its revision's timer rules,
        due one period later (the TimerStore: a sorted set on Redis, a heap in process)
    every TICK seconds, on every instance ─▶ take what is due (each period of each timer
        is handed to one instance only, and moved to its next period in the same step)
        ─▶ for each: the customer's live interactions, context and counters (one round
           trip) ─▶ the timer rules of that period, on that interaction's revision
        ─▶ what fires is delivered like any alert (contact policy, ledger, desktop), its
           record saying when it was due; the winning escalation rule, if it runs on that
           period, is raised once per interaction (ledger, desktop, the policy's supervisor)
    interaction ends ─▶ its timers are cancelled (one whose interaction is gone is dropped
        when it comes due)

A period is taken by one instance; if that instance dies before evaluating it, that period
is skipped and the next one runs: a timer rule runs at most once per period, never twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from adapters.ports import (
    DecisionReads,
    Interaction,
    StoreUnavailable,
    TimerStore,
    timer_key,
    timer_parts,
)
from audit.recording import ruleset_ref
from engine import CompiledRuleset, RulesetRegistry, UnknownRuleset
from engine.durations import parse_duration
from server.service.alerts import Alerting

log = structlog.get_logger("frontline")

TICK = 0.1  # seconds between looks for due timers
TAKE = 500  # timers taken per look, at most
AT_ONCE = 50  # evaluations under way together, at most
LATE_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # lateness histogram buckets


@dataclass(frozen=True)
class Period:
    """The rules that run on one timer period: alert rules and escalation rules, by id."""

    alerts: frozenset[str] = frozenset()
    escalation: frozenset[str] = frozenset()


def periods(compiled: CompiledRuleset) -> dict[int, Period]:
    """The revision's timer periods (milliseconds), each with the rules that run on it."""
    alerts: dict[int, set[str]] = {}
    escalation: dict[int, set[str]] = {}
    model = compiled.model
    for found, rules in ((alerts, model.alerts), (escalation, model.escalation)):
        for rule in rules:
            if "timer" in rule.on and rule.every is not None:
                period = int(parse_duration(rule.every).total_seconds() * 1000)
                found.setdefault(period, set()).add(rule.id)
    return {
        period: Period(
            alerts=frozenset(alerts.get(period, ())),
            escalation=frozenset(escalation.get(period, ())),
        )
        for period in alerts.keys() | escalation.keys()
    }


class Timers:
    """Schedules the timer rules of live interactions and runs them when due."""

    def __init__(
        self,
        registry: RulesetRegistry,
        reads: DecisionReads,
        store: TimerStore,
        alerts: Alerting,
    ) -> None:
        self.registry = registry
        self.reads = reads
        self.store = store
        self.alerts = alerts
        self._periods: dict[tuple[str, int], dict[int, Period]] = {}
        self._stopping = asyncio.Event()
        self.evaluated = 0
        self.late_buckets = [0] * (len(LATE_SECONDS) + 1)  # cumulative, the last is +Inf
        self.late_sum = 0.0
        self.late_seconds = LATE_SECONDS

    # -- scheduling ------------------------------------------------------------------------

    async def started(self, interaction: Interaction) -> None:
        """Schedule the interaction's timer rules, each first due one period from now."""
        found = self._periods_of(interaction.ruleset, interaction.revision)
        if not found:
            return
        now = _now_ms()
        customer, interaction_id = interaction.customer_id, interaction.interaction_id
        await self.store.schedule(
            [(timer_key(period, customer, interaction_id), now + period) for period in found]
        )

    async def ended(self, interaction: Interaction) -> None:
        found = self._periods_of(interaction.ruleset, interaction.revision)
        if found:
            await self.store.cancel(
                [
                    timer_key(period, interaction.customer_id, interaction.interaction_id)
                    for period in found
                ]
            )

    def _periods_of(self, name: str, revision: int) -> dict[int, Period]:
        key = (name, revision)
        found = self._periods.get(key)
        if found is None:
            try:
                found = periods(self.registry.get(name, revision))
            except UnknownRuleset:
                return {}
            self._periods[key] = found
        return found

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Run due timers every TICK seconds until stopped."""
        while not self._stopping.is_set():
            try:
                await self.run_due()
            except StoreUnavailable as exc:
                log.warning("timers not run: the store is away", error=str(exc))
            except Exception as exc:  # the next tick tries again
                log.error("timers not run", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), TICK)

    def stop(self) -> None:
        self._stopping.set()

    async def run_due(self, now: int | None = None) -> int:
        """Evaluate every timer due at ``now`` (milliseconds); how many were taken.

        Up to AT_ONCE evaluations are under way together, so that their store reads overlap
        and their ledger records share group commits; one that fails is logged and does not
        hold up the others."""
        taken = await self.store.take(_now_ms() if now is None else now, TAKE)
        gate = asyncio.Semaphore(AT_ONCE)

        async def one(key: str, due: int) -> None:
            # One that fails skips its period; the next one runs.
            async with gate:
                try:
                    await self._evaluate(key, due)
                except StoreUnavailable as exc:
                    log.warning("timer not run: the store is away", timer=key, error=str(exc))
                except Exception as exc:
                    log.error("timer not run", timer=key, error=str(exc))

        await asyncio.gather(*(one(key, due) for key, due in taken))
        return len(taken)

    async def _evaluate(self, key: str, due: int) -> None:
        period, customer_id, interaction_id = timer_parts(key)
        started = time.time()
        # Never before it is due: the clock, or the due time if a caller ran it early.
        now = max(datetime.now(UTC), datetime.fromtimestamp(due / 1000, UTC))
        needed = self.alerts.counted()
        inputs = await self.reads.for_alerts(customer_id, needed, now)
        interaction = next(
            (i for i in inputs.interactions if i.interaction_id == interaction_id), None
        )
        if interaction is None:  # ended or expired: nothing more to run for it
            await self.store.cancel([key])
            return
        try:
            compiled = self.registry.get(interaction.ruleset, interaction.revision)
        except UnknownRuleset:
            await self.store.cancel([key])
            return
        rules = self._periods_of(interaction.ruleset, interaction.revision).get(period)
        if rules is None:
            await self.store.cancel([key])
            return
        alerts, escalation = await self.alerts.outcome(
            compiled, interaction, "timer", inputs, needed, now
        )
        self._count(started - due / 1000)
        due_at = datetime.fromtimestamp(due / 1000, UTC)
        raising: list[Coroutine[Any, Any, Any]] = []
        fired = [a for a in alerts if a["rule"] in rules.alerts]
        if fired:
            raising.append(
                self.alerts.deliver(
                    interaction,
                    fired,
                    ruleset=ruleset_ref(compiled),
                    trigger="timer",
                    due_at=due_at,
                )
            )
        # The escalation that wins among every timer escalation rule, as a decision's would;
        # raised on the period its rule runs on.
        if escalation is not None and escalation["rule"] in rules.escalation:
            raising.append(
                self.alerts.escalate(
                    interaction, escalation, compiled, trigger="timer", due_at=due_at
                )
            )
        if len(raising) == 1:
            await raising[0]
        elif raising:  # their records in one group commit
            await asyncio.gather(*raising)

    def _count(self, late: float) -> None:
        self.evaluated += 1
        late = max(0.0, late)
        self.late_sum += late
        for k, bound in enumerate(LATE_SECONDS):
            if late <= bound:
                self.late_buckets[k] += 1
        self.late_buckets[-1] += 1


def _now_ms() -> int:
    return int(time.time() * 1000)

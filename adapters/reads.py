"""A decision's reads from any three stores, one after another.

The embedded default (in-process stores: nothing to save by combining) and a context behind
an HTTP source use this; on Redis, ``adapters.redis.RedisDecisionReads`` makes the same reads
in one round trip.
"""

from __future__ import annotations

from datetime import datetime

from adapters.ports import (
    AlertInputs,
    ContextStore,
    DecisionInputs,
    EventCounters,
    InteractionStore,
    StoreUnavailable,
)


class StoreByStore:
    """``DecisionReads`` over a context store, event counters and interactions."""

    def __init__(
        self, contexts: ContextStore, counters: EventCounters, interactions: InteractionStore
    ) -> None:
        self.contexts = contexts
        self.counters = counters
        self.interactions = interactions

    async def read(
        self,
        customer_id: str,
        counters: frozenset[tuple[str, str]],
        interaction_id: str | None,
        now: datetime,
    ) -> DecisionInputs:
        interaction = (
            await self.interactions.get(interaction_id) if interaction_id is not None else None
        )
        context = await self.contexts.get(customer_id)
        counted = None
        if counters:
            try:
                counted = await self.counters.counts(customer_id, counters, now)
            except StoreUnavailable:
                return DecisionInputs(context, None, True, interaction)
        return DecisionInputs(context, counted, False, interaction)

    async def for_alerts(
        self,
        customer_id: str,
        counters: frozenset[tuple[str, str]],
        now: datetime,
        *,
        event: tuple[str, datetime] | None = None,
    ) -> AlertInputs:
        if event is not None:
            await self.counters.record(customer_id, *event)
        interactions = await self.interactions.for_customer(customer_id)
        context = await self.contexts.get(customer_id) if interactions else None
        counted = None
        if counters and interactions:
            try:
                counted = await self.counters.counts(customer_id, counters, now)
            except StoreUnavailable:
                return AlertInputs(interactions, context, None, True)
        return AlertInputs(interactions, context, counted)

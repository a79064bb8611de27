"""What integrations (and agents and auditors, reading) do with customers: the cached
context, and events; each write runs the alert rules of the customer's live interactions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from adapters.memory import leaves
from adapters.ports import ContextStore, CustomerContext, InteractionStore
from audit.masking import Masker
from audit.recording import mask_tree, masked_paths
from engine import RulesetRegistry
from engine.times import format_time, parse_time
from server.keys import Principal
from server.service.access import authorize
from server.service.alerts import Alerting
from server.service.answers import ContextRead, ContextWritten, EventRecorded
from server.service.errors import NotFound
from server.service.inputs import check_nesting, rfc3339


class Customers:
    """Write and read a customer's cached context; record a customer's events."""

    def __init__(
        self,
        registry: RulesetRegistry,
        contexts: ContextStore,
        interactions: InteractionStore,
        alerts: Alerting,
        masker: Masker | None,
        shown: Masker,
    ) -> None:
        self.registry = registry
        self.contexts = contexts
        self.interactions = interactions
        self.alerts = alerts
        self.masker = masker  # the ledger's: what auditors see
        self.shown = shown  # what agents see

    async def replace_context(
        self, customer_id: str, values: dict[str, Any], source: str | None, as_of: str | None
    ) -> ContextWritten:
        """Replace the whole context; the view of what is stored, and the alerts raised."""
        return await self._write(self.contexts.put, customer_id, values, source, as_of)

    async def merge_context(
        self, customer_id: str, values: dict[str, Any], source: str | None, as_of: str | None
    ) -> ContextWritten:
        """Merge ``values`` into the context (objects merge, values replace)."""
        return await self._write(self.contexts.patch, customer_id, values, source, as_of)

    async def _write(
        self,
        write: Callable[..., Awaitable[CustomerContext]],
        customer_id: str,
        values: dict[str, Any],
        source: str | None,
        as_of: str | None,
    ) -> ContextWritten:
        check_nesting("values", values)
        stored = await write(customer_id, values, source, self._as_of(as_of))
        view = {**self._view(stored, None), **await self._alerts(customer_id)}
        return msgspec.convert(view, ContextWritten)

    async def read_context(self, customer_id: str, principal: Principal) -> ContextRead:
        """The cached context with each field's source and age. An agent reads only a
        customer it handles in a live interaction of its own, and sees pii masked (unless the
        server is told to show it to agents); an auditor sees what the ledger masks masked."""
        masker = None
        if principal.role == "agent":
            live = await self.interactions.for_customer(customer_id)
            authorize(principal, (i.agent_id for i in live), f"customer {customer_id!r}")
            masker = self.shown
        elif principal.role == "auditor":
            masker = self.masker
        found = await self.contexts.get(customer_id)
        if found is None:
            raise NotFound(f"no context is cached for customer {customer_id!r}")
        view = self._view(found, masker)
        if found.degraded:
            view["degraded"] = True
        return msgspec.convert(view, ContextRead)

    async def record_event(
        self, customer_id: str, event_type: str, at: str | None
    ) -> EventRecorded:
        """Count an event for ``count(type, within=...)`` and run the alert rules."""
        when = rfc3339("at", at) if at is not None else datetime.now(UTC)
        # Recorded in the same round trip that reads what the alert rules need (on Redis).
        raised = await self.alerts.reevaluate(
            customer_id, "event", f"event:{event_type}", event=(event_type, when)
        )
        return EventRecorded(
            customer_id=customer_id, type=event_type, at=format_time(when), alerts_raised=raised
        )

    # -- the parts -------------------------------------------------------------------------

    @staticmethod
    def _as_of(value: str | None) -> str | None:
        return format_time(rfc3339("as_of", value)) if value is not None else None

    async def _alerts(
        self, customer_id: str, trigger: str = "context_change", cause: str = "context"
    ) -> dict[str, Any]:
        """Re-run the alert rules of the customer's live interactions; the ids raised."""
        return {"alerts_raised": await self.alerts.reevaluate(customer_id, trigger, cause)}

    def _view(self, found: CustomerContext, masker: Masker | None) -> dict[str, Any]:
        now = datetime.now(UTC)
        values = self._masked(found.values, masker) if masker is not None else found.values
        fields = {}
        for path in leaves(found.values):
            as_of = found.as_of.get(path)
            when = parse_time(as_of) if as_of else None
            fields[path] = {
                "source": found.sources.get(path),
                "as_of": as_of,
                "age_ms": int((now - when).total_seconds() * 1000) if when else None,
            }
        return {"customer_id": found.customer_id, "values": values, "fields": fields}

    def _masked(self, values: dict[str, Any], masker: Masker) -> dict[str, Any]:
        """``values`` with the fields any revision served classifies as masked, masked."""
        masked: set[str] = set()
        for compiled in self.registry.serving():  # from memory: no store read per request
            masked |= masked_paths(compiled, masker)
        return dict(mask_tree(values, "", masked, masker)) if masked else values

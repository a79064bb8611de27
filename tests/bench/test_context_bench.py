"""What it costs a decision to get its context: from the request, from the in-process cache in
front of Redis, and from Redis itself (cache off), measured side by side in one run.

Each round runs ``BATCH`` decisions' context-and-evaluate step (the decision reads, the
context view, then ``evaluate``) inside one event-loop pass, so loop overhead is shared out;
the ledger append, identical in every case, is left out. The figures (µs per decision and
the differences from the in-request case) go into ``extra_info`` for tests/bench/report.py.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio

from adapters.memory import (
    MemoryContextStore,
    MemoryEventCounters,
    MemoryInteractions,
    MemoryRulesetStore,
)
from adapters.reads import StoreByStore
from adapters.redis import RedisContextStore
from engine import RulesetRegistry
from server.service.inputs import context_view
from server.settings import STARTER_RULESETS
from tests.support.redis import URL, delete_prefix, require_redis

pytestmark = pytest.mark.bench

BATCH = 200
CUSTOMERS = 50
CONTEXT = {
    "customer": {
        "tier": "gold",
        "tenure_months": 40,
        "churn_score": 0.82,
        "plan": "premium",
        "monthly_spend": 95,
        "past_due_amount": 0,
        "tags": ["autopay"],
        "open_cases": [{"status": "open", "priority": 2, "category": "billing"}],
    },
    "interaction": {"channel": "voice", "intent": "cancel", "notes": "cheaper offer elsewhere"},
    "history": {"contacts_7d": 2},
}


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    found = asyncio.new_event_loop()
    yield found
    found.close()


@pytest.fixture(scope="module")
def prefix() -> Iterator[str]:
    require_redis()
    name = f"bench-{uuid.uuid4().hex[:8]}:"
    yield name
    delete_prefix(name)


@dataclass
class Service:
    """What a decision's context-and-evaluate step uses."""

    registry: RulesetRegistry
    contexts: Any
    reads: StoreByStore


def frontline(contexts: Any) -> Service:
    registry = RulesetRegistry(MemoryRulesetStore())
    registry.deploy((STARTER_RULESETS / "retention-desk.yaml").read_text(encoding="utf-8"))
    reads = StoreByStore(contexts, MemoryEventCounters(), MemoryInteractions())
    return Service(registry, contexts, reads)


async def step(service: Service, customer_id: str, overrides: dict[str, Any] | None) -> None:
    now = datetime.now(UTC)
    compiled, _ = service.registry.route("retention-desk", customer_id)
    reads = await service.reads.read(customer_id, compiled.counters_needed, None, now)
    context, _, as_of, _ = context_view(reads.context, overrides, now)
    compiled.evaluate(context, now=now, counters=reads.counters, as_of=as_of)


@pytest.mark.parametrize("where", ["request", "cache", "redis"])
def test_context_cost(
    benchmark: Any, loop: asyncio.AbstractEventLoop, prefix: str, where: str
) -> None:
    overrides = CONTEXT if where == "request" else None
    if where == "request":
        service = frontline(MemoryContextStore())
    else:
        client = redis.asyncio.Redis.from_url(URL)
        store = RedisContextStore(
            client, prefix=f"{prefix}{where}:", cache_ttl=3600 if where == "cache" else 0.000001
        )
        service = frontline(store)
        for k in range(CUSTOMERS):
            loop.run_until_complete(store.put(f"c-{k}", CONTEXT, "crm", "2026-11-22T09:00:00Z"))
    customers = [f"c-{k % CUSTOMERS}" for k in range(BATCH)]

    async def batch() -> None:
        for customer in customers:
            await step(service, customer, overrides)

    loop.run_until_complete(batch())  # warm: compiled paths, cache filled
    benchmark.group = "context"
    benchmark.extra_info.update(
        {"kind": "context", "where": where, "batch": BATCH, "load_average": os.getloadavg()}
    )
    benchmark.pedantic(lambda: loop.run_until_complete(batch()), rounds=40, iterations=1)
    if where == "cache":
        assert service.contexts.cache_hits > 0  # type: ignore[attr-defined]

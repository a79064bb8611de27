"""What integrations call: a customer's cached context, and customer events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, get, patch, post, put

from adapters.memory import leaves
from engine.decision import format_time
from engine.runtime import to_datetime
from server.core import Frontline, Problem, check_nesting
from server.http import principal_of, problems, requires, service
from server.schemas import ContextWrite, EventRequest, Id


def _checked(body: ContextWrite) -> tuple[dict[str, Any], str | None, str | None]:
    check_nesting("values", body.values)
    as_of = None
    if body.as_of is not None:
        when = to_datetime(body.as_of)
        if when is None:
            raise Problem(400, f"as_of {body.as_of!r} is not an RFC 3339 time")
        as_of = format_time(when)
    return body.values, body.source, as_of


def _view(frontline: Frontline, found: Any, mask: bool) -> dict[str, Any]:
    now = datetime.now(UTC)
    values = found.values
    if mask:
        values = frontline.masked_context(values)
    fields = {}
    for path in leaves(found.values):
        as_of = found.as_of.get(path)
        when = to_datetime(as_of) if as_of else None
        fields[path] = {
            "source": found.sources.get(path),
            "as_of": as_of,
            "age_ms": int((now - when).total_seconds() * 1000) if when else None,
        }
    return {"customer_id": found.customer_id, "values": values, "fields": fields}


async def _alerts(
    frontline: Frontline, customer_id: str, trigger: str, cause: str
) -> dict[str, Any]:
    """Re-run the alert rules of the customer's live interactions; the ids of new alerts."""
    if frontline.alerting is None:
        return {"alerts_raised": []}
    return {"alerts_raised": await frontline.alerting.reevaluate(customer_id, trigger, cause)}


@put(
    "/v1/customers/{customer_id:str}/context",
    opt=requires("integration"),
    tags=["customers"],
    responses=problems(),
)
async def replace_context(
    request: Request[Any, Any, Any], customer_id: Id, data: ContextWrite
) -> dict[str, Any]:
    """Replace the customer's cached context; alert rules run for its live interactions."""
    frontline = service(request)
    values, source, as_of = _checked(data)
    stored = await frontline.contexts.put(customer_id, values, source, as_of)
    return {
        **_view(frontline, stored, mask=False),
        **await _alerts(frontline, customer_id, "context_change", "context"),
    }


@patch(
    "/v1/customers/{customer_id:str}/context",
    opt=requires("integration"),
    tags=["customers"],
    responses=problems(),
)
async def merge_context(
    request: Request[Any, Any, Any], customer_id: Id, data: ContextWrite
) -> dict[str, Any]:
    """Merge values into the customer's cached context (objects merge, values replace); alert
    rules run for the customer's live interactions."""
    frontline = service(request)
    values, source, as_of = _checked(data)
    stored = await frontline.contexts.patch(customer_id, values, source, as_of)
    return {
        **_view(frontline, stored, mask=False),
        **await _alerts(frontline, customer_id, "context_change", "context"),
    }


@get(
    "/v1/customers/{customer_id:str}/context",
    opt=requires("integration", "auditor", "agent"),
    tags=["customers"],
    responses=problems(404),
)
async def read_context(request: Request[Any, Any, Any], customer_id: Id) -> dict[str, Any]:
    """The cached context, with each field's source and age. Auditors, and agents (only for a
    customer they are handling in a live interaction), see masked fields masked."""
    frontline = service(request)
    principal = principal_of(request)
    if principal.role == "agent":
        live = await frontline.interactions.for_customer(customer_id)
        if not any(i.agent_id == principal.name for i in live):
            raise Problem(
                403, f"agent {principal.name!r} has no live interaction with {customer_id!r}"
            )
    found = await frontline.contexts.get(customer_id)
    if found is None:
        raise Problem(404, f"no context is cached for customer {customer_id!r}")
    view = _view(frontline, found, mask=principal.role in ("auditor", "agent"))
    if found.degraded:
        view["degraded"] = True
    return view


@post(
    "/v1/customers/{customer_id:str}/events",
    opt=requires("integration"),
    status_code=202,
    tags=["customers"],
    responses=problems(),
)
async def record_event(
    request: Request[Any, Any, Any], customer_id: Id, data: EventRequest
) -> dict[str, Any]:
    """Count an event for ``count(type, within=...)``; alert rules run for the customer's live
    interactions."""
    frontline = service(request)
    at = datetime.now(UTC)
    if data.at is not None:
        when = to_datetime(data.at)
        if when is None:
            raise Problem(400, f"at {data.at!r} is not an RFC 3339 time")
        at = when
    await frontline.counters.record(customer_id, data.type, at)
    return {
        "customer_id": customer_id,
        "type": data.type,
        "at": format_time(at),
        **await _alerts(frontline, customer_id, "event", f"event:{data.type}"),
    }


ROUTES = [replace_context, merge_context, read_context, record_event]

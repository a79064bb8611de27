"""What integrations call: a customer's cached context, and customer events."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, patch, post, put

from server.http import KEYED, principal_of, problems, requires, service
from server.schemas import ContextWrite, EventRequest, Id
from server.service.answers import ContextRead, ContextWritten, EventRecorded


@put(
    "/v1/customers/{customer_id:str}/context",
    opt=requires("integration"),
    summary="Replace a customer's context",
    security=KEYED,
    tags=["customers"],
    responses=problems(),
)
async def replace_context(
    request: Request[Any, Any, Any], customer_id: Id, data: ContextWrite
) -> ContextWritten:
    """Replace the customer's cached context; alert rules run for its live interactions."""
    return await service(request).customers.replace_context(
        customer_id, data.values, data.source, data.as_of
    )


@patch(
    "/v1/customers/{customer_id:str}/context",
    opt=requires("integration"),
    summary="Merge values into a customer's context",
    security=KEYED,
    tags=["customers"],
    responses=problems(),
)
async def merge_context(
    request: Request[Any, Any, Any], customer_id: Id, data: ContextWrite
) -> ContextWritten:
    """Merge values into the customer's cached context (objects merge, values replace); alert
    rules run for the customer's live interactions."""
    return await service(request).customers.merge_context(
        customer_id, data.values, data.source, data.as_of
    )


@get(
    "/v1/customers/{customer_id:str}/context",
    opt=requires("integration", "auditor", "agent"),
    summary="Read a customer's context",
    security=KEYED,
    tags=["customers"],
    responses=problems(404),
)
async def read_context(request: Request[Any, Any, Any], customer_id: Id) -> ContextRead:
    """The cached context, with each field's source and age. Auditors, and agents (only for a
    customer they are handling in a live interaction), see masked fields masked."""
    return await service(request).customers.read_context(customer_id, principal_of(request))


RECORD_EVENT = requires("integration")  # also the fast path's check (server/fastpath.py)


@post(
    "/v1/customers/{customer_id:str}/events",
    opt=RECORD_EVENT,
    status_code=202,
    summary="Record a customer event",
    security=KEYED,
    tags=["customers"],
    responses=problems(),
)
async def record_event(
    request: Request[Any, Any, Any], customer_id: Id, data: EventRequest
) -> EventRecorded:
    """Count an event for ``count(type, within=...)``; alert rules run for the customer's live
    interactions."""
    return await service(request).customers.record_event(customer_id, data.type, data.at)


ROUTES = [replace_context, merge_context, read_context, record_event]

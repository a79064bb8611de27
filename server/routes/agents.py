"""What agents' desktops call: decisions, and the start and end of an interaction."""

from __future__ import annotations

from typing import Any

from litestar import Request, delete, post

from server.http import principal_of, problems, requires, service
from server.schemas import DecisionRequest, InteractionRequest
from server.service.answers import DecisionAnswer

DECIDE = requires("agent")  # also the decision fast path's check (server/fastpath.py)


@post(
    "/v1/decisions",
    opt=DECIDE,
    status_code=200,
    tags=["decisions"],
    responses=problems(404, 409, 422),
)
async def create_decision(request: Request[Any, Any, Any], data: DecisionRequest) -> DecisionAnswer:
    """Evaluate a ruleset for a customer; answered once the decision's record is durable."""
    frontline = service(request)
    return await frontline.decisions.decide(data, principal_of(request))


@post(
    "/v1/interactions",
    opt=requires("agent"),
    status_code=201,
    tags=["decisions"],
    responses=problems(404, 409, 422),
)
async def start_interaction(
    request: Request[Any, Any, Any], data: InteractionRequest
) -> DecisionAnswer:
    """An agent starts handling a customer: the first decision, and the interaction id that
    keeps later decisions on the same revision."""
    frontline = service(request)
    return await frontline.decisions.start_interaction(data, principal_of(request))


@delete(
    "/v1/interactions/{interaction_id:str}",
    opt=requires("agent"),
    tags=["decisions"],
    responses=problems(404),
)
async def end_interaction(request: Request[Any, Any, Any], interaction_id: str) -> None:
    """The interaction ended; later decisions about the customer get the active revision."""
    frontline = service(request)
    await frontline.decisions.end_interaction(interaction_id, principal_of(request))


ROUTES = [create_decision, start_interaction, end_interaction]

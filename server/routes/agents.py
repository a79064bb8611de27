"""What agents' desktops call: decisions, and the start and end of an interaction."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, delete, get, post

from server.http import KEYED, principal_of, problems, requires, service
from server.keys import ROLES
from server.schemas import DecisionRequest, InteractionRequest
from server.service.answers import DecisionAnswer, WhoAmI

DECIDE = requires("agent")  # also the decision fast path's check (server/fastpath.py)


@post(
    "/v1/decisions",
    opt=DECIDE,
    status_code=200,
    summary="Make a decision",
    security=KEYED,
    tags=["decisions"],
    responses=problems(404, 409, 422),
)
async def create_decision(request: Request[Any, Any, Any], data: DecisionRequest) -> DecisionAnswer:
    """Evaluate a ruleset for a customer: the eligible offers, the escalation, the alerts, the
    decision tables' outputs and the next step of a guided tree, with the fields that were
    missing or stale. The customer's cached context is read, and ``context`` overrides it.
    Answered once the decision's record is durable in the ledger, with its receipt."""
    frontline = service(request)
    return await frontline.decisions.decide(data, principal_of(request))


@post(
    "/v1/interactions",
    opt=requires("agent"),
    status_code=201,
    summary="Start an interaction",
    security=KEYED,
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
    summary="End an interaction",
    security=KEYED,
    tags=["decisions"],
    responses=problems(404),
)
async def end_interaction(request: Request[Any, Any, Any], interaction_id: str) -> None:
    """The interaction ended; later decisions about the customer get the active revision."""
    frontline = service(request)
    await frontline.decisions.end_interaction(interaction_id, principal_of(request))


@get(
    "/v1/whoami",
    opt=requires(*ROLES),
    summary="Who a key belongs to",
    security=KEYED,
    tags=["keys"],
    responses=problems(),
)
async def whoami(request: Request[Any, Any, Any]) -> WhoAmI:
    """Who the key belongs to: its principal (for an agent, the agent id) and its role, so a
    page signed in with a key alone knows whom it acts as."""
    principal = principal_of(request)
    return msgspec.convert({"id": principal.name, "role": principal.role}, WhoAmI)


ROUTES = [create_decision, start_interaction, end_interaction, whoami]

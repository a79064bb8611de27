"""HTTP plumbing shared by every route: keys and roles, and problem-details errors.

Each route says who may call it (``opt=requires("agent")``); the edge middleware
(server/edge.py) checks the key before anything else of the request is read. Routes that need
no key (health, metrics, schema, static pages) pay nothing, and the others one hash and one
dict lookup.

Every error leaves as RFC 9457 problem details (``application/problem+json``) with a
``status``, a ``title``, one plain ``detail`` sentence and, for validation errors, ``errors``
naming the offending fields. An unexpected exception is logged with its request id and
answered 500 without internals.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
    WebSocketException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import SecurityRequirement
from litestar.types import Guard

from adapters.ports import StoreUnavailable
from engine import StoreWriteFailed
from server.keys import KeyRing, Principal
from server.logs import bind_request_once
from server.service.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Refused,
    ServiceError,
    TooLarge,
    TooMany,
    Unavailable,
    Unsupported,
)
from server.service.frontline import Frontline

log = structlog.get_logger("frontline")

PROBLEM_JSON = "application/problem+json"
PRINCIPAL = "frontline.principal"
_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Unprocessable request",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
    507: "Insufficient storage",
}


class ProblemDetails(msgspec.Struct, omit_defaults=True):
    """RFC 9457 problem details, as every error response carries them."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


def title(status: int) -> str:
    """The problem title of ``status``."""
    return _TITLES.get(status, "Error")


# What any authenticated route may answer besides its own errors: a body that does not
# validate or is too large, a missing or wrong key, a rate limit, an overloaded server.
COMMON_PROBLEMS = (400, 401, 403, 413, 429, 503)


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI descriptions of the problem responses a route can give."""
    return {
        status: ResponseSpec(
            data_container=ProblemDetails,
            media_type=PROBLEM_JSON,
            description=_TITLES[status],
            generate_examples=False,
        )
        for status in sorted({*COMMON_PROBLEMS, *statuses})
    }


def answer(shape: Any, description: str) -> ResponseSpec:
    """The OpenAPI description of a route's 200 answer when its handler's annotation cannot
    say it (a route that answers JSON or a stream)."""
    return ResponseSpec(data_container=shape, description=description, generate_examples=False)


@dataclass(frozen=True, slots=True)
class Access:
    """Who may call a route: keys of ``roles``; with ``query_token`` the key may also come as
    ``?access_token=`` or a stream ticket as ``?ticket=`` (browsers cannot set headers on a
    WebSocket or an EventSource); with ``query_ticket`` only the ticket (a download the
    browser saves by itself)."""

    roles: frozenset[str]
    names: str
    query_token: bool = False
    query_ticket: bool = False


ACCESS = "access"


def requires(
    *roles: str, query_token: bool = False, query_ticket: bool = False, admin: bool = True
) -> dict[str, Access]:
    """A route's ``opt`` admitting keys of ``roles`` (and ``admin`` unless told not to).

    The check runs in the edge middleware (server/edge.py), before the request reaches
    Litestar's handler machinery: a Litestar guard copies the route handler on every call,
    which cost more than the check itself.
    """
    allowed = frozenset((*roles, "admin") if admin else roles)
    return {ACCESS: Access(allowed, " or ".join(roles), query_token, query_ticket)}


# The OpenAPI security requirement of every route that takes a key (``opt=requires(...)``):
# the ``bearer`` scheme of the document (server/routes/docs.py).
BEARER = "bearer"
KEYED: list[SecurityRequirement] = [{BEARER: []}]


def bearer(header: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header (spaces around it ignored)."""
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


def authenticate(
    keyring: KeyRing,
    access: Access,
    token: str | None,
    *,
    ticket: str | None = None,
    found: Principal | None = None,
) -> Principal:
    """The principal of ``token`` or of a stream ``ticket`` (``found``: the one already
    identified or redeemed, if any) if it may use a route of ``access``; else the 401 or
    403."""
    if token is None and ticket is not None:
        if found is None:
            raise NotAuthorizedException(
                detail="the stream ticket is not valid or has expired; "
                "POST /v1/stream-tickets gives a new one",
                headers={"WWW-Authenticate": 'Bearer realm="frontline", error="invalid_token"'},
            )
        principal: Principal | None = found
    elif token is None:
        raise NotAuthorizedException(
            detail="this route needs an API key: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": 'Bearer realm="frontline"'},
        )
    else:
        principal = found if found is not None else keyring.identify(token)
    if principal is None:
        raise NotAuthorizedException(
            detail="the API key is not valid",
            headers={"WWW-Authenticate": 'Bearer realm="frontline", error="invalid_token"'},
        )
    if principal.role not in access.roles:
        raise PermissionDeniedException(
            detail=f"a {principal.role} key cannot do this; it needs a {access.names} key"
        )
    return principal


def socket_guard(opt: dict[str, Access]) -> Guard:
    """The same check for a WebSocket route, which the edge middleware does not see."""
    access = opt[ACCESS]

    # async on purpose: Litestar runs a synchronous guard in a worker thread.
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        bind_request_once(connection.scope, connection.headers.get("x-request-id"))
        token = bearer(connection.headers.get("authorization"))
        ticket = found = None
        if token is None and access.query_token:
            token = connection.query_params.get("access_token") or None
            ticket = connection.query_params.get("ticket") or None
            if token is None and ticket is not None:
                found = connection.app.state.tickets.redeem(ticket, time.time())
        keyring: KeyRing = connection.app.state.keyring
        if token is not None:
            found = keyring.identify(token)
        # A WebSocket spends the rate budget as a request does: its key's, or without a
        # valid one its client address's (so guessing keys over WebSockets is throttled too).
        retry_after = await connection.app.state.edge.spend(found, connection.scope)
        if retry_after is not None:
            raise WebSocketException(detail=f"rate limit: try again in {retry_after} s", code=4429)
        connection.scope[PRINCIPAL] = authenticate(  # type: ignore[literal-required]
            keyring, access, token, ticket=ticket, found=found
        )

    return guard


def service(connection: ASGIConnection[Any, Any, Any, Any]) -> Frontline:
    """The service the app was started with. A plain attribute read: Litestar's dependency
    injection cost 17 µs a request for this one object (docs/benchmarks.md)."""
    frontline: Frontline = connection.app.state.frontline
    return frontline


def principal_of(request: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    found: Principal = request.scope[PRINCIPAL]  # type: ignore[literal-required]
    return found


def problem_body(
    status: int, detail: str, title: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The problem details of an answer: ``type``, ``title``, ``status``, ``detail``, more."""
    body = {"type": "about:blank", "title": title or _TITLES.get(status, "Error"), "status": status}
    body["detail"] = detail
    body.update(extra)
    return body


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    body = problem_body(status, detail, title, **extra)
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


@dataclass(frozen=True, slots=True)
class Answer:
    """A problem answer, apart from any framework: status, body and extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] | None = None


# The status of each refusal of the service.
STATUS: dict[type[ServiceError], int] = {
    Invalid: 400,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    Unsupported: 415,
    Refused: 422,
    TooMany: 429,
    Unavailable: 503,
}


def answer_for(exc: Exception, path: str, metrics: Any) -> Answer:
    """The answer to an error raised while handling ``path`` (a refusal of the service, a
    shared store that is away, or anything unexpected, which is logged), counted in
    ``metrics``: the one place errors become problem details, for Litestar's exception
    handlers and for the decision fast path alike."""
    if isinstance(exc, ServiceError):
        status = next((STATUS[k] for k in type(exc).__mro__ if k in STATUS), 500)
        if status >= 500:
            log.warning("refused", path=path, status=status, detail=exc.detail)
        retry = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
        extra = {"errors": exc.errors} if exc.errors is not None else {}
        answer = Answer(status, problem_body(status, exc.detail, exc.title, **extra), retry)
    elif isinstance(exc, StoreUnavailable):
        log.warning("shared store unavailable", path=path, error=str(exc))
        detail = "a store this request needs cannot be reached; try again shortly"
        answer = Answer(503, problem_body(503, detail, "Service unavailable"), {"Retry-After": "1"})
    elif isinstance(exc, StoreWriteFailed):  # a full disk: the change was not made
        log.error("store write failed", path=path, error=str(exc))
        detail = f"{exc}; nothing was changed and the served revisions are as they were"
        answer = Answer(507, problem_body(507, detail, "Insufficient storage"))
    elif isinstance(exc, RecursionError):  # a body nested deeper than the JSON decoder goes
        answer = Answer(
            400, problem_body(400, "the request body nests too deeply", "Invalid request")
        )
    elif isinstance(exc, UnicodeDecodeError):  # raised while reading the body as text
        detail = f"the request is not valid UTF-8 (byte {exc.start})"
        answer = Answer(400, problem_body(400, detail, "Invalid request"))
    else:
        log.exception("unhandled error", path=path, error_type=type(exc).__name__)
        detail = "the server failed to handle this request; it has been logged"
        answer = Answer(500, problem_body(500, detail))
    if metrics is not None:
        metrics.problems.labels(str(answer.status)).inc()
    return answer


def on_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """Litestar's handler for every error that is not one of Litestar's own."""
    answer = answer_for(exc, request.url.path, getattr(request.app.state, "metrics", None))
    return Response(
        answer.body, status_code=answer.status, media_type=PROBLEM_JSON, headers=answer.headers
    )


def _count(request: Request[Any, Any, Any], status: int) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.problems.labels(str(status)).inc()


def on_http_exception(
    request: Request[Any, Any, Any], exc: HTTPException
) -> Response[dict[str, Any]]:
    status = exc.status_code
    _count(request, 400 if isinstance(exc, ValidationException) else status)
    if isinstance(exc, ValidationException):
        errors = _field_errors(exc.extra)
        detail = exc.detail
        if errors:
            first = errors[0]
            where = f" at {first['field']}" if first.get("field") else ""
            detail = f"{first['message']}{where}"
        return problem(400, detail, title="Invalid request", errors=errors)
    if status >= 500:
        log.error("server error", path=request.url.path, error=exc.detail, status=status)
    detail = exc.detail or _TITLES.get(status, "Error")
    if status == 413:
        detail = "the request body is larger than this server accepts"
    return problem(status, detail, headers=exc.headers or None)


def _field_errors(extra: Any) -> list[dict[str, Any]]:
    """Litestar's validation details as ``[{"field": "body.customer_id", "message": ...}]``."""
    if not isinstance(extra, list):
        return []
    out = []
    for item in extra:
        if not isinstance(item, dict):
            continue
        key = item.get("key")
        source = item.get("source")
        field = ".".join(str(p) for p in (source, key) if p)
        out.append({"field": field or None, "message": str(item.get("message", "invalid"))})
    return out

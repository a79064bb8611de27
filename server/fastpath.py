"""The front door, and the fast path behind it.

Every request (HTTP and WebSocket) first gets its id: the caller's ``X-Request-ID`` if sane,
else a new one; bound to the log context, put in the scope (so the edge middleware does not
choose another), sent back in the answer's ``X-Request-ID``, and written with the method, the
path, the status and the duration in the request's one access line (``server.logs``).

The fast path serves the two requests a server answers most, ``POST /v1/decisions`` and
``POST /v1/customers/{id}/events``, in front of Litestar when nothing about the request is
unusual.

    request ─▶ one of ROUTES, a JSON body that decodes into its type, an id that is an Id, a
               key of the route's roles?
               ├─ yes: admission, rate limit, the service call, the answer; the same call and
               │       the same checks as the route, without Litestar's routing, Request
               │       object, signature model and response machinery
               └─ no:  handed to Litestar unchanged (the body replayed), whose route answers
                       it, errors and all (server/routes/agents.py, customers.py)

Litestar's handling costs 40-60 µs of a decision's CPU against 10 µs here (docs/benchmarks.md
has the per-request budget). Every error a request can carry (a body that does not validate,
a missing or wrong key, another role) is answered by the route, so its problem details stay
the documented ones; only errors of the use case itself (a refusal from the service, a store
that is away) are answered here, in the same shape, by the one function that maps errors to
problem details (``server.http.answer_for``). tests/unit/server/test_fastpath.py sends every
kind of request both ways and compares the answers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.enums import ScopeType
from litestar.types import HTTPReceiveMessage, Receive, Scope, Send

from server.edge import Edge, read_headers
from server.http import ACCESS, PROBLEM_JSON, answer_for, bearer
from server.keys import Principal
from server.logs import REQUEST_ID, bind_request, log_access
from server.routes.agents import DECIDE
from server.routes.customers import RECORD_EVENT
from server.schemas import DecisionRequest, EventRequest
from server.service.frontline import Frontline

_ENCODE = msgspec.json.Encoder().encode
_JSON = [(b"content-type", b"application/json")]
_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")  # as server.schemas.Id says
_PROBLEM = [(b"content-type", PROBLEM_JSON.encode())]
_NUL_IN_PATH = _ENCODE(
    {
        "type": "about:blank",
        "title": "Invalid request",
        "status": 400,
        "detail": "the path holds a NUL character",
    }
)


@dataclass(frozen=True)
class FastRoute:
    """A route the fast path serves: ``POST <prefix>`` (``<prefix><id><suffix>`` when the
    path carries an id), its body's type, who may call it (the route's own roles), its status
    and the service call."""

    prefix: str
    suffix: str
    body: Any
    roles: frozenset[str]
    status: int
    call: Callable[[Frontline, Principal, str | None, Any], Awaitable[Any]]

    def match(self, path: str) -> tuple[bool, str | None]:
        """Whether ``path`` is this route's, and its id (None for a path without one)."""
        if not self.suffix:
            return path == self.prefix, None
        if not (path.startswith(self.prefix) and path.endswith(self.suffix)):
            return False, None
        found = path[len(self.prefix) : len(path) - len(self.suffix)]
        return bool(_ID.match(found)), found  # an unusual id: the route answers


async def _decide(frontline: Frontline, who: Principal, _: str | None, body: Any) -> Any:
    return await frontline.decisions.decide(body, who)


async def _event(frontline: Frontline, who: Principal, customer: str | None, body: Any) -> Any:
    assert customer is not None
    return await frontline.customers.record_event(customer, body.type, body.at)


ROUTES = (
    FastRoute("/v1/decisions", "", DecisionRequest, DECIDE[ACCESS].roles, 200, _decide),
    FastRoute("/v1/customers/", "/events", EventRequest, RECORD_EVENT[ACCESS].roles, 202, _event),
)
_DECODERS = {route.body: msgspec.json.Decoder(route.body).decode for route in ROUTES}


def with_fast_path(app: Any) -> FastPath:
    """Frontline's Litestar app with the fast path in front (what the server runs)."""
    return FastPath(app, app.state.edge, app.request_max_body_size)


class FastPath:
    """An ASGI app in front of Litestar's (``app``)."""

    def __init__(self, app: Any, edge: Edge, max_body: int) -> None:
        self.app = app
        self.edge = edge
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # type: ignore[comparison-overlap] # not in the type
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        authorization, header_id, content_type = read_headers(scope)
        request_id = bind_request(header_id)
        scope[REQUEST_ID] = request_id  # type: ignore[literal-required]
        answer = Answer(send, request_id.encode())
        try:
            await self._serve(scope, receive, answer, authorization, content_type)
        finally:
            method = scope.get("method", "GET")  # a WebSocket's opening is a GET
            # No head sent: the app raised, and the HTTP server answers 500.
            status = answer.status or 500
            log_access(str(method), scope["path"], status, started, request_id)

    async def _serve(  # noqa: PLR0912 -- the hot path, kept in one frame
        self,
        scope: Scope,
        receive: Receive,
        answer: Answer,
        authorization: str | None,
        content_type: bytes | None,
    ) -> None:
        if "\x00" in scope["path"]:
            await answer.send_whole(400, _PROBLEM, _NUL_IN_PATH)  # no route or file has one
            return
        route, param = None, None
        if scope["type"] == ScopeType.HTTP and scope["method"] == "POST":
            path = scope["path"]
            for candidate in ROUTES:
                matched, param = candidate.match(path)
                if matched:
                    route = candidate
                    break
        if route is None:
            await self.app(scope, receive, answer)
            return
        edge = self.edge
        if await edge.refused(answer):  # first: a refusal must cost as little as possible
            return
        token = bearer(authorization)
        principal = edge.keyring.identify(token) if token is not None else None
        if (
            principal is None
            or principal.role not in route.roles
            or (content_type is not None and not content_type.startswith(b"application/json"))
        ):
            await self.app(scope, receive, answer)  # the route answers, with its errors
            return
        body, replay = await _read(receive, self.max_body)
        request = None
        if body is not None:
            try:
                request = _DECODERS[route.body](body)
            except (msgspec.DecodeError, RecursionError):
                request = None
        if request is None:
            await self.app(scope, replay, answer)
            return
        if await edge.over_budget(principal, scope, answer):
            return
        frontline: Frontline = self.app.state.frontline
        edge.gate.in_flight += 1
        try:
            result = await route.call(frontline, principal, param, request)
        except Exception as exc:  # answered as the route's exception handlers answer it
            problem = answer_for(exc, scope["path"], frontline.metrics)
            headers = [(b"content-type", PROBLEM_JSON.encode())]
            headers += [
                (k.lower().encode(), v.encode()) for k, v in (problem.headers or {}).items()
            ]
            await answer.send_whole(problem.status, headers, _ENCODE(problem.body))
            return
        finally:
            edge.gate.in_flight -= 1
        await answer.send_whole(route.status, _JSON, _ENCODE(result))


class Answer:
    """A request's ``send``: the head of its answer gets ``X-Request-ID``, and its status is
    kept for the access line (a WebSocket's: 101 once accepted, 403 if closed before)."""

    __slots__ = ("request_id", "send", "status")

    def __init__(self, send: Send, request_id: bytes) -> None:
        self.send = send
        self.request_id = request_id
        self.status = 0

    async def __call__(self, message: Any) -> None:  # an ASGI Message
        kind = message["type"]
        if kind in ("http.response.start", "websocket.http.response.start"):
            self.status = message["status"]
            message["headers"] = [*message.get("headers", ()), (b"x-request-id", self.request_id)]
        elif kind == "websocket.accept":
            self.status = 101
            message["headers"] = [*message.get("headers", ()), (b"x-request-id", self.request_id)]
        elif kind == "websocket.close" and not self.status:
            self.status = 403  # as the server answers a WebSocket refused before it opened
        await self.send(message)

    async def send_whole(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        """A whole answer in two messages, its head built once (the fast path's own)."""
        self.status = status
        await self.send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    *headers,
                    (b"x-request-id", self.request_id),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await self.send({"type": "http.response.body", "body": body, "more_body": False})


async def _read(receive: Receive, limit: int) -> tuple[bytes | None, Receive]:
    """The whole body (None if larger than ``limit``), and a ``receive`` that replays what
    was read, for handing the request on."""
    chunks: list[bytes] = []
    size = 0
    messages: list[HTTPReceiveMessage] = []
    while True:
        message: HTTPReceiveMessage = await receive()  # type: ignore[assignment]
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if size > limit or not message.get("more_body", False):
            break
    over = size > limit or messages[-1]["type"] != "http.request"
    pending = list(messages)

    async def replay() -> HTTPReceiveMessage:
        if pending:
            return pending.pop(0)
        return await receive()  # type: ignore[return-value]

    return (None if over else b"".join(chunks)), replay

"""The decision fast path: ``POST /v1/decisions`` served in front of Litestar when nothing
about the request is unusual.

    request ─▶ POST /v1/decisions, JSON body that decodes into DecisionRequest, a key that
               may decide?
               ├─ yes: admission, rate limit, Decisions.decide, the answer; the same service
               │       call and the same checks as the route, without Litestar's routing,
               │       Request object, signature model and response machinery
               └─ no:  handed to Litestar unchanged (the body replayed), whose route answers
                       it, errors and all (server/routes/agents.py)

Litestar's handling costs 40-60 µs of a decision's CPU against 10 µs here (docs/benchmarks.md
has the per-request budget), and decisions are most of what a server answers. Every error a
request can carry (a body that does not validate, a missing or wrong key, another role) is
answered by the route, so its problem details stay the documented ones; only errors of the
decision itself (a refusal from the service, a store that is away) are answered here, in the
same shape, by the one function that maps errors to problem details
(``server.http.answer_for``).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.enums import ScopeType
from litestar.types import HTTPReceiveMessage, Receive, Scope, Send

from server.edge import Edge, read_headers
from server.http import ACCESS, PROBLEM_JSON, answer_for, bearer
from server.logs import bind_request
from server.routes.agents import DECIDE
from server.schemas import DecisionRequest
from server.service.frontline import Frontline

PATH = "/v1/decisions"
ROLES = DECIDE[ACCESS].roles  # who the route admits
_DECODE = msgspec.json.Decoder(DecisionRequest).decode
_ENCODE = msgspec.json.Encoder().encode
_JSON = [(b"content-type", b"application/json")]


def with_fast_path(app: Any) -> DecisionFastPath:
    """Frontline's Litestar app with the decision fast path in front (what the server runs)."""
    return DecisionFastPath(app, app.state.edge, app.request_max_body_size)


class DecisionFastPath:
    """An ASGI app in front of Litestar's (``app``)."""

    def __init__(self, app: Any, edge: Edge, max_body: int) -> None:
        self.app = app
        self.edge = edge
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        edge = self.edge
        if await edge.refused(send):  # first: a refusal must cost as little as possible
            return
        authorization, request_id, content_type = read_headers(scope)
        token = bearer(authorization)
        principal = edge.keyring.identify(token) if token is not None else None
        if (
            principal is None
            or principal.role not in ROLES
            or (content_type is not None and not content_type.startswith(b"application/json"))
        ):
            await self.app(scope, receive, send)  # the route answers, with its errors
            return
        body, replay = await _read(receive, self.max_body)
        request = None
        if body is not None:
            try:
                request = _DECODE(body)
            except (msgspec.DecodeError, RecursionError):
                request = None
        if request is None:
            await self.app(scope, replay, send)
            return
        bind_request(request_id)
        if await edge.over_budget(principal, scope, send):
            return
        frontline: Frontline = self.app.state.frontline
        edge.gate.in_flight += 1
        try:
            answer = await frontline.decisions.decide(request, principal)
        except Exception as exc:  # answered as the route's exception handlers answer it
            problem = answer_for(exc, PATH, frontline.metrics)
            headers = [(b"content-type", PROBLEM_JSON.encode())]
            headers += [
                (k.lower().encode(), v.encode()) for k, v in (problem.headers or {}).items()
            ]
            await _send(send, problem.status, headers, _ENCODE(problem.body))
            return
        finally:
            edge.gate.in_flight -= 1
        await _send(send, 200, _JSON, _ENCODE(answer))


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


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})

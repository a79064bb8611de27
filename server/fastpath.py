"""The decision fast path: ``POST /v1/decisions`` served in front of Litestar when nothing
about the request is unusual.

    request ─▶ POST /v1/decisions, JSON body that decodes into DecisionRequest, a key that
               may decide?
               ├─ yes: admission, rate limit, Frontline.decide, the answer; the same service
               │       call and the same checks as the route, without Litestar's routing,
               │       Request object, signature model and response machinery
               └─ no:  handed to Litestar unchanged (the body replayed), whose route answers
                       it, errors and all (server/routes/agents.py)

Litestar's handling costs 40-60 µs of a decision's CPU against 10 µs here (docs/benchmarks.md
has the per-request budget), and decisions are most of what a server answers. Every error a
request can carry (a body that does not validate, a missing or wrong key, another role) is
answered by the route, so its problem details stay the documented ones; only errors of the
decision itself (a Problem from the service, a store that is away) are answered here, in the
same shape.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
import structlog
from litestar.enums import ScopeType
from litestar.types import HTTPReceiveMessage, Receive, Scope, Send

from engine import StoreUnavailable
from server.admission import refuse
from server.core import Frontline, Problem
from server.edge import Edge
from server.http import PROBLEM_JSON, bearer, title
from server.logs import bind_request
from server.ratelimit import too_many
from server.schemas import DecisionRequest

log = structlog.get_logger("frontline")

PATH = "/v1/decisions"
ROLES = frozenset(("agent", "admin"))  # as the route's opt=requires("agent")
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
        gate = self.edge.gate
        why = gate.admits()  # first: a refusal must cost as little as possible
        if why is not None:
            gate.refused += 1
            await refuse(send, why)
            return
        authorization = request_id = content_type = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value
            elif name == b"x-request-id":
                request_id = value.decode("latin-1")
        token = bearer(authorization)
        principal = self.edge.keyring.identify(token) if token is not None else None
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
        retry_after = await self.edge.limits.spend(
            f"key:{principal.role}:{principal.name}", time.time()
        )
        if retry_after is not None:
            await too_many(send, retry_after)
            return
        frontline: Frontline = self.app.state.frontline
        gate.in_flight += 1
        try:
            answer = await frontline.decide(request, principal)
        except Problem as exc:
            if exc.status >= 500:
                log.warning("refused", path=PATH, status=exc.status, detail=exc.detail)
            await _problem(send, frontline, exc.status, exc.detail, exc.title, exc.retry_after)
            return
        except StoreUnavailable as exc:
            log.warning("shared store unavailable", path=PATH, error=str(exc))
            detail = "a store this request needs cannot be reached; try again shortly"
            await _problem(send, frontline, 503, detail, "Service unavailable", 1)
            return
        except Exception as exc:
            log.exception("unhandled error", path=PATH, error_type=type(exc).__name__)
            detail = "the server failed to handle this request; it has been logged"
            await _problem(send, frontline, 500, detail, "Internal server error", None)
            return
        finally:
            gate.in_flight -= 1
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


async def _problem(
    send: Send,
    frontline: Frontline,
    status: int,
    detail: str,
    heading: str | None,
    retry_after: int | None,
) -> None:
    """The problem details the route's exception handlers would give (server/http.py)."""
    if frontline.metrics is not None:
        frontline.metrics.problems.labels(str(status)).inc()
    headers = [(b"content-type", PROBLEM_JSON.encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    body = {
        "type": "about:blank",
        "title": heading or title(status),
        "status": status,
        "detail": detail,
    }
    await _send(send, status, headers, _ENCODE(body))

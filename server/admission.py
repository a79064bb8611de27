"""Admission control: a cap on requests in flight, answered 503 beyond it.

Past the cap, queueing more work only makes every request slower; a quick 503 with
``Retry-After`` lets a load balancer or client go elsewhere or back off, and latency stays
bounded for the requests that are admitted. Health and metrics routes are never refused, so
an overloaded server still says how it is.

A pure ASGI middleware: one counter, no locks (one event loop per process).
"""

from __future__ import annotations

import json

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

EXEMPT = ("/healthz", "/readyz", "/metrics")
_BODY = json.dumps(
    {
        "type": "about:blank",
        "title": "Service unavailable",
        "status": 503,
        "detail": "the server is at its limit of requests in flight; retry shortly",
    }
).encode()
_HEADERS = [
    (b"content-type", b"application/problem+json"),
    (b"retry-after", b"1"),
    (b"content-length", str(len(_BODY)).encode()),
]


class Gate:
    """The cap and its counters, shared by every route: Litestar builds the middleware into
    each route's stack, so the count must live here, not in the middleware objects."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self.refused = 0

    def __call__(self, app: ASGIApp) -> ASGIApp:
        return AdmissionControl(app, self)


class AdmissionControl:
    def __init__(self, app: ASGIApp, gate: Gate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gate = self.gate
        if scope["type"] != ScopeType.HTTP or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        if gate.in_flight >= gate.limit:
            gate.refused += 1
            await send({"type": "http.response.start", "status": 503, "headers": _HEADERS})
            await send({"type": "http.response.body", "body": _BODY, "more_body": False})
            return
        gate.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            gate.in_flight -= 1

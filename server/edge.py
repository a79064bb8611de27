"""The edge: what every HTTP request passes before its handler, in one ASGI middleware.

    request ─▶ admission (503 when requests would wait, or at the cap on requests in flight;
               alert streams are not counted: server/admission.py)
            ─▶ request id (X-Request-ID if sane, else a new one) bound to the log context,
               unless the layer in front (server/fastpath.py) has bound it: it also sends it
               back in X-Request-ID and writes the request's access line
            ─▶ key: identified from ``Authorization: Bearer``; where the route allows it (the
               alert streams, which browsers open without headers) from ``?ticket=`` (a
               short-lived signed ticket: server/keys.py) or ``?access_token=``
            ─▶ rate limit: one budget per principal; requests without a valid key spend
               their client address's budget, so guessing keys is throttled too
            ─▶ role: the route's ``opt=requires(...)`` (401 without a valid key, 403 for a
               key of another role)
            ─▶ handler, with the principal in ``scope`` (``server.http.principal_of``)

One middleware instead of three and a Litestar guard: each layer of Litestar's per-route
stack and each guard call (which copies the route handler) costs microseconds on every
decision (docs/benchmarks.md has the per-request budget). Health, readiness and metrics pass
untouched, so an overloaded server still says how it is.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qsl

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from server.admission import Gate, refuse
from server.http import ACCESS, PRINCIPAL, Access, authenticate, bearer
from server.keys import KeyRing, Principal, StreamTickets
from server.logs import bind_request_once
from server.ratelimit import Limits, too_many

EXEMPT = ("/healthz", "/readyz", "/metrics")
STREAM = "stream"  # a route's opt: a long-lived stream, admitted outside the gate


class Edge:
    """The admission gate, the key ring and the rate limits, shared by every route's copy of
    the middleware (Litestar builds app-level middleware into each route's stack)."""

    def __init__(
        self, gate: Gate, keyring: KeyRing, limits: Limits, tickets: StreamTickets
    ) -> None:
        self.gate = gate
        self.keyring = keyring
        self.limits = limits
        self.tickets = tickets

    def __call__(self, app: ASGIApp) -> ASGIApp:
        return EdgeMiddleware(app, self)

    async def refused(self, send: Send) -> bool:
        """Whether admission refuses a request now; if so its 503 is sent."""
        why = self.gate.admits()
        if why is None:
            return False
        self.gate.refused += 1
        await refuse(send, why)
        return True

    async def over_budget(self, principal: Principal | None, scope: Scope, send: Send) -> bool:
        """Spend one request of the principal's budget (the client address's without a valid
        key); if it is used up, the 429 is sent."""
        retry_after = await self.spend(principal, scope)
        if retry_after is None:
            return False
        await too_many(send, retry_after)
        return True

    async def spend(self, principal: Principal | None, scope: Scope) -> int | None:
        """Spend one request of the budget; None if allowed, else seconds to wait."""
        if principal is not None:
            key = f"key:{principal.role}:{principal.name}"
        else:
            client = scope.get("client")
            key = "addr:" + (client[0] if client else "unknown")
        return await self.limits.spend(key, time.time())


def read_headers(scope: Scope) -> tuple[str | None, str | None, bytes | None]:
    """The request's ``Authorization``, ``X-Request-ID`` and ``Content-Type`` headers."""
    authorization = request_id = content_type = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"x-request-id":
            request_id = value.decode("latin-1")
        elif name == b"content-type":
            content_type = value
    return authorization, request_id, content_type


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, edge: Edge) -> None:
        self.app = app
        self.edge = edge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        handler = scope.get("route_handler")
        if handler is not None and handler.opt.get(STREAM):
            await self._admitted(scope, receive, send)  # held open for hours: never counted
            return
        if await self.edge.refused(send):
            return
        gate = self.edge.gate
        gate.in_flight += 1
        try:
            await self._admitted(scope, receive, send)
        finally:
            gate.in_flight -= 1

    async def _admitted(self, scope: Scope, receive: Receive, send: Send) -> None:
        authorization, request_id, _ = read_headers(scope)
        bind_request_once(scope, request_id)
        handler = scope.get("route_handler")
        access: Access | None = handler.opt.get(ACCESS) if handler is not None else None
        token = bearer(authorization)
        ticket = None
        if token is None and access is not None and (access.query_token or access.query_ticket):
            if access.query_token:
                token = query_param(scope, "access_token")
            if token is None:
                ticket = query_param(scope, "ticket")
        edge = self.edge
        if token is not None:
            principal = edge.keyring.identify(token)
        elif ticket is not None:
            principal = edge.tickets.redeem(ticket, time.time())
        else:
            principal = None
        if await edge.over_budget(principal, scope, send):
            return
        if access is not None:
            # raises the 401 or 403, which Litestar's exception handlers render
            scope[PRINCIPAL] = (  # type: ignore[literal-required]
                principal
                if principal is not None and principal.role in access.roles
                else authenticate(edge.keyring, access, token, ticket=ticket, found=principal)
            )
        await self.app(scope, receive, send)


def query_param(scope: Scope, name: str) -> str | None:
    """The first non-empty ``name`` in the request's query string."""
    raw = scope.get("query_string") or b""
    if name.encode() + b"=" not in raw:
        return None
    for key, value in parse_qsl(raw.decode("latin-1")):
        if key == name and value:
            return value
    return None

"""Per-key rate limits: a fixed one-minute window per API key (per client address without a
key), answered 429 with ``Retry-After`` when a key has used its window.

Counters live in process by default and in Redis when ``REDIS_URL`` is set (``INCR`` and
``EXPIRE`` on ``frontline:rate:<key>:<window>``), so that several instances share each key's
budget. Litestar's own rate-limit middleware keeps every request's timestamp of the window
and re-encodes that history on each request, which at a budget of thousands per minute costs
more than a decision; a counter per window costs one increment. docs/decisions.md says more.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send
from redis import RedisError

from adapters.redis import Breaker

EXEMPT = ("/healthz", "/readyz", "/metrics")
WINDOW = 60


def _problem(retry_after: int) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = json.dumps(
        {
            "type": "about:blank",
            "title": "Too many requests",
            "status": 429,
            "detail": "this key has used its requests for this minute; retry after the "
            "Retry-After seconds",
        }
    ).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"retry-after", str(retry_after).encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    return headers, body


class Limits:
    """The budget and the counters, shared by every route's copy of the middleware."""

    def __init__(self, per_minute: int, redis: Any = None, prefix: str = "frontline:") -> None:
        self.per_minute = per_minute
        self.redis = redis
        self.prefix = prefix
        self.breaker = Breaker()
        self._counts: dict[tuple[str, int], int] = {}

    def __call__(self, app: ASGIApp) -> ASGIApp:
        return RateLimit(app, self)

    async def spend(self, key: str, now: float) -> int | None:
        """Count one request for ``key``; None if allowed, else seconds until the next window."""
        window = int(now) // WINDOW
        used = None
        if self.redis is not None and not self.breaker.open:
            name = f"{self.prefix}rate:{key}:{window}"
            try:
                pipe = self.redis.pipeline(transaction=False)
                pipe.incr(name)
                pipe.expire(name, WINDOW * 2)
                used = (await pipe.execute())[0]
            except (RedisError, OSError, TimeoutError):
                # Redis is away: budgets are counted per instance until it answers again.
                self.breaker.failed()
        if used is None:
            if len(self._counts) > 100_000:  # old windows: drop them all at once
                self._counts = {k: v for k, v in self._counts.items() if k[1] == window}
            used = self._counts.get((key, window), 0) + 1
            self._counts[(key, window)] = used
        if used > self.per_minute:
            return max(1, (window + 1) * WINDOW - int(now))
        return None


class RateLimit:
    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        authorization = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
                break
        if authorization:
            key = hashlib.sha256(authorization).hexdigest()[:32]
        else:
            client = scope.get("client")
            key = "addr:" + (client[0] if client else "unknown")
        retry_after = await self.limits.spend(key, time.time())
        if retry_after is not None:
            headers, body = _problem(retry_after)
            await send({"type": "http.response.start", "status": 429, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await self.app(scope, receive, send)

"""Per-key rate limits: a fixed one-minute window per principal (per client address without a
valid key), answered 429 with ``Retry-After`` when a key has used its window. The edge
middleware (server/edge.py) spends the budget, after identifying the key: a key sent with
extra spaces is the same principal and the same budget.

Counters live in process by default and in Redis when ``REDIS_URL`` is set (``INCR`` and
``EXPIRE`` on ``frontline:rate:<key>:<window>``), so that several instances share each key's
budget. Litestar's own rate-limit middleware keeps every request's timestamp of the window
and re-encodes that history on each request, which at a budget of thousands per minute costs
more than a decision; a counter per window costs one increment. docs/decisions.md says more.
"""

from __future__ import annotations

import json
from typing import Any

from litestar.types import Send
from redis import RedisError

from adapters.redis import Breaker

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


async def too_many(send: Send, retry_after: int) -> None:
    """Answer 429 with ``Retry-After``: the key (or address) has used its window."""
    headers, body = _problem(retry_after)
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})

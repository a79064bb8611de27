"""Per-key rate limits: a fixed one-minute window per principal (per client address without a
valid key), answered 429 with ``Retry-After`` when a key has used its window. The edge
middleware (server/edge.py) spends the budget, after identifying the key: a key sent with
extra spaces is the same principal and the same budget.

Counters live in process by default and in Redis when ``REDIS_URL`` is set
(``frontline:rate:<key>:<window>``), so that several instances share each key's budget. An
instance takes its share from Redis in leases of a thousandth of the budget (``INCRBY`` by
the lease, one round trip per lease instead of per request) and spends them in process: a
budget under a thousand a minute is counted request by request, exactly across instances;
a larger one may refuse a key up to one lease per instance early, never admit more.

Litestar's own rate-limit middleware keeps every request's timestamp of the window and
re-encodes that history on each request, which at a budget of thousands per minute costs
more than a decision; a counter per window costs one increment. docs/decisions.md says more.
"""

from __future__ import annotations

import json
from typing import Any

from litestar.types import Send
from redis import RedisError

from adapters.redis import Breaker

WINDOW = 60
LEASE_SHARE = 1000  # a lease is this fraction of a key's budget per minute
EXHAUSTED = -1


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
        self.lease = max(1, per_minute // LEASE_SHARE)
        self._counts: dict[tuple[str, int], int] = {}
        self._leased: dict[tuple[str, int], int] = {}  # what is left of each lease

    async def spend(self, key: str, now: float) -> int | None:
        """Count one request for ``key``; None if allowed, else seconds until the next window."""
        window = int(now) // WINDOW
        if self.redis is not None and not self.breaker.open:
            slot = (key, window)
            left = self._leased.pop(slot, 0)
            if not left:
                granted = await self._lease(key, window)
                if granted is not None:
                    # Another request may have leased meanwhile (both awaited Redis).
                    left = granted + max(0, self._leased.pop(slot, 0)) or EXHAUSTED
            if left:
                if len(self._leased) > 100_000:  # old windows: drop them all at once
                    self._leased = {k: v for k, v in self._leased.items() if k[1] == window}
                if left == EXHAUSTED:
                    # A budget used up stays used up until the window ends: no more asking.
                    self._leased[slot] = EXHAUSTED
                    return max(1, (window + 1) * WINDOW - int(now))
                if left > 1:
                    self._leased[slot] = left - 1
                return None
        if len(self._counts) > 100_000:  # old windows: drop them all at once
            self._counts = {k: v for k, v in self._counts.items() if k[1] == window}
        used = self._counts.get((key, window), 0) + 1
        self._counts[(key, window)] = used
        if used > self.per_minute:
            return max(1, (window + 1) * WINDOW - int(now))
        return None

    async def _lease(self, key: str, window: int) -> int | None:
        """Take up to one lease of ``key``'s budget in ``window`` from Redis: how many
        requests were granted (0 once the budget is used), None if Redis is away."""
        name = f"{self.prefix}rate:{key}:{window}"
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.incrby(name, self.lease)
            pipe.expire(name, WINDOW * 2)
            used = int((await pipe.execute())[0])
        except (RedisError, OSError, TimeoutError):
            # Redis is away: budgets are counted per instance until it answers again.
            self.breaker.failed()
            return None
        return max(0, min(self.lease, self.per_minute - (used - self.lease)))


async def too_many(send: Send, retry_after: int) -> None:
    """Answer 429 with ``Retry-After``: the key (or address) has used its window."""
    headers, body = _problem(retry_after)
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})

"""Admission control: a cap on requests in flight, answered 503 beyond it.

Past the cap, queueing more work only makes every request slower; a quick 503 with
``Retry-After`` lets a load balancer or client go elsewhere or back off, and latency stays
bounded for the requests that are admitted. Health and metrics routes are never refused, so
an overloaded server still says how it is.

Checked first by the edge middleware (server/edge.py): one counter, no locks (one event
loop per process).
"""

from __future__ import annotations

import json

from litestar.types import Send

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


async def refuse(send: Send) -> None:
    """Answer 503 with ``Retry-After``: the server is at its cap."""
    await send({"type": "http.response.start", "status": 503, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY, "more_body": False})

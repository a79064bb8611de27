"""Admission control: requests are refused (503 with ``Retry-After``) when they would wait,
not only when too many are in flight.

Past its capacity a server that admits everything makes every request slower: under three
times its capacity the admitted decisions waited a median 884 ms, although the number in
flight was capped. What grows is the time a request waits before the service starts on it,
in the event loop's queue. So the gate watches that wait, as CoDel watches a packet queue's
sojourn time:

    a timer due every 5 ms measures how late the event loop runs it (the loop's delay:
    how long a request that arrives now waits before it is handled)
    every probe late by more than TARGET (5 ms) for a whole INTERVAL (25 ms), with BUSY
    (8) or more requests in flight ──▶ shedding: new requests 503
    a probe on time again ──▶ admitting again

Refusing costs a few tens of microseconds, so while shedding the queue drains and the
requests that were admitted keep their latency; a client or load balancer retries after
``Retry-After`` or goes elsewhere. The cap on requests in flight stays as a bound on memory.

Health, readiness and metrics are never refused, so an overloaded server still says how it is;
long-lived alert streams are admitted without counting against the cap (an agent holding
streams open must not refuse other agents' decisions). Checked first by the edge middleware
(server/edge.py): counters, no locks (one event loop per process).
"""

from __future__ import annotations

import asyncio
import json
import time

from litestar.types import Send

TARGET = 0.005  # seconds a request may wait in the event loop before it is handled
INTERVAL = 0.025  # how long the delay must stay above TARGET before requests are refused
PROBE = 0.005  # how often the loop's delay is measured
STUCK = 4  # a probe overdue by this many intervals: the loop is stuck, refuse at once
BUSY = 8  # requests in flight below which a late loop is not their doing: never shed


def _problem(detail: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    body = json.dumps(
        {"type": "about:blank", "title": "Service unavailable", "status": 503, "detail": detail}
    ).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"retry-after", b"1"),
        (b"content-length", str(len(body)).encode()),
    ]
    return body, headers


_AT_CAP = _problem("the server is at its limit of requests in flight; retry shortly")
_BEHIND = _problem("the server is behind: requests would wait; retry shortly")


class Gate:
    """The cap, the loop's measured delay and the counters, shared by every route: Litestar
    builds the middleware into each route's stack, so the state lives here."""

    def __init__(self, limit: int, *, target: float = TARGET, interval: float = INTERVAL) -> None:
        self.limit = limit
        self.target = target
        self.interval = interval
        self.in_flight = 0
        self.refused = 0
        self.delay = 0.0  # the event loop's last measured delay, seconds
        self._above_since: float | None = None  # when the delay went above target
        self._due = 0.0  # when the probe should next run (monotonic); 0 until watched

    @property
    def shedding(self) -> bool:
        """Whether requests wait too long: the delay has been above target in every probe for
        an interval, or the probe itself is overdue by several intervals (a loop that has
        stopped measuring). One late probe is not enough: a single stall (a collection, a
        burst) passes, and refusing the requests that waited through it helps nobody."""
        now = time.monotonic()
        if self._due and now - self._due > STUCK * self.interval:
            return True
        return self._above_since is not None and now - self._above_since >= self.interval

    def admits(self) -> bytes | None:
        """None if a request may start now; else why not (the 503 to send).

        A late loop sheds only while requests are piling up (``BUSY`` or more in flight): a
        loop made late by something else (the PostgreSQL shipper catching up after an
        outage, in a thread of this process) with two requests in flight is not helped by
        refusing them."""
        if self.in_flight >= self.limit:
            return b"cap"
        if self.in_flight >= BUSY and self.shedding:
            return b"behind"
        return None

    def observe(self, delay: float, now: float) -> None:
        self.delay = delay
        if delay <= self.target:
            self._above_since = None
        elif self._above_since is None:
            self._above_since = now

    async def watch(self, period: float = PROBE) -> None:
        """Measure the event loop's delay every ``period`` until cancelled."""
        while True:
            self._due = time.monotonic() + period
            await asyncio.sleep(period)
            now = time.monotonic()
            self.observe(max(0.0, now - self._due), now)


async def refuse(send: Send, why: bytes = b"cap") -> None:
    """Answer 503 with ``Retry-After``."""
    body, headers = _AT_CAP if why == b"cap" else _BEHIND
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})

"""Drive an ASGI app in this process, without sockets: its lifespan, and many requests at a
time, to measure what a request costs the app itself (CPU per request), apart from the HTTP
server and the network.

    async with Running(app):
        cpu_us, per_s = await cpu_per_request(app, requests, concurrency=32, count=20_000)
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

Request = tuple[str, str, bytes, list[tuple[bytes, bytes]]]  # method, path, body, headers


class Running:
    """The app between its lifespan's startup and shutdown."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        started = False

        async def receive() -> dict[str, str]:
            nonlocal started
            if not started:
                started = True
                return {"type": "lifespan.startup"}
            await self._stop.wait()
            return {"type": "lifespan.shutdown"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete":
                self._ready.set()
            elif message["type"] == "lifespan.startup.failed":
                raise RuntimeError(message.get("message", "the app did not start"))

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._task = asyncio.create_task(self.app(scope, receive, send))
        await asyncio.wait_for(self._ready.wait(), 60)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task


async def call(app: Any, request: Request) -> tuple[int, bytes]:
    """One request; its status and body."""
    method, path, body, headers = request
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def cpu_per_request(
    app: Any, requests: Sequence[Request], *, concurrency: int, count: int
) -> tuple[float, float, dict[int, int]]:
    """(CPU µs per request, every thread of this process; requests/s; statuses) for ``count``
    requests, ``concurrency`` at a time."""
    statuses: dict[int, int] = {}
    next_request = iter(range(count))

    async def worker() -> None:
        # ``concurrency`` clients, each sending its next request when answered: no task per
        # request created up front (20,000 at once made one turn of the loop last so long
        # that admission control took the server for stuck).
        for k in next_request:
            status, _ = await call(app, requests[k % len(requests)])
            statuses[status] = statuses.get(status, 0) + 1

    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used / count * 1e6, count / elapsed, statuses

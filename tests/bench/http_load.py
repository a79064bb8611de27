"""An HTTP/1.1 load generator: closed loop (as fast as N connections go) or open loop (requests
sent on a fixed schedule, latency measured from the scheduled time, so a slow server cannot
hide its queueing: no coordinated omission).

It runs in its own process(es), on uvloop, with prebuilt request bytes and a minimal response
parser (status line and Content-Length), so that it costs the server's CPU as little as a
Python client can.

    python -m tests.bench.http_load closed URL --body body.json --header 'Authorization: ...'
    python -m tests.bench.http_load open URL --rate 2000 --seconds 10 ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]


@dataclass
class Result:
    """What a run saw: latencies in seconds of the 2xx answers, those of the other answers
    by status, and counts of each status."""

    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    others: dict[int, list[float]] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # the load generator's own CPU (user + system)
    # (scheduled time on the monotonic clock, body) of each 2xx answer, when asked for
    answers: list[tuple[float, bytes]] = field(default_factory=list)

    def add(self, status: int, latency: float) -> None:
        if 200 <= status < 300:
            self.latencies.append(latency)
        else:
            self.others.setdefault(status, []).append(latency)
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def percentile_of(self, status: int, p: float) -> float:
        """The ``p`` percentile of the latencies of answers with ``status`` (not 2xx)."""
        ordered = sorted(self.others.get(status, ()))
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    @property
    def ok(self) -> int:
        return sum(n for s, n in self.statuses.items() if 200 <= s < 300)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def merge(self, other: Result) -> None:
        self.latencies.extend(other.latencies)
        for status, found in other.others.items():
            self.others.setdefault(status, []).extend(found)
        for s, n in other.statuses.items():
            self.statuses[s] = self.statuses.get(s, 0) + n
        self.errors += other.errors
        self.seconds = max(self.seconds, other.seconds)

    def summary(self) -> dict[str, float | int | dict[str, int]]:
        return {
            "requests_per_s": round(self.rate, 1),
            "ok": self.ok,
            "non_2xx": {str(s): n for s, n in self.statuses.items() if not 200 <= s < 300},
            "errors": self.errors,
            "p50_ms": round(self.percentile(50) * 1000, 3),
            "p99_ms": round(self.percentile(99) * 1000, 3),
            "p999_ms": round(self.percentile(99.9) * 1000, 3),
        }


def build_requests(
    url: str, bodies: list[bytes], headers: dict[str, str], paths: list[str] | None = None
) -> tuple[str, int, list[bytes]]:
    """Each body as a POST to ``url``'s path (or to ``paths[k]`` on the same server)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    requests = [
        (
            f"POST {paths[k] if paths else parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{head}\r\n"
        ).encode()
        + body
        for k, body in enumerate(bodies)
    ]
    return host, port, requests


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    return (await _exchange_body(reader, writer, request, False))[0]


async def _exchange_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, keep: bool
) -> tuple[int, bytes]:
    """One request on a keep-alive connection: the status, and the body if ``keep``."""
    writer.write(request)
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    status = int(status_line.split(b" ", 2)[1])
    length = 0
    chunked = False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value)
        elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    body = b""
    if chunked:
        while True:
            size = int((await reader.readline()).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if keep:
                body += chunk[:-2]
            if size == 0:
                break
    elif length:
        body = await reader.readexactly(length)
    return status, body if keep else b""


async def _closed(
    host: str, port: int, requests: list[bytes], connections: int, seconds: float
) -> Result:
    result = Result(seconds)
    deadline = time.perf_counter() + seconds
    counter = 0

    async def worker() -> None:
        nonlocal counter
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                counter += 1
                request = requests[counter % len(requests)]
                started = time.perf_counter()
                try:
                    status = await _exchange(reader, writer, request)
                except (ConnectionError, asyncio.IncompleteReadError, ValueError):
                    result.errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                result.add(status, time.perf_counter() - started)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    result.seconds = time.perf_counter() - started
    return result


async def _open(
    host: str,
    port: int,
    requests: list[bytes],
    rate: float,
    seconds: float,
    connections: int,
    keep: bool = False,
) -> Result:
    """Send request k at ``start + k / rate`` on any free connection; latency counts from the
    scheduled time, so time spent waiting for a free connection is part of it. With ``keep``,
    each 2xx answer's body is kept with its scheduled time (``time.monotonic``)."""
    result = Result(seconds)
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection(host, port))
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05
    offset = time.perf_counter() - time.monotonic()  # perf_counter → monotonic, for ``keep``
    tasks = []
    cpu = time.process_time()

    async def one(k: int, scheduled: float) -> None:
        reader, writer = await pool.get()
        try:
            status, body = await _exchange_body(reader, writer, requests[k % len(requests)], keep)
            answered = time.perf_counter()
            result.add(status, answered - scheduled)
            if keep and 200 <= status < 300:
                result.answers.append((scheduled - offset, body))
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            result.errors += 1
            writer.close()
            reader, writer = await asyncio.open_connection(host, port)
        finally:
            pool.put_nowait((reader, writer))

    for k in range(total):
        scheduled = start + k / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(k, scheduled)))
    await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - start
    result.cpu_seconds = time.process_time() - cpu
    while not pool.empty():
        pool.get_nowait()[1].close()
    return result


def _run(make: Callable[[], object]) -> Result:
    if uvloop is not None:
        uvloop.install()
    return asyncio.run(make())  # type: ignore[arg-type]


def _closed_process(args: tuple[str, int, list[bytes], int, float]) -> Result:
    host, port, requests, connections, seconds = args
    return _run(lambda: _closed(host, port, requests, connections, seconds))


def _open_process(args: tuple[str, int, list[bytes], float, float, int, bool]) -> Result:
    host, port, requests, rate, seconds, connections, keep = args
    return _run(lambda: _open(host, port, requests, rate, seconds, connections, keep))


def closed_loop(
    url: str,
    bodies: list[bytes],
    headers: dict[str, str],
    *,
    connections: int = 32,
    seconds: float = 5.0,
    processes: int = 1,
) -> Result:
    """As many requests as ``connections`` keep-alive connections can carry."""
    host, port, requests = build_requests(url, bodies, headers)
    per = max(1, connections // processes)
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.map(_closed_process, [(host, port, requests, per, seconds)] * processes)
    total = Result(seconds)
    for part in parts:
        total.merge(part)
    return total


def open_loop(
    url: str,
    bodies: list[bytes],
    headers: dict[str, str],
    *,
    rate: float,
    seconds: float = 5.0,
    connections: int = 64,
    keep_answers: bool = False,
    paths: list[str] | None = None,
) -> Result:
    """``rate`` requests per second on a fixed schedule, whatever the server does; with
    ``keep_answers``, the 2xx bodies too (``Result.answers``); ``paths`` sends body k to
    ``paths[k]`` instead of ``url``'s path."""
    host, port, requests = build_requests(url, bodies, headers, paths)
    args = (host, port, requests, rate, seconds, connections, keep_answers)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_open_process, (args,))


async def _sequential(host: str, port: int, requests: list[bytes], count: int) -> Result:
    result = Result(0.0)
    reader, writer = await asyncio.open_connection(host, port)
    started = time.perf_counter()
    try:
        for k in range(count):
            sent = time.perf_counter()
            status = await _exchange(reader, writer, requests[k % len(requests)])
            result.add(status, time.perf_counter() - sent)
    finally:
        writer.close()
    result.seconds = time.perf_counter() - started
    return result


def _sequential_process(args: tuple[str, int, list[bytes], int]) -> Result:
    host, port, requests, count = args
    return _run(lambda: _sequential(host, port, requests, count))


def sequential(url: str, bodies: list[bytes], headers: dict[str, str], count: int) -> Result:
    """``count`` requests one at a time on one connection: the unloaded latency."""
    host, port, requests = build_requests(url, bodies, headers)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_sequential_process, ((host, port, requests, count),))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.http_load")
    parser.add_argument("mode", choices=("closed", "open"))
    parser.add_argument("url")
    parser.add_argument("--body", required=True, help="a JSON file: one body, or a list")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    with open(args.body, encoding="utf-8") as f:
        loaded = json.load(f)
    bodies = [json.dumps(b).encode() for b in (loaded if isinstance(loaded, list) else [loaded])]
    headers = dict(h.split(": ", 1) for h in args.header)
    if args.mode == "closed":
        result = closed_loop(
            args.url,
            bodies,
            headers,
            connections=args.connections,
            seconds=args.seconds,
            processes=args.processes,
        )
    else:
        result = open_loop(
            args.url,
            bodies,
            headers,
            rate=args.rate,
            seconds=args.seconds,
            connections=args.connections,
        )
    print(json.dumps(result.summary(), indent=2))


if __name__ == "__main__":
    main()

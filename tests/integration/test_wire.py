"""Limits on the wire, against a real server: an oversized head or too many headers get 431
and a closed connection; a head that dribbles in, or a connection that says nothing, gets 408
and is closed; well-formed requests are untouched."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.live_server import LiveServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {"FRONTLINE_HEADER_TIMEOUT_MS": "600", "FRONTLINE_MAX_HEADER_BYTES": "8192"}
    with LiveServer(tmp_path_factory.mktemp("wire"), env=env) as live:
        yield live


def exchange(server: LiveServer, head: bytes, wait: float = 0.0) -> tuple[bytes, bool]:
    """Send ``head``, maybe wait, and read until the server closes: (answer, closed)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.sendall(head)
        if wait:
            time.sleep(wait)
        chunks = []
        while True:
            try:
                chunk = conn.recv(65536)
            except (TimeoutError, ConnectionResetError):
                return b"".join(chunks), False
            if not chunk:
                return b"".join(chunks), True
            chunks.append(chunk)


def test_an_oversized_head_is_refused_431_before_the_rest_is_read(server: LiveServer) -> None:
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    answer, closed = exchange(server, big)
    assert answer.startswith(b"HTTP/1.1 431 ") and closed
    assert b"larger than 8192 bytes" in answer
    many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-%d: 1\r\n" % k for k in range(150)
    )
    answer, closed = exchange(server, many + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ") and b"more than 100 headers" in answer


def test_a_slow_head_and_a_silent_connection_are_closed_408(server: LiveServer) -> None:
    began = time.monotonic()
    answer, closed = exchange(server, b"POST /v1/decisions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    assert answer.startswith(b"HTTP/1.1 408 ") and closed
    assert time.monotonic() - began < 3
    answer, closed = exchange(server, b"")
    assert answer.startswith(b"HTTP/1.1 408 ") and closed


def test_ordinary_requests_pass_and_keep_their_connection(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        for _ in range(3):
            assert client.get("/healthz", headers={"X-Fine": "a" * 4000}).status_code == 200
            time.sleep(0.4)  # idle between requests is not a slow head
        ready = client.get("/readyz")
        assert ready.status_code == 200

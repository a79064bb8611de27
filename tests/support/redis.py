"""The machine's Redis for tests: each test gets a key prefix of its own, deleted after."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio

from tests.support.live_server import LiveServer

URL = os.environ.get("FRONTLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class CountingConnection(redis.asyncio.Connection):
    """A connection counting what it sends: each write of one or more commands is a round
    trip (a command, a pipeline, or script calls sent together)."""

    sent = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sent += 1
        await super().send_packed_command(command, check_health)


class CountingRedis(redis.asyncio.Redis):
    """The machine's Redis, counting round trips on its connections."""

    @classmethod
    def counting(cls, url: str) -> CountingRedis:
        counter = type("Counter", (CountingConnection,), {"sent": 0})
        client: CountingRedis = cls.from_url(url, connection_class=counter)  # type: ignore[assignment]
        return client

    @property
    def round_trips(self) -> int:
        counter: Any = self.connection_pool.connection_class
        return int(counter.sent)


def require_redis() -> None:
    """Skip without Redis, unless CI says services are required (then fail)."""
    try:
        redis.Redis.from_url(URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        if os.environ.get("FRONTLINE_REQUIRE_SERVICES") == "1":
            raise
        pytest.skip(f"Redis is not reachable at {URL}: {exc}")


def delete_prefix(prefix: str) -> None:
    client = redis.Redis.from_url(URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A fresh key prefix on the shared Redis; its keys are deleted after the test."""
    require_redis()
    prefix = f"t-{uuid.uuid4().hex[:12]}:"
    yield prefix
    delete_prefix(prefix)


class PrivateRedis:
    """A redis-server of a test's own on a free port, which the test may stop and restart."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed; the fault tests need it")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("the private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path).start()
    yield server
    server.stop()


@contextmanager
def instances_on_redis(data: Path, count: int) -> Iterator[list[LiveServer]]:
    """``count`` servers sharing this machine's Redis under a fresh key prefix, for the
    benchmarks: alerts may repeat every millisecond, rate limits are out of the way, and only
    warnings are logged. Stopped, and their keys deleted, afterwards."""
    from tests.support.live_server import LiveServer

    require_redis()
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    env = {
        "REDIS_URL": URL,
        "FRONTLINE_REDIS_PREFIX": prefix,
        "FRONTLINE_ALERT_REPEAT": "1ms",
        "FRONTLINE_RATE_LIMIT": "10000000",
        "FRONTLINE_LOG_LEVEL": "warning",
    }
    started: list[LiveServer] = []
    try:
        for n in range(count):
            env_n = {**env, "FRONTLINE_INSTANCE": f"bench-{n}-{prefix}"}
            started.append(LiveServer(data / f"d{n}", env=env_n).start())
        yield started
    finally:
        for server in started:
            server.stop()
        delete_prefix(prefix)

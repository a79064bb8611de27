"""HTTP: Frontline's ``POST /v1/decisions`` against a bare Litestar endpoint that only validates
the same body, side by side in one run, with 1 and 2 worker processes.

Measured, per worker count: the closed-loop ceiling of each (requests/s over keep-alive
connections), their ratio; for Frontline with one worker also the unloaded latency (one request
at a time) and open-loop latency at fixed offered rates (a sweep, half of its own ceiling
included). The figures go into the benchmark JSON's ``extra_info``; tests/bench/report.py
renders them into docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.bench.http_load import Result, closed_loop, open_loop, sequential
from tests.support.live_server import KEYS, ROOT, LiveServer, free_port
from tests.support.postgres import URL as DATABASE_URL
from tests.support.postgres import require_postgres
from tests.support.redis import URL as REDIS_URL
from tests.support.redis import delete_prefix, require_redis

pytestmark = pytest.mark.bench

CONNECTIONS = 32
SECONDS = 6.0
SWEEP = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25)


def bodies(count: int = 200) -> list[bytes]:
    """~1 KB decision requests for retention-desk, one customer each, with context overrides."""
    out = []
    for k in range(count):
        out.append(
            json.dumps(
                {
                    "ruleset": "retention-desk",
                    "customer_id": f"c-{k}",
                    "agent_id": KEYS["agent"][0],
                    "context": {
                        "customer": {
                            "tier": ["bronze", "silver", "gold", "platinum"][k % 4],
                            "tenure_months": k % 90,
                            "churn_score": (k % 100) / 100,
                            "plan": "premium",
                            "monthly_spend": 40 + k % 80,
                            "past_due_amount": 0,
                            "tags": ["discount-active"] if k % 3 == 0 else [],
                            "open_cases": [
                                {"status": "open", "priority": 2, "category": "billing"}
                            ],
                        },
                        "interaction": {
                            "channel": "voice",
                            "intent": "cancel",
                            "notes": "wants to leave for a cheaper offer from a competitor",
                        },
                        "history": {"contacts_7d": k % 5},
                    },
                }
            ).encode()
        )
    return out


class Bare:
    """The baseline app in its own process(es)."""

    def __init__(self, workers: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.bench.bare_app",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the bare app did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


@pytest.fixture(scope="module")
def load() -> list[bytes]:
    return bodies()


def figures(result: Result) -> dict[str, Any]:
    return result.summary()


def ceiling(url: str, load: list[bytes], headers: dict[str, str]) -> Result:
    closed_loop(url, load, headers, connections=CONNECTIONS, seconds=1.0)  # warm-up
    return closed_loop(url, load, headers, connections=CONNECTIONS, seconds=SECONDS)


@pytest.fixture(params=[1, 2], ids=["1-worker", "2-workers"])
def workers(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture(params=["embedded", "redis-pg"])
def stack(request: pytest.FixtureRequest) -> str:
    """The embedded default, or Redis (context, counters, interactions) and PostgreSQL (the
    ledger shipped from each worker's spool) on this machine."""
    return str(request.param)


@pytest.fixture
def servers(tmp_path: Path, workers: int, stack: str) -> Iterator[tuple[Bare, LiveServer]]:
    env = {"FRONTLINE_RATE_LIMIT": "10000000"}
    tag = uuid.uuid4().hex[:8]
    if stack == "redis-pg":
        require_redis()
        require_postgres()
        env.update(
            {
                "REDIS_URL": REDIS_URL,
                "FRONTLINE_REDIS_PREFIX": f"bench-{tag}:",
                "DATABASE_URL": DATABASE_URL,
                "FRONTLINE_INSTANCE": f"bench-{tag}",
            }
        )
    bare = Bare(workers)
    live = LiveServer(tmp_path / "data", workers=workers, env=env)
    live.start()
    try:
        yield bare, live
    finally:
        live.stop()
        bare.stop()
        if stack == "redis-pg":
            delete_prefix(f"bench-{tag}:")
            with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
                conn.execute("DELETE FROM public.ledger WHERE instance LIKE %s", [f"bench-{tag}%"])


def test_http_decisions_against_a_bare_endpoint(
    benchmark: Any,
    servers: tuple[Bare, LiveServer],
    workers: int,
    stack: str,
    load: list[bytes],
) -> None:
    bare, live = servers
    auth = live.auth("agent")
    bare_result = ceiling(bare.url + "/v1/decisions", load, {})
    mine = ceiling(live.url + "/v1/decisions", load, auth)
    info: dict[str, Any] = {
        "kind": "http",
        "workers": workers,
        "stack": stack,
        "connections": CONNECTIONS,
        "bare": figures(bare_result),
        "frontline": figures(mine),
        "ratio": mine.rate / bare_result.rate if bare_result.rate else None,
        "load_average": os.getloadavg(),
    }
    if workers == 1:
        info["unloaded"] = figures(sequential(live.url + "/v1/decisions", load, auth, 1000))
        info["sweep"] = [
            {
                "fraction": fraction,
                "offered": round(mine.rate * fraction),
                **figures(
                    open_loop(
                        live.url + "/v1/decisions",
                        load,
                        auth,
                        rate=mine.rate * fraction,
                        seconds=4.0,
                        connections=128,
                    )
                ),
            }
            for fraction in SWEEP
        ]
    benchmark.extra_info.update(info)
    benchmark.group = "http"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    assert mine.ok > 0 and bare_result.ok > 0

"""Memory under a long load: half of the server's capacity, open loop, for ten minutes
(FRONTLINE_SOAK_SECONDS to change it), over 100,000 distinct customers whose contexts live in
Redis, so every in-process cache fills to its bound. The server's resident memory is sampled
from /proc every few seconds; flat means the second half grows by no more than 10%."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis

from tests.bench.http_load import Result, closed_loop, open_loop
from tests.support.live_server import KEYS, LiveServer
from tests.support.redis import URL as REDIS_URL
from tests.support.redis import delete_prefix, require_redis

pytestmark = pytest.mark.bench

SECONDS = float(os.environ.get("FRONTLINE_SOAK_SECONDS", "600"))
CUSTOMERS = 100_000
EVERY = 5.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def seed(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    encode = msgspec.json.Encoder().encode
    pipe = client.pipeline(transaction=False)
    for k in range(CUSTOMERS):
        values = {
            "customer": {
                "tier": ["bronze", "silver", "gold", "platinum"][k % 4],
                "tenure_months": k % 90,
                "churn_score": (k % 100) / 100,
                "plan": "premium",
                "email": f"customer{k}@example.com",
            },
            "history": {"contacts_7d": k % 5},
        }
        pipe.set(f"{prefix}context:s-{k}", encode({"v": values, "s": {}, "a": {}}))
        if k % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    client.close()


def test_memory_stays_flat_under_a_long_load(benchmark: Any, tmp_path: Path) -> None:
    require_redis()
    prefix = f"soak-{uuid.uuid4().hex[:8]}:"
    seed(prefix)
    env = {
        "REDIS_URL": REDIS_URL,
        "FRONTLINE_REDIS_PREFIX": prefix,
        "FRONTLINE_CONTEXT_CACHE_MS": str(int(SECONDS * 1000) + 60_000),
        "FRONTLINE_RATE_LIMIT": "10000000",
        "FRONTLINE_LOG_LEVEL": "warning",
    }
    agent = KEYS["agent"][0]
    bodies = [
        json.dumps(
            {"ruleset": "retention-desk", "customer_id": f"s-{k}", "agent_id": agent}
        ).encode()
        for k in range(CUSTOMERS)
    ]
    try:
        with LiveServer(tmp_path / "data", env=env) as server:
            assert server.process is not None
            pid = server.process.pid
            url = server.url + "/v1/decisions"
            auth = server.auth("agent")
            capacity = closed_loop(url, bodies[:2000], auth, connections=32, seconds=3.0).rate
            rate = capacity / 2
            result: list[Result] = []
            runner = threading.Thread(
                target=lambda: result.append(
                    open_loop(url, bodies, auth, rate=rate, seconds=SECONDS, connections=64)
                )
            )
            started = time.monotonic()
            runner.start()
            samples: list[tuple[float, float]] = []
            while runner.is_alive():
                samples.append((time.monotonic() - started, rss_mb(pid)))
                runner.join(EVERY)
            samples.append((time.monotonic() - started, rss_mb(pid)))
    finally:
        delete_prefix(prefix)
    load = result[0]
    middle = min(samples, key=lambda s: abs(s[0] - SECONDS / 2))[1]
    growth = (samples[-1][1] - middle) / middle
    benchmark.group = "soak"
    benchmark.extra_info.update(
        {
            "kind": "soak",
            "seconds": SECONDS,
            "rate": rate,
            "capacity": capacity,
            "customers": CUSTOMERS,
            "every": EVERY,
            "rss_mb": [(round(t, 1), round(mb, 1)) for t, mb in samples],
            "growth_second_half": growth,
            **load.summary(),
            "load_average": os.getloadavg(),
        }
    )
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    assert load.ok > 0 and abs(growth) < 0.25, (growth, samples[-5:])

"""Event posted → alert received on the agent's WebSocket, at a fixed offered rate (open loop:
latency counts from each event's scheduled send time), with one server and across two
(events posted to one, the desktop connected to the other), both on the machine's Redis.

Every event raises one alert: each customer has a live interaction and three failed payments
already, so ``repeat-failed-payments`` fires on every further one, and the repeat interval is
set to 1 ms. Latency is from the scheduled POST to the WebSocket message carrying the id the
POST's answer names.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.bench.http_load import Result
from tests.support.live_server import KEYS, LiveServer
from tests.support.redis import URL as REDIS_URL
from tests.support.redis import delete_prefix, require_redis

pytestmark = pytest.mark.bench

RATE = 200
SECONDS = 10.0
CUSTOMERS = 40
AGENT, AGENT_KEY = KEYS["agent"]


@pytest.fixture(params=[1, 2], ids=["one-instance", "across-two"])
def servers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[LiveServer]]:
    require_redis()
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    env = {
        "REDIS_URL": REDIS_URL,
        "FRONTLINE_REDIS_PREFIX": prefix,
        "FRONTLINE_ALERT_REPEAT": "1ms",
        "FRONTLINE_RATE_LIMIT": "10000000",
        "FRONTLINE_LOG_LEVEL": "warning",
    }
    started = []
    try:
        for n in range(int(request.param)):
            env_n = {**env, "FRONTLINE_INSTANCE": f"bench-{n}-{prefix}"}
            started.append(LiveServer(tmp_path / f"d{n}", env=env_n).start())
        yield started
    finally:
        for server in started:
            server.stop()
        delete_prefix(prefix)


async def prepare(server: LiveServer) -> list[str]:
    customers = [f"c-alert-bench-{k}" for k in range(CUSTOMERS)]
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        for customer in customers:
            started = await client.post(
                "/v1/interactions",
                json={"ruleset": "retention-desk", "customer_id": customer, "agent_id": AGENT},
                headers=server.auth("agent"),
            )
            assert started.status_code == 201, started.text
            for _ in range(3):
                await client.post(
                    f"/v1/customers/{customer}/events",
                    json={"type": "payment_failed"},
                    headers=server.auth("integration"),
                )
    return customers


async def measure(post_to: LiveServer, desktop_on: LiveServer) -> tuple[Result, int]:
    customers = await prepare(post_to)
    received: dict[str, float] = {}
    url = desktop_on.url.replace("http://", "ws://") + f"/v1/agents/{AGENT}/alerts"
    async with connect(f"{url}?access_token={AGENT_KEY}") as socket:

        async def read() -> None:
            async for text in socket:
                message = json.loads(text)
                if message.get("type") == "alert":
                    received[message["alert_id"]] = time.perf_counter()

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.5)  # the subscription is live; older alerts are drained
        sent: dict[str, float] = {}
        result = Result(seconds=SECONDS)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=post_to.url, timeout=10, limits=limits) as client:

            async def post(k: int, due: float) -> None:
                response = await client.post(
                    f"/v1/customers/{customers[k % CUSTOMERS]}/events",
                    json={"type": "payment_failed"},
                    headers=post_to.auth("integration"),
                )
                result.statuses[response.status_code] = (
                    result.statuses.get(response.status_code, 0) + 1
                )
                if response.status_code == 202:
                    for alert_id in response.json()["alerts_raised"]:
                        sent[alert_id] = due

            start = time.perf_counter() + 0.1
            tasks = []
            for k in range(int(RATE * SECONDS)):
                due = start + k / RATE
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(post(k, due)))
            await asyncio.gather(*tasks)
        deadline = time.perf_counter() + 5
        while set(sent) - set(received) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        reader.cancel()
    result.latencies = [received[i] - due for i, due in sent.items() if i in received]
    return result, len(set(sent) - set(received))


def test_event_to_alert_latency(benchmark: Any, servers: list[LiveServer]) -> None:
    result, missing = asyncio.run(measure(servers[0], servers[-1]))
    benchmark.group = "alerts"
    benchmark.extra_info.update(
        {
            "kind": "alerts",
            "instances": len(servers),
            "rate": RATE,
            "seconds": SECONDS,
            "alerts": len(result.latencies),
            "missing": missing,
            **result.summary(),
            "load_average": os.getloadavg(),
        }
    )
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    assert missing == 0 and len(result.latencies) >= RATE * SECONDS * 0.99

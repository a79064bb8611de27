"""Event posted → alert received on the agent's WebSocket, at a fixed offered rate (open loop:
latency counts from each event's scheduled send time), with one server and across two
(events posted to one, the desktop connected to the other), both on the machine's Redis.

Every event raises one alert: each customer has a live interaction and three failed payments
already, so ``repeat-failed-payments`` fires on every further one, and the repeat interval is
set to 1 ms. Latency is from the scheduled POST to the WebSocket message carrying the id the
POST's answer names. The events come from the lean open-loop client of
tests/bench/http_load.py in a process of its own (a bounded number of keep-alive connections,
each request timed from its scheduled send, its own CPU recorded); the alerts counted are the
ones the answers say were raised.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.bench.http_load import Result, open_loop
from tests.support.live_server import KEYS, LiveServer
from tests.support.redis import instances_on_redis

pytestmark = pytest.mark.bench

RATE = 1000
CONNECTIONS = 32
SECONDS = 10.0
CUSTOMERS = 40
AGENT, AGENT_KEY = KEYS["agent"]


@pytest.fixture(params=[1, 2], ids=["one-instance", "across-two"])
def servers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[LiveServer]]:
    with instances_on_redis(tmp_path, int(request.param)) as started:
        yield started


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


async def measure(post_to: LiveServer, desktop_on: LiveServer, rate: int) -> dict[str, Any]:
    customers = await prepare(post_to)
    received: dict[str, float] = {}
    url = desktop_on.url.replace("http://", "ws://") + f"/v1/agents/{AGENT}/alerts"
    async with connect(f"{url}?access_token={AGENT_KEY}", max_queue=None) as socket:

        async def read() -> None:
            async for text in socket:
                message = json.loads(text)
                if message.get("type") == "alert":
                    received[message["alert_id"]] = time.monotonic()

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.5)  # the subscription is live; older alerts are drained
        total = int(rate * SECONDS)
        paths = [f"/v1/customers/{customers[k % CUSTOMERS]}/events" for k in range(total)]
        server_cpu = cpu_seconds(post_to)
        # The lean open-loop client (tests/bench/http_load.py) in a process of its own: each
        # event sent at its scheduled time on one of CONNECTIONS keep-alive connections, timed
        # from that time, its answer kept (the ids of the alerts it raised).
        result: Result = await asyncio.to_thread(
            open_loop,
            post_to.url,
            [b'{"type": "payment_failed"}'] * total,
            post_to.auth("integration"),
            rate=rate,
            seconds=SECONDS,
            connections=CONNECTIONS,
            keep_answers=True,
            paths=paths,
        )
        server_cpu = cpu_seconds(post_to) - server_cpu
        raised: dict[str, float] = {}
        for scheduled, body in result.answers:
            for alert_id in json.loads(body)["alerts_raised"]:
                raised[alert_id] = scheduled
        deadline = time.monotonic() + 5
        while set(raised) - set(received) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        reader.cancel()
    latencies = Result(seconds=SECONDS)
    latencies.latencies = [received[i] - due for i, due in raised.items() if i in received]
    return {
        **latencies.summary(),
        "events": total,
        "events_answered": result.ok,
        "event_statuses": {str(k): v for k, v in result.statuses.items()},
        "event_p50_ms": round(result.percentile(50) * 1000, 3),
        "event_p99_ms": round(result.percentile(99) * 1000, 3),
        "alerts": len(raised),
        "received": len(latencies.latencies),
        "missing": len(set(raised) - set(received)),
        "client_cpu_s": round(result.cpu_seconds, 3),
        "server_cpu_ms_per_event": round(server_cpu / max(1, result.ok) * 1000, 3),
    }


def cpu_seconds(server: LiveServer) -> float:
    """The CPU (user + system) the server's process has used so far."""
    assert server.process is not None
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_event_to_alert_latency(benchmark: Any, servers: list[LiveServer]) -> None:
    found = asyncio.run(measure(servers[0], servers[-1], RATE))
    benchmark.group = "alerts"
    benchmark.extra_info.update(
        {
            "kind": "alerts",
            "instances": len(servers),
            "rate": RATE,
            "seconds": SECONDS,
            "connections": CONNECTIONS,
            **found,
            "load_average": os.getloadavg(),
        }
    )
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(
        f"\nalerts at {RATE}/s, {len(servers)} instance(s): {found['received']} of "
        f"{found['alerts']} alerts, p50 {found['p50_ms']} ms, p99 {found['p99_ms']} ms; "
        f"server CPU {found['server_cpu_ms_per_event']} ms/event; "
        f"client CPU {found['client_cpu_s']} s"
    )
    # Every alert an answer says was raised reaches the desktop; how many events were
    # answered and at what latency is for the report to judge against its targets.
    assert found["missing"] == 0

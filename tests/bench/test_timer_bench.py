"""Timer rules at scale: 10,000 live interactions whose timer rules run every 30 s, across two
instances on this machine's Redis.

A ruleset with one timer alert rule and one timer escalation rule that always hold
(``every: 30s``) is deployed, 10,000 interactions are started (half through each instance),
and the two instances run the timers for a little over two periods. Every run raises an
alert (the repeat interval is 1 ms); the first run of each interaction also raises the
escalation, which later runs do not raise again. Every alert and escalation record says when
its run was due (``due_at``) and when it was recorded; read back from both instances'
ledgers, they show how late each run was, whether any interaction ran twice in one period,
and whether any interaction was escalated more than once.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit.query import LedgerQuery, LedgerReader
from engine.times import parse_time
from tests.support.live_server import KEYS, LiveServer
from tests.support.redis import instances_on_redis

pytestmark = pytest.mark.bench

INTERACTIONS = 10_000
EVERY_S = 30
RUN_FOR_S = 2 * EVERY_S + 10  # two full periods after the last interaction started, and some
AGENT = KEYS["agent"][0]

DOCUMENT = f"""
ruleset: timer-bench
context:
  interaction.started_at: datetime
alerts:
  - id: still-on-the-line
    when: hours_since(interaction.started_at) >= 0
    severity: info
    message: Still on the line
    on: [timer]
    every: {EVERY_S}s
escalation:
  - id: long-call
    when: hours_since(interaction.started_at) >= 0
    queue: team-lead
    priority: 1
    because: The call has run its course
    on: [timer]
    every: {EVERY_S}s
policy: {{supervisor: team-lead}}
"""


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[LiveServer]]:
    with instances_on_redis(tmp_path, 2) as started:
        yield started


async def start_interactions(servers: list[LiveServer]) -> float:
    """Start INTERACTIONS interactions, alternating between the servers; the seconds it took."""
    began = time.monotonic()
    clients = [
        httpx.AsyncClient(
            base_url=s.url,
            headers=s.auth("agent"),
            timeout=30,
            limits=httpx.Limits(max_connections=16),
        )
        for s in servers
    ]
    gate = asyncio.Semaphore(32)

    async def one(k: int) -> None:
        async with gate:
            for _ in range(20):  # a server that sheds load says when to come back
                response = await clients[k % len(clients)].post(
                    "/v1/interactions",
                    json={"ruleset": "timer-bench", "customer_id": f"c-t-{k}", "agent_id": AGENT},
                )
                if response.status_code != 503:
                    break
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
            assert response.status_code == 201, response.text

    try:
        await asyncio.gather(*(one(k) for k in range(INTERACTIONS)))
    finally:
        for client in clients:
            await client.aclose()
    return time.monotonic() - began


def timer_runs(
    servers: list[LiveServer], kind: str = "alert"
) -> list[tuple[str, float, float, int]]:
    """Every timer run both ledgers hold that raised a record of ``kind`` (``alert`` or
    ``escalation_raised``): (interaction, due, recorded, which server), times in seconds."""
    runs = []
    counter = COUNTERS[kind]
    for n, server in enumerate(servers):
        deadline = time.monotonic() + 30
        while True:  # the index follows the log: wait until it has caught up
            reader = LedgerReader(server.ledger_dir)
            try:
                found = list(reader.iterate(LedgerQuery(kind=kind)))
            finally:
                reader.close()
            if time.monotonic() > deadline or len(found) == _committed(server, counter):
                break
            time.sleep(0.5)
        for record in found:
            if record.data.get("trigger") != "timer":
                continue
            due = parse_time(record.data["due_at"])
            recorded = parse_time(record.recorded_at)
            assert due is not None and recorded is not None and record.interaction_id
            runs.append((record.interaction_id, due.timestamp(), recorded.timestamp(), n))
    return runs


COUNTERS = {
    "alert": "frontline_alerts_raised_total",
    "escalation_raised": "frontline_escalations_raised_total",
}


def _committed(server: LiveServer, counter: str) -> int:
    figures = httpx.get(server.url + "/metrics").text
    for line in figures.splitlines():
        if line.startswith(counter):
            return int(float(line.rsplit(" ", 1)[1]))
    return -1


def test_ten_thousand_interactions_on_a_thirty_second_timer(
    benchmark: Any, servers: list[LiveServer]
) -> None:
    deployed = httpx.post(
        servers[0].url + "/v1/rulesets",
        params={"allow_untested": "true"},  # rules that always hold: nothing to test
        content=DOCUMENT,
        headers={**servers[0].auth("author"), "Content-Type": "application/yaml"},
        timeout=30,
    )
    assert deployed.status_code == 201, deployed.text
    time.sleep(1.5)  # the other instance hears of the revision
    starting = asyncio.run(start_interactions(servers))
    time.sleep(RUN_FOR_S)
    runs = timer_runs(servers)
    late = sorted(max(0.0, recorded - due) for _, due, recorded, _ in runs)
    per_period = Counter((interaction, round(due)) for interaction, due, _, _ in runs)
    twice = sum(1 for n in per_period.values() if n > 1)
    per_interaction = Counter(interaction for interaction, _, _, _ in runs)
    per_server = Counter(server for _, _, _, server in runs)
    found = {
        "interactions": INTERACTIONS,
        "every_s": EVERY_S,
        "ran_for_s": RUN_FOR_S,
        "starting_s": round(starting, 1),
        "runs": len(runs),
        "runs_per_instance": [per_server[n] for n in range(len(servers))],
        "interactions_run": len(per_interaction),
        "least_runs_per_interaction": min(per_interaction.values(), default=0),
        "twice_in_a_period": twice,
        "late_p50_s": round(late[len(late) // 2], 3) if late else None,
        "late_p99_s": round(late[int(len(late) * 0.99)], 3) if late else None,
        "late_max_s": round(late[-1], 3) if late else None,
        "on_time_within_1s": sum(1 for x in late if x <= 1.0),
        **escalation_figures(servers),
        "load_average": os.getloadavg(),
    }
    benchmark.group = "timers"
    benchmark.extra_info.update({"kind": "timers", **found})
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"\ntimers: {found}")
    assert twice == 0
    assert found["interactions_run"] == INTERACTIONS
    assert found["escalated_twice"] == 0
    assert found["interactions_escalated"] == INTERACTIONS


def escalation_figures(servers: list[LiveServer]) -> dict[str, Any]:
    """How the timer escalation went: each interaction escalated once, by its first run."""
    runs = timer_runs(servers, "escalation_raised")
    late = sorted(max(0.0, recorded - due) for _, due, recorded, _ in runs)
    per_interaction = Counter(interaction for interaction, _, _, _ in runs)
    per_server = Counter(server for _, _, _, server in runs)
    return {
        "escalations": len(runs),
        "escalations_per_instance": [per_server[n] for n in range(len(servers))],
        "interactions_escalated": len(per_interaction),
        "escalated_twice": sum(1 for n in per_interaction.values() if n > 1),
        "escalation_late_p50_s": round(late[len(late) // 2], 3) if late else None,
        "escalation_late_p99_s": round(late[int(len(late) * 0.99)], 3) if late else None,
        "escalation_late_max_s": round(late[-1], 3) if late else None,
        "escalation_on_time_within_1s": sum(1 for x in late if x <= 1.0),
    }

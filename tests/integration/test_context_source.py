"""A server with FRONTLINE_CONTEXT_SOURCE_URL: a customer missing from the cache is fetched
from the source; a slow source never holds a decision longer than its timeout."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.support.live_server import KEYS, LiveServer
from tests.support.source import ContextSource

AGENT = KEYS["agent"][0]


def test_missing_context_comes_from_the_source_and_a_slow_source_is_not_waited_for(
    tmp_path: Path,
) -> None:
    source = ContextSource()
    source.contexts["c-src"] = {"customer": {"tier": "platinum", "churn_score": 0.91}}
    env = {
        "FRONTLINE_CONTEXT_SOURCE_URL": source.url,
        "FRONTLINE_CONTEXT_SOURCE_TIMEOUT_MS": "150",
    }
    try:
        with (
            LiveServer(tmp_path / "data", env=env) as server,
            httpx.Client(base_url=server.url, timeout=10) as client,
        ):

            def decide(customer_id: str) -> httpx.Response:
                return client.post(
                    "/v1/decisions",
                    json={
                        "ruleset": "retention-desk",
                        "customer_id": customer_id,
                        "agent_id": AGENT,
                    },
                    headers=server.auth("agent"),
                )

            fetched = decide("c-src")
            assert fetched.status_code == 200, fetched.text
            assert "high-churn-caller" in {a["rule"] for a in fetched.json()["alerts"]}
            assert "degraded" not in fetched.json()
            cached = client.get("/v1/customers/c-src/context", headers=server.auth("integration"))
            assert cached.json()["fields"]["customer.tier"]["source"] == "source"
            assert source.requests == ["/customers/c-src"]
            source.contexts["c-slow"] = {"customer": {"tier": "gold"}}
            source.delay = 3.0
            started = time.perf_counter()
            slow = decide("c-slow")
            elapsed = time.perf_counter() - started
            assert slow.status_code == 200 and slow.json()["degraded"] is True
            assert elapsed < 1.0, elapsed
    finally:
        source.close()

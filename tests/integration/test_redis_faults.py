"""Redis stopped under load: decisions go on from the in-process cache, marked degraded; an
alert raised meanwhile is delivered when Redis returns; no 5xx at any point. Against a
private redis-server the test stops and restarts."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.support.live_server import KEYS, LiveServer
from tests.support.redis import PrivateRedis
from tests.support.streams import SseAlerts

AGENT, AGENT_KEY = KEYS["agent"]


class Load:
    """Decisions for one customer from a thread, about 100 a second, until stopped."""

    def __init__(self, server: LiveServer, customer_id: str) -> None:
        self.server = server
        self.customer_id = customer_id
        self.statuses: Counter[int] = Counter()
        self.degraded: list[float] = []
        self.plain: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(base_url=self.server.url, timeout=10) as client:
            while not self._stop.is_set():
                response = client.post(
                    "/v1/decisions",
                    json={
                        "ruleset": "retention-desk",
                        "customer_id": self.customer_id,
                        "agent_id": AGENT,
                    },
                    headers=self.server.auth("agent"),
                )
                self.statuses[response.status_code] += 1
                if response.status_code == 200:
                    body = response.json()
                    (self.degraded if body.get("degraded") else self.plain).append(time.monotonic())
                    assert body["eligible"] is not None
                time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def test_decisions_go_on_and_alerts_wait_while_redis_is_away(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    env = {"REDIS_URL": private_redis.url, "FRONTLINE_REDIS_TIMEOUT_MS": "200"}
    with LiveServer(tmp_path / "data", env=env) as server:
        client = httpx.Client(base_url=server.url, timeout=10)
        put = client.put(
            "/v1/customers/c-f/context",
            json={"values": {"customer": {"tier": "gold", "tenure_months": 50}}},
            headers=server.auth("integration"),
        )
        assert put.status_code == 200
        desktop = SseAlerts(server.url, AGENT, AGENT_KEY)
        load = Load(server, "c-f")
        try:
            time.sleep(1.0)
            private_redis.stop()
            stopped = time.monotonic()
            time.sleep(1.5)
            # An interaction starts while Redis is away: it is kept in process and its
            # alert waits for Redis.
            started = client.post(
                "/v1/interactions",
                json={
                    "ruleset": "retention-desk",
                    "customer_id": "c-g",
                    "agent_id": AGENT,
                    "context": {"customer": {"churn_score": 0.93}},
                },
                headers=server.auth("agent"),
            )
            assert started.status_code == 201, started.text
            assert started.json()["degraded"] is True
            alert_id = started.json()["alerts"][0]["alert_id"]
            # Writes that need Redis are refused with a retryable 503, not a 500.
            event = client.post(
                "/v1/customers/c-f/events",
                json={"type": "payment_failed"},
                headers=server.auth("integration"),
            )
            assert event.status_code == 503 and event.headers["Retry-After"] == "1"
            time.sleep(1.0)
            private_redis.start()
            restarted = time.monotonic()
            alert = desktop.next(timeout=15, customer_id="c-g")
            assert alert["alert_id"] == alert_id
            delivered_after = time.monotonic() - restarted
            # The interaction started in the outage reached Redis: decisions in it go on.
            pinned = client.post(
                "/v1/decisions",
                json={
                    "ruleset": "retention-desk",
                    "customer_id": "c-g",
                    "agent_id": AGENT,
                    "interaction": started.json()["interaction_id"],
                },
                headers=server.auth("agent"),
            )
            assert pinned.status_code == 200, pinned.text
            time.sleep(2.5)  # the breakers close and the cache refills
        finally:
            load.stop()
            desktop.close()
            client.close()
    assert set(load.statuses) == {200}, load.statuses
    during = [t for t in load.degraded if stopped <= t <= restarted]
    assert during, "no decision was marked degraded while Redis was away"
    assert any(t > restarted for t in load.plain), "decisions stayed degraded after Redis returned"
    assert delivered_after < 10

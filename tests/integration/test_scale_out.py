"""Two `frontline serve` processes sharing Redis and PostgreSQL behave as one: a deploy,
activation or rollback through one is served by the other within 200 ms; an event posted to
one raises an alert on a desktop connected to the other; PostgreSQL holds both instances'
records, each instance's chain verifying."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from audit.postgres import PostgresLedgerStore
from tests.support.live_server import KEYS, ROOT, LiveServer
from tests.support.postgres import URL as DATABASE_URL
from tests.support.postgres import check_chain, require_postgres
from tests.support.redis import URL as REDIS_URL
from tests.support.redis import delete_prefix, require_redis
from tests.support.streams import SseAlerts

RETENTION = (ROOT / "rulesets" / "retention-desk.yaml").read_text(encoding="utf-8")
AGENT, AGENT_KEY = KEYS["agent"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, LiveServer]]:
    require_redis()
    require_postgres()
    tag = uuid.uuid4().hex[:8]
    prefix = f"t-{tag}:"
    servers = []
    try:
        for name in ("a", "b"):
            env = {
                "REDIS_URL": REDIS_URL,
                "FRONTLINE_REDIS_PREFIX": prefix,
                "DATABASE_URL": DATABASE_URL,
                "FRONTLINE_INSTANCE": f"scale-{name}-{tag}",
            }
            data: Path = tmp_path_factory.mktemp(f"instance-{name}")
            servers.append(LiveServer(data, env=env).start())
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()
        delete_prefix(prefix)
        with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
            conn.execute(
                "DELETE FROM public.ledger WHERE instance = ANY(%s)",
                [[s.env["FRONTLINE_INSTANCE"] for s in servers]],
            )


def revision_served(server: LiveServer, customer_id: str = "c-probe") -> int:
    response = httpx.post(
        server.url + "/v1/decisions",
        json={"ruleset": "retention-desk", "customer_id": customer_id, "agent_id": AGENT},
        headers=server.auth("agent"),
    )
    assert response.status_code == 200, response.text
    revision: int = response.json()["revision"]
    return revision


def seen_within(server: LiveServer, revision: int, limit: float = 2.0) -> float:
    """Seconds until ``server`` serves ``revision`` (polling every few milliseconds)."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if revision_served(server) == revision:
            return time.perf_counter() - started
        time.sleep(0.005)
    raise AssertionError(f"revision {revision} was not served within {limit} s")


def test_a_deploy_and_a_rollback_through_one_instance_are_served_by_the_other(
    pair: tuple[LiveServer, LiveServer],
) -> None:
    a, b = pair
    before = revision_served(b)
    assert revision_served(a) == before  # B found the rulesets A seeded in Redis
    changed = RETENTION.replace("max_amount: 25", "max_amount: 35", 1)
    deployed = httpx.post(
        a.url + "/v1/rulesets",
        content=changed,
        headers={**a.auth("author"), "content-type": "application/yaml"},
    )
    assert deployed.status_code == 201, deployed.text
    newer = deployed.json()["revision"]
    assert newer > before
    deploy_lag = seen_within(b, newer)
    rollback = httpx.post(
        b.url + "/v1/rulesets/retention-desk/activate",
        json={"revision": before},
        headers=b.auth("author"),
    )
    assert rollback.status_code == 200, rollback.text
    rollback_lag = seen_within(a, before)
    assert deploy_lag < 0.2 and rollback_lag < 0.2, (deploy_lag, rollback_lag)


def test_a_ruleset_retired_through_one_instance_is_refused_by_the_other(
    pair: tuple[LiveServer, LiveServer],
) -> None:
    """A retirement propagates as an activation does: within a fraction of a second the
    other instance refuses the ruleset's decisions (409), and serves them again once a
    revision is activated through it."""
    a, b = pair
    served = revision_served(b)
    retired = httpx.post(
        a.url + "/v1/rulesets/retention-desk/retire",
        json={"reason": "a retirement seen by both instances"},
        headers=a.auth("author"),
    )
    assert retired.status_code == 200, retired.text
    started = time.perf_counter()
    while True:
        refused = httpx.post(
            b.url + "/v1/decisions",
            json={"ruleset": "retention-desk", "customer_id": "c-probe", "agent_id": AGENT},
            headers=b.auth("agent"),
        )
        if refused.status_code == 409 or time.perf_counter() - started > 2:
            break
        time.sleep(0.005)
    assert refused.status_code == 409 and "by ann" in refused.json()["detail"]
    lag = time.perf_counter() - started
    back = httpx.post(
        b.url + "/v1/rulesets/retention-desk/activate",
        json={"revision": served},
        headers=b.auth("author"),
    )
    assert back.status_code == 200, back.text
    assert seen_within(a, served) < 0.2 and lag < 0.2, lag


def test_an_event_posted_to_one_instance_alerts_a_desktop_on_the_other(
    pair: tuple[LiveServer, LiveServer],
) -> None:
    a, b = pair
    desktop = SseAlerts(b.url, AGENT, AGENT_KEY)
    try:
        started = httpx.post(
            b.url + "/v1/interactions",
            json={"ruleset": "retention-desk", "customer_id": "c-scale", "agent_id": AGENT},
            headers=b.auth("agent"),
        )
        assert started.status_code == 201, started.text
        raised: list[Any] = []
        for _ in range(3):
            posted = httpx.post(
                a.url + "/v1/customers/c-scale/events",
                json={"type": "payment_failed"},
                headers=a.auth("integration"),
            )
            assert posted.status_code == 202, posted.text
            raised += posted.json()["alerts_raised"]
        assert len(raised) == 1
        alert = desktop.next(timeout=5, customer_id="c-scale")
        assert alert["alert_id"] == raised[0] and alert["rule"] == "repeat-failed-payments"
        # The context written through B is what A reads.
        put = httpx.put(
            b.url + "/v1/customers/c-scale/context",
            json={"values": {"customer": {"tier": "gold", "tenure_months": 80}}},
            headers=b.auth("integration"),
        )
        assert put.status_code == 200
        read = httpx.get(a.url + "/v1/customers/c-scale/context", headers=a.auth("integration"))
        assert read.json()["values"]["customer"]["tier"] == "gold"
    finally:
        desktop.close()


def test_postgresql_holds_every_instances_records_in_verifiable_chains(
    pair: tuple[LiveServer, LiveServer],
) -> None:
    a, b = pair
    ids = {}
    for server in (a, b):
        response = httpx.post(
            server.url + "/v1/decisions",
            json={"ruleset": "retention-desk", "customer_id": "c-pg", "agent_id": AGENT},
            headers=server.auth("agent"),
        )
        ids[server.env["FRONTLINE_INSTANCE"]] = response.json()["decision_id"]
    for instance, decision_id in ids.items():
        deadline = time.monotonic() + 20
        while True:
            store = PostgresLedgerStore(DATABASE_URL, instance=instance)
            try:
                bodies = [body for _, body in store.scan()]
                if any(decision_id.encode() in body for body in bodies):
                    report = check_chain(store)
                    assert report.ok, report
                    assert report.records == len(bodies) > 1
                    break
            finally:
                store.close()
            assert time.monotonic() < deadline, f"{instance} did not ship {decision_id}"
            time.sleep(0.1)

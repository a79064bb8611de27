"""Rate limits against the attacks that got around them: one budget per authenticated
principal however its key is written, failed authentications throttled per client address,
and WebSockets spending the same budgets as requests. Against a real server, on the fast path
(decisions) and through Litestar's routes alike."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support.live_server import KEYS, LiveServer

BUDGET = 5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("limits")
    with LiveServer(data, env={"FRONTLINE_RATE_LIMIT": str(BUDGET)}) as live:
        yield live


@pytest.fixture(autouse=True)
def clear_of_a_window_edge() -> None:
    """Budgets are per clock minute: start well inside one, so a test's requests share it."""
    if time.time() % 60 > 50:
        time.sleep(60 - time.time() % 60 + 0.5)


def decision(agent: str) -> dict[str, str]:
    return {"ruleset": "retention-desk", "customer_id": "c-1", "agent_id": agent}


def test_a_key_written_with_extra_spaces_gets_no_fresh_budget(server: LiveServer) -> None:
    """However the header spells the key (spaces, the scheme's case), it is one principal
    with one budget, on the fast path and on Litestar's routes."""
    agent, key = KEYS["agent"]
    spellings = [
        f"Bearer {key}",
        f"Bearer  {key}",
        f"Bearer      {key}",
        f"bearer {key}",
        f"BEARER   {key}",
    ]
    statuses = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for k in range(4 * len(spellings)):
            headers = {"Authorization": spellings[k % len(spellings)]}
            if k % 2:
                answer = client.post("/v1/decisions", json=decision(agent), headers=headers)
            else:  # a route Litestar answers, not the fast path
                answer = client.delete("/v1/interactions/none", headers=headers)
            statuses.append(answer.status_code)
    passed = [s for s in statuses if s != 429]
    assert len(passed) == BUDGET, statuses
    assert statuses[BUDGET:] == [429] * (len(statuses) - BUDGET), statuses


def test_failed_authentications_are_throttled_per_client_address(server: LiveServer) -> None:
    """Wrong keys, over HTTP or WebSockets, spend the client address's budget: once it is
    used, guesses get 429 without being checked, while valid keys keep their own budgets."""
    base = server.url.replace("http://", "ws://")
    agent2 = KEYS["agent2"][0]
    sockets = 2
    for k in range(sockets):
        with pytest.raises(InvalidStatus):
            connect(
                f"{base}/v1/agents/{agent2}/alerts",
                additional_headers={"Authorization": f"Bearer wrong-socket-key-{k:010d}"},
                open_timeout=5,
            )
    guesses = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for k in range(40):
            guess = {"Authorization": f"Bearer wrong-key-{k:012d}"}
            path = "/v1/decisions" if k % 2 else "/v1/rulesets"
            if k % 2:
                guesses.append(client.post(path, json=decision(agent2), headers=guess).status_code)
            else:
                guesses.append(client.get(path, headers=guess).status_code)
        # the address's budget is spent, by the sockets too; nothing unauthenticated passes
        assert guesses == [401] * (BUDGET - sockets) + [429] * (40 - BUDGET + sockets), guesses
        anonymous = client.get("/v1/rulesets")
        assert anonymous.status_code == 429
        assert 1 <= int(anonymous.headers["retry-after"]) <= 60
        valid = client.get("/v1/rulesets", headers=server.auth("author"))
        assert valid.status_code == 200


def test_websocket_connects_spend_the_keys_budget(server: LiveServer) -> None:
    """Opening alert sockets spends the key's budget like requests: once it is used, one more
    socket is refused before it opens, and so is the key's next request."""
    agent, key = KEYS["agent2"]
    base = server.url.replace("http://", "ws://")
    for k in range(BUDGET):
        spaced = {"Authorization": f"Bearer {' ' * k}{key}"}  # spaces change nothing
        connect(
            f"{base}/v1/agents/{agent}/alerts", additional_headers=spaced, open_timeout=5
        ).close()
    with pytest.raises(InvalidStatus) as refused:
        connect(
            f"{base}/v1/agents/{agent}/alerts",
            additional_headers={"Authorization": f"Bearer {key}"},
            open_timeout=5,
        )
    assert refused.value.response.status_code == 403  # closed before it was accepted
    with httpx.Client(base_url=server.url, timeout=30) as client:
        answer = client.post("/v1/decisions", json=decision(agent), headers=server.auth("agent2"))
        assert answer.status_code == 429
        ticket = client.post("/v1/stream-tickets", headers=server.auth("agent2"))
        assert ticket.status_code == 429

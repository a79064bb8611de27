"""Operations on a live server: metrics (the index's lag among them), JSON logs with request
ids, readiness, admission control under overload, and a SIGTERM that drains the ledger."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from audit.query import LedgerQuery, LedgerReader
from audit.record import LedgerRecord
from audit.segments import SegmentLog
from audit.verify import verify_ledger
from audit.writer import LedgerWriter, utc_now
from tests.support.live_server import API_KEYS, KEYS, ROOT, LiveServer, free_port

BODY = {"ruleset": "retention-desk", "customer_id": "c-1", "agent_id": "agent-7"}


def samples(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}"] = sample.value
    return out


def test_metrics_count_decisions_and_read_the_ledger(
    client: httpx.Client, server: LiveServer
) -> None:
    before = samples(client.get("/metrics").text)
    for _ in range(5):
        assert (
            client.post("/v1/decisions", json=BODY, headers=server.auth("agent")).status_code == 200
        )
    client.post("/v1/decisions", json={**BODY, "ruleset": "nope"}, headers=server.auth("agent"))
    after = samples(client.get("/metrics").text)
    key = next(k for k in after if k.startswith("frontline_decision_seconds_count{"))
    assert "ruleset=retention-desk" in key
    assert after[key] - before.get(key, 0) == 5
    assert after["frontline_problems_total{status=404}"] >= 1
    assert after["frontline_ledger_records{instance=local}"] >= 5
    assert after["frontline_context_lookups_total{result=miss}"] >= 5
    assert "frontline_requests_in_flight{instance=local}" in after
    assert after["frontline_ledger_index_lag_records{instance=local}"] >= 0
    assert after["frontline_ledger_index_lag_seconds{instance=local}"] >= 0
    caught_up = wait_for_index(client)
    assert caught_up["frontline_ledger_index_lag_records{instance=local}"] == 0
    assert caught_up["frontline_ledger_index_lag_seconds{instance=local}"] == 0


def wait_for_index(client: httpx.Client, timeout: float = 10.0) -> dict[str, float]:
    """The metrics once the index has caught up with the log (or after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        found = samples(client.get("/metrics").text)
        lag = found["frontline_ledger_index_lag_records{instance=local}"]
        if lag == 0 or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_with_two_workers_every_scrape_is_the_same_view_of_both(tmp_path: Path) -> None:
    """Whichever worker answers ``/metrics``, it counts every worker's decisions, and lists
    every worker's live figures by instance."""
    decisions = 30
    with LiveServer(tmp_path / "d", workers=2) as server:
        served = set()
        for k in range(decisions):  # new connections: spread over both workers
            with httpx.Client(base_url=server.url, timeout=30) as fresh:
                answer = fresh.post(
                    "/v1/decisions",
                    json={**BODY, "customer_id": f"c-{k}"},
                    headers=server.auth("agent"),
                )
                assert answer.status_code == 200, answer.text
                served.add(answer.json()["receipt"]["instance"])
        assert served == {"local-0", "local-1"}  # both workers decided
        time.sleep(1.5)  # each worker has written its live figures since
        scrapes = []
        for _ in range(8):
            with httpx.Client(base_url=server.url, timeout=30) as fresh:
                scrapes.append(samples(fresh.get("/metrics").text))
    key = "frontline_decision_seconds_count{revision=1,ruleset=retention-desk}"
    assert [found[key] for found in scrapes] == [decisions] * len(scrapes)
    lookups = "frontline_context_lookups_total{result=miss}"
    assert [found[lookups] for found in scrapes] == [decisions] * len(scrapes)
    for found in scrapes:
        records = {k: v for k, v in found.items() if k.startswith("frontline_ledger_records{")}
        assert set(records) == {
            "frontline_ledger_records{instance=local-0}",
            "frontline_ledger_records{instance=local-1}",
        }
        assert sum(records.values()) >= decisions
        assert "frontline_requests_in_flight{instance=local-0}" in found
        assert "frontline_requests_in_flight{instance=local-1}" in found
        assert "frontline_alerts_raised_total{instance=local-1}" in found


def test_the_index_lag_is_a_metric_and_queries_see_what_the_index_has_not_reached(
    tmp_path: Path,
) -> None:
    """With the indexer process stopped, the lag metrics count the decisions it has not
    indexed and their age, and queries still find them; resumed, it catches up."""
    with LiveServer(tmp_path / "d") as server, httpx.Client(base_url=server.url) as client:
        assert wait_for_index(client)["frontline_ledger_index_lag_records{instance=local}"] == 0
        (indexer,) = server.indexer_pids()
        os.kill(indexer, signal.SIGSTOP)
        try:
            ids = [
                client.post(
                    "/v1/decisions",
                    json={**BODY, "customer_id": "c-lag"},
                    headers=server.auth("agent"),
                ).json()["decision_id"]
                for _ in range(7)
            ]
            time.sleep(0.5)
            behind = samples(client.get("/metrics").text)
            # seven decisions, and the tree heads signed since the indexer stopped
            assert behind["frontline_ledger_index_lag_records{instance=local}"] >= 7
            assert behind["frontline_ledger_index_lag_seconds{instance=local}"] >= 0.5
            page = client.get(
                "/v1/audit/decisions",
                params={"customer_id": "c-lag"},
                headers=server.auth("auditor"),
            ).json()
            assert [r["id"] for r in page["records"]] == ids[::-1]
            report = client.get("/v1/audit/verify", headers=server.auth("auditor")).json()
            (chain,) = report["instances"].values()
            assert report["ok"] and chain["index"]["ok"] is True
            assert chain["index"]["indexed"] <= chain["records"] - 7
        finally:
            os.kill(indexer, signal.SIGCONT)
        caught_up = wait_for_index(client)
        assert caught_up["frontline_ledger_index_lag_records{instance=local}"] == 0
        assert caught_up["frontline_ledger_index_lag_seconds{instance=local}"] == 0


def test_logs_are_json_lines_carrying_the_request_id(
    client: httpx.Client, server: LiveServer
) -> None:
    r = client.post(
        "/v1/decisions",
        json={**BODY, "ruleset": "no-such-ruleset"},
        headers={**server.auth("agent"), "X-Request-ID": "req-abc-123"},
    )
    assert r.status_code == 404
    deploy = client.post(
        "/v1/rulesets/retention-desk/activate",
        json={"revision": 1},
        headers={**server.auth("author"), "X-Request-ID": "req-deploy-9"},
    )
    assert deploy.status_code == 200
    time.sleep(0.2)
    lines = [json.loads(x) for x in server.output().splitlines() if x.startswith("{")]
    changed = [x for x in lines if x.get("event") == "ruleset changed"]
    assert changed and changed[-1]["request_id"] == "req-deploy-9"
    assert changed[-1]["actor"] == "ann" and changed[-1]["action"] in ("activate", "rollback")
    assert all("timestamp" in x and "level" in x for x in lines)


def access_lines(server: LiveServer) -> list[dict[str, object]]:
    time.sleep(0.2)  # written as each answer goes; read once the server has had a moment
    lines = [json.loads(x) for x in server.output().splitlines() if x.startswith("{")]
    return [x for x in lines if x.get("event") == "request"]


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status"),
    [
        pytest.param("POST", "/v1/decisions", "agent", BODY, 200, id="decision-fast-path"),
        pytest.param("POST", "/v1/decisions", "author", BODY, 403, id="decision-wrong-role"),
        pytest.param("POST", "/v1/decisions", None, BODY, 401, id="decision-no-key"),
        pytest.param(
            "POST",
            "/v1/decisions",
            "agent",
            {**BODY, "ruleset": "nope"},
            404,
            id="decision-error-on-the-fast-path",
        ),
        pytest.param("GET", "/v1/rulesets", "author", None, 200, id="litestar-route"),
        pytest.param("GET", "/no/such/page", None, None, 404, id="no-route"),
        pytest.param("GET", "/healthz", None, None, 200, id="health"),
        pytest.param("GET", "/desktop", None, None, 200, id="page"),
    ],
)
@pytest.mark.parametrize(
    "sent",
    [
        pytest.param("req-{n}:b_c.9", id="sane-id-echoed"),
        pytest.param("has spaces and <angle>", id="insane-id-replaced"),
        pytest.param("x" * 129, id="too-long-id-replaced"),
        pytest.param(None, id="no-id"),
    ],
)
def test_every_answer_carries_its_request_id_and_leaves_one_access_line(
    client: httpx.Client,
    server: LiveServer,
    method: str,
    path: str,
    headers: str | None,
    body: dict[str, str] | None,
    status: int,
    sent: str | None,
) -> None:
    sending = {**(server.auth(headers) if headers else {})}
    sane = sent is not None and sent.startswith("req-")
    if sent is not None:
        sent = sent.format(n=time.time_ns())  # its own, among the module's requests
        sending["X-Request-ID"] = sent
    answer = client.request(method, path, json=body, headers=sending)
    assert answer.status_code == status, answer.text
    request_id = answer.headers["x-request-id"]
    if sane:
        assert request_id == sent
    else:
        assert len(request_id) == 24 and int(request_id, 16) >= 0  # a new one
    (line,) = [x for x in access_lines(server) if x["request_id"] == request_id]
    assert line["method"] == method and line["path"] == path and line["status"] == status
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["level"] == "info" and line["logger"] == "frontline.access"
    assert str(line["timestamp"]).endswith("Z")


def test_the_access_line_and_the_requests_own_lines_share_its_id_and_hold_no_secret(
    client: httpx.Client, server: LiveServer
) -> None:
    deploy = client.post(
        "/v1/rulesets/retention-desk/activate",
        json={"revision": 1},
        headers=server.auth("author"),
    )
    assert deploy.status_code == 200
    request_id = deploy.headers["x-request-id"]
    time.sleep(0.2)
    lines = [json.loads(x) for x in server.output().splitlines() if x.startswith("{")]
    mine = [x["event"] for x in lines if x.get("request_id") == request_id]
    assert mine == ["ruleset changed", "request"]
    # A key in a URL (as old desktops open their alert stream) never reaches the log.
    secret = KEYS["agent"][1]
    refused = client.get(f"/v1/agents/agent-9/alerts?access_token={secret}")
    assert refused.status_code == 403
    (line,) = [
        x for x in access_lines(server) if x["request_id"] == refused.headers["x-request-id"]
    ]
    assert line["path"] == "/v1/agents/agent-9/alerts"
    assert secret not in server.output()


def test_a_websocket_gets_its_request_id_and_an_access_line(server: LiveServer) -> None:
    """Accepted, its opening answer carries the id (its line is written when it closes);
    refused, its line says 403 at once."""
    url = server.url.replace("http", "ws")
    with connect(
        url + "/v1/agents/agent-7/alerts",
        additional_headers={**server.auth("agent"), "X-Request-ID": "ws-1"},
    ) as socket:
        assert socket.response.headers["x-request-id"] == "ws-1"
    with pytest.raises(InvalidStatus):  # another agent's stream
        connect(
            url + "/v1/agents/agent-9/alerts",
            additional_headers={**server.auth("agent"), "X-Request-ID": "ws-2"},
        )
    (line,) = [x for x in access_lines(server) if x["request_id"] == "ws-2"]
    assert line["method"] == "GET" and line["status"] == 403
    assert line["path"] == "/v1/agents/agent-9/alerts"


def test_readiness_and_health(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_overload_is_answered_503_quickly_and_the_server_recovers(tmp_path: Path) -> None:
    """With room for 2 requests in flight, a burst of 40 concurrent slow requests (large
    deploys) gets quick 503s with Retry-After; afterwards requests succeed again."""
    document = Path(__file__).resolve().parents[2] / "rulesets" / "billing-disputes.yaml"
    text = document.read_text(encoding="utf-8")
    with LiveServer(tmp_path / "d", env={"FRONTLINE_MAX_CONCURRENCY": "2"}) as server:
        statuses: list[tuple[int, float, str | None]] = []
        lock = threading.Lock()

        def deploy(n: int) -> None:
            started = time.monotonic()
            r = httpx.post(
                server.url + "/v1/rulesets",
                content=text.replace("ruleset: billing-disputes", f"ruleset: bd-{n}"),
                headers={**server.auth("author"), "content-type": "application/yaml"},
                timeout=60,
            )
            with lock:
                statuses.append(
                    (r.status_code, time.monotonic() - started, r.headers.get("retry-after"))
                )

        threads = [threading.Thread(target=deploy, args=(n,)) for n in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        refused = [s for s in statuses if s[0] == 503]
        assert refused, statuses
        assert all(retry == "1" for _, _, retry in refused)
        assert max(seconds for _, seconds, _ in refused) < 2.0
        assert {s[0] for s in statuses} <= {201, 503}
        again = httpx.post(server.url + "/v1/decisions", json=BODY, headers=server.auth("agent"))
        assert again.status_code == 200
        metrics = samples(httpx.get(server.url + "/metrics").text)
        assert metrics["frontline_requests_refused{instance=local}"] == len(refused)


def test_alert_streams_held_open_do_not_refuse_other_decisions(tmp_path: Path) -> None:
    """One agent key holding more alert streams open than the cap on requests in flight:
    decisions are still answered, and /metrics counts no stream in flight."""
    env = {"FRONTLINE_MAX_CONCURRENCY": "3", "FRONTLINE_STREAMS_PER_AGENT": "10"}
    with LiveServer(tmp_path / "d", env=env) as server:
        agent = KEYS["agent"][0]
        streams = [
            httpx.stream(
                "GET",
                f"{server.url}/v1/agents/{agent}/alerts",
                headers={**server.auth("agent"), "Accept": "text/event-stream"},
                timeout=30,
            )
            for _ in range(6)
        ]
        opened = [s.__enter__() for s in streams]
        try:
            assert [r.status_code for r in opened] == [200] * 6
            answers = [
                httpx.post(server.url + "/v1/decisions", json=BODY, headers=server.auth("agent"))
                for _ in range(5)
            ]
            assert [a.status_code for a in answers] == [200] * 5
            metrics = samples(httpx.get(server.url + "/metrics").text)
            assert metrics["frontline_requests_in_flight{instance=local}"] == 0
            assert metrics["frontline_requests_refused{instance=local}"] == 0
        finally:
            for s in streams:
                s.__exit__(None, None, None)


def test_sigterm_drains_every_answered_decision_into_the_ledger(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "d").start()
    answered: list[str] = []
    stop = threading.Event()

    def agent(n: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            while not stop.is_set():
                try:
                    r = c.post(
                        "/v1/decisions",
                        json={**BODY, "customer_id": f"c-{n}"},
                        headers=server.auth("agent"),
                    )
                except httpx.TransportError:
                    return
                if r.status_code == 200:
                    answered.append(r.json()["decision_id"])

    threads = [threading.Thread(target=agent, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(30)
    stop.set()
    for t in threads:
        t.join()
    # uvicorn shuts down cleanly, then re-raises the signal so the exit status says SIGTERM.
    assert code in (0, -signal.SIGTERM), server.output()
    assert '"event": "frontline stopped"' in server.output()
    assert len(answered) > 20
    reader = LedgerReader(server.ledger_dir)
    try:
        stored = {r.id for r in reader.iterate(LedgerQuery(kind="decision"))}
    finally:
        reader.close()
    assert set(answered) <= stored
    report = verify_ledger(server.ledger_dir)
    assert report.ok, report
    # The indexer indexed everything written before it stopped.
    assert [(r.indexed, r.index_ok) for r in report.instances.values()] == [(report.records, True)]


def clear_of_a_window_edge() -> None:
    """Budgets are per clock minute: start well inside one, so the test's requests share it."""
    if time.time() % 60 > 55:
        time.sleep(60 - time.time() % 60 + 0.5)


def test_each_key_has_its_own_budget_and_gets_429_with_retry_after(tmp_path: Path) -> None:
    with LiveServer(tmp_path / "d", env={"FRONTLINE_RATE_LIMIT": "5"}) as server:
        clear_of_a_window_edge()
        seen = []
        for _ in range(7):
            r = httpx.post(server.url + "/v1/decisions", json=BODY, headers=server.auth("agent"))
            seen.append(r.status_code)
        assert seen[:5] == [200] * 5 and seen[5:] == [429, 429], seen
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert r.headers["content-type"].startswith("application/problem+json")
        # the same key written with more spaces is the same principal, with the same budget
        spaced = {"Authorization": f"Bearer   {KEYS['agent'][1]}"}
        again = httpx.post(server.url + "/v1/decisions", json=BODY, headers=spaced)
        assert again.status_code == 429
        # wrong keys spend their address's budget: guessing is throttled too
        guesses = [
            httpx.post(
                server.url + "/v1/decisions", json=BODY, headers={"Authorization": f"Bearer g{k}"}
            ).status_code
            for k in range(7)
        ]
        assert guesses == [401] * 5 + [429, 429], guesses
        # another key still has its budget; health is never limited
        other = httpx.get(server.url + "/v1/rulesets", headers=server.auth("author"))
        assert other.status_code == 200
        assert all(httpx.get(server.url + "/healthz").status_code == 200 for _ in range(10))
        # A WebSocket spends the same budget: the agent's is used up, so its alert stream is
        # refused before it opens, while another agent's (with budget left) opens.
        base = server.url.replace("http://", "ws://")
        agent, key = KEYS["agent"]
        with pytest.raises(InvalidStatus) as refused:
            connect(f"{base}/v1/agents/{agent}/alerts?access_token={key}", open_timeout=5)
        assert refused.value.response.status_code == 403  # closed before it was accepted
        other_agent, other_key = KEYS["agent2"]
        connect(
            f"{base}/v1/agents/{other_agent}/alerts?access_token={other_key}", open_timeout=5
        ).close()


def test_with_redis_instances_share_each_keys_budget(tmp_path: Path) -> None:
    """Two servers on one Redis: a key's budget is spent across both."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    client.ping()  # Redis must answer: this test fails rather than skips without it
    for key in client.scan_iter("frontline:rate:*"):
        client.delete(key)
    env = {"FRONTLINE_RATE_LIMIT": "6", "REDIS_URL": "redis://127.0.0.1:6379/0"}
    with (
        LiveServer(tmp_path / "a", env=env) as a,
        LiveServer(tmp_path / "b", env=env) as b,
    ):
        clear_of_a_window_edge()
        statuses = [
            httpx.post(s.url + "/v1/decisions", json=BODY, headers=s.auth("agent")).status_code
            for s in (a, b) * 4
        ]
    assert statuses[:6] == [200] * 6 and statuses[6:] == [429, 429], statuses


def test_retention_runs_in_the_server_and_the_chain_still_verifies(tmp_path: Path) -> None:
    """Segments whose records are older than FRONTLINE_RETENTION are removed at startup,
    behind a checkpoint; the segment holding a recent record stays."""
    data = tmp_path / "d"
    # One segment per batch: 30 old records, then a recent one.
    store = SegmentLog(data / "ledger", "local", segment_bytes=1)
    stamps = iter(["2020-01-01T00:00:00.000000Z"] * 30)
    old = LedgerWriter(store, clock=lambda: next(stamps, None) or utc_now())
    for k in range(30):
        old.append_blocking(LedgerRecord(id=f"old-{k}", kind="decision", customer_id="c-1"))
    old.append_blocking(LedgerRecord(id="recent", kind="decision", customer_id="c-2"))
    old.close()
    store.close()
    assert len(store.segments()) == 31
    with LiveServer(data, env={"FRONTLINE_RETENTION": "30d"}) as server:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            page = httpx.get(
                server.url + "/v1/audit/decisions",
                params={"customer_id": "c-1"},
                headers=server.auth("auditor"),
            ).json()
            checkpoints = httpx.get(
                server.url + "/v1/audit/decisions",
                params={"kind": "checkpoint"},
                headers=server.auth("auditor"),
            ).json()["records"]
            if not page["records"] and checkpoints:
                break
            time.sleep(0.2)
        assert page["records"] == []
        report = httpx.get(server.url + "/v1/audit/verify", headers=server.auth("auditor")).json()
        assert report["ok"] is True, json.dumps(report)
        assert report["instances"]["local"]["index"]["ok"] is True, report
        assert checkpoints[0]["data"]["deleted_through"] == 30
        assert checkpoints[0]["data"]["segments"] == 30
        kept = httpx.get(
            server.url + "/v1/audit/decisions",
            params={"customer_id": "c-2"},
            headers=server.auth("auditor"),
        ).json()["records"]
        assert [r["id"] for r in kept] == ["recent"]
    assert store.segments()[0] == 31  # segments 1 to 30 are gone


def test_a_second_server_on_a_data_directory_or_a_port_in_use_exits_at_once(
    server: LiveServer, tmp_path: Path
) -> None:
    def second(data_dir: Path, port: int) -> tuple[int, str, float]:
        began = time.monotonic()
        command = ["serve", "--data-dir", str(data_dir), "--port", str(port)]
        done = subprocess.run(
            [sys.executable, "-m", "server.cli", *command],
            check=False,
            cwd=ROOT,
            env={**os.environ, "FRONTLINE_API_KEYS": API_KEYS},
            capture_output=True,
            text=True,
            timeout=30,
        )
        return done.returncode, done.stdout + done.stderr, time.monotonic() - began

    code, output, took = second(server.data_dir, free_port())
    assert code == 1 and took < 10, output
    assert output.strip().splitlines() == [
        f"frontline: another Frontline server (pid {server.process.pid}) is using the data "
        f"directory {server.data_dir}; stop it, or give this one its own --data-dir"
    ]
    code, output, _ = second(tmp_path / "elsewhere", server.port)
    assert code == 1 and "cannot listen on 127.0.0.1" in output, output
    assert "frontline ready" not in output and "Traceback" not in output
    # The first server is untouched.
    assert httpx.get(server.url + "/readyz").status_code == 200

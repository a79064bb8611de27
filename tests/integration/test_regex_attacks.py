"""Patterns that stalled a backtracking server for seconds, deployed and fed hostile values
through the API: the deploy's own tests pass at once, every decision answers, and /healthz
keeps answering while they run."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import httpx

from tests.support.live_server import LiveServer

# (a?){27}a{27} on 27 characters stalled the whole server for 6 s, \s+$ on 30 KB for 3.4 s,
# and a deploy whose tests used them for 10.7 s.
DOCUMENT = r"""
ruleset: regex-attack
context:
  interaction.note: string
eligibility:
  - id: exponential
    when: matches(interaction.note, "(a?){27}a{27}")
    offer: a
  - id: trailing-space
    when: matches(interaction.note, "\\s+$")
    offer: b
  - id: digits-then-x
    when: matches(interaction.note, "\\d+x")
    offer: c
tests:
  - name: twenty-seven a
    context: {interaction: {note: "aaaaaaaaaaaaaaaaaaaaaaaaaaa"}}
    expect: {eligible: [exponential]}
  - name: spaces then x
    context: {interaction: {note: "SPACES"}}
    expect: {eligible: []}
  - name: digits then y
    context: {interaction: {note: "DIGITS"}}
    expect: {eligible: []}
""".replace("SPACES", " " * 9_000 + "x").replace("DIGITS", "1" * 9_000 + "y")

HOSTILE_NOTES = [
    ("a" * 27, ["exponential"]),
    (" " * 9_999 + "x", []),
    ("1" * 9_999 + "y", []),
    (" " * 9_999, ["trailing-space"]),
    (" " * 30_000, []),  # longer than matches() reads: unknown, so nothing fires
]


def test_hostile_patterns_do_not_stall_the_server(tmp_path: Path) -> None:
    with LiveServer(tmp_path / "data") as server, httpx.Client(base_url=server.url) as c:
        author = {**server.auth("author"), "content-type": "application/yaml"}
        started = time.perf_counter()
        deployed = c.post("/v1/rulesets", content=DOCUMENT, headers=author, timeout=30)
        assert deployed.status_code == 201, deployed.text
        assert deployed.json()["tests"] == {"passed": 3, "failed": 0}
        assert time.perf_counter() - started < 2.0

        latencies: list[float] = []
        stop = threading.Event()

        def probe() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as p:
                while not stop.is_set():
                    begun = time.perf_counter()
                    assert p.get("/healthz").status_code == 200
                    latencies.append(time.perf_counter() - begun)
                    time.sleep(0.005)

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            begun, rounds = time.monotonic(), 0
            while rounds < 10 or time.monotonic() - begun < 1.0:  # a second of attacks at least
                rounds += 1
                for note, fired in HOSTILE_NOTES:
                    answer = c.post(
                        "/v1/decisions",
                        json={
                            "ruleset": "regex-attack",
                            "customer_id": "c-1",
                            "agent_id": "agent-7",
                            "context": {"interaction": {"note": note}},
                        },
                        headers=server.auth("agent"),
                        timeout=30,
                    )
                    assert answer.status_code == 200, answer.text
                    eligible = sorted(e["rule"] for e in answer.json()["eligible"])
                    assert eligible == fired, note[:10]
        finally:
            stop.set()
            prober.join()
        assert len(latencies) >= 10
        # Under a backtracking engine the probe waited seconds; here it answers as usual.
        assert statistics.median(latencies) <= 0.050, latencies
        assert max(latencies) < 1.0, max(latencies)

"""Where a decision request's microseconds go: each stage of ``POST /v1/decisions`` timed on
its own, next to the whole request's CPU through the app and the bare endpoint's, in-process
(no sockets, no HTTP server), so that the stages add up to the measured cost.

Stages are timed one call at a time (median of many), on the same objects the app serves
with; the totals are CPU per request (every thread of this process: the event loop and the
ledger writer) with 32 requests in flight, as the server serves them (the decision fast path
in front of Litestar), through the Litestar route alone, and for the bare endpoint. What the
stages do not explain (reading the request and writing the answer, scheduling, the writer
thread's hand-offs) is reported as the remainder. The figures land in the benchmark JSON's
``extra_info`` under the kind ``http-budget`` for tests/bench/report.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from audit.record import Actor
from audit.recording import decision_record
from server.app import create_app
from server.fastpath import Answer, with_fast_path
from server.http import bearer
from server.ids import new_id
from server.keys import KeyRing
from server.logs import bind_request, log_access
from server.ratelimit import Limits
from server.run import tune_gc
from server.schemas import DecisionRequest
from server.service.decisions import evaluation_time
from server.service.frontline import Frontline
from server.service.inputs import check_nesting, context_view
from server.settings import Settings
from tests.bench.bare_app import create_app as create_bare_app
from tests.bench.test_http_bench import bodies
from tests.support.asgi import Request, Running, cpu_per_request
from tests.support.live_server import API_KEYS, KEYS

pytestmark = pytest.mark.bench

ROUNDS = 3_000
IN_FLIGHT = 32
REQUESTS = 20_000


@pytest.fixture(scope="module", autouse=True)
def _only_under_make_bench(request: pytest.FixtureRequest) -> None:
    if not request.config.getoption("benchmark_only"):
        pytest.skip("benchmarks run under `make bench` (pytest tests/bench --benchmark-only)")


def median_us(fn: Callable[[int], object], rounds: int = ROUNDS) -> float:
    clock = time.perf_counter_ns
    samples = []
    for k in range(rounds):
        t0 = clock()
        fn(k)
        samples.append(clock() - t0)
    return statistics.median(samples) / 1000


async def median_us_async(fn: Callable[[int], Awaitable[object]], rounds: int = ROUNDS) -> float:
    clock = time.perf_counter_ns
    samples = []
    for k in range(rounds):
        t0 = clock()
        await fn(k)
        samples.append(clock() - t0)
    return statistics.median(samples) / 1000


def settings_for(data_dir: Path) -> Settings:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FRONTLINE_API_KEYS", API_KEYS)
        env.setenv("FRONTLINE_MASKING_KEY", "test-masking-key-0123456789")
        env.setenv("FRONTLINE_RATE_LIMIT", "10000000")
        env.setenv("FRONTLINE_LOG_LEVEL", "info")
        # Requests are all in this process's event loop at once: measure their cost, do not
        # refuse them for waiting (admission is measured by `make chaos`).
        env.setenv("FRONTLINE_ADMISSION_DELAY_MS", "600000")
        return dataclasses.replace(Settings.from_env(), data_dir=data_dir)


async def append_path_us(frontline: Frontline, records: list[Any]) -> float:
    """CPU per record of ``LedgerWriter.append`` from the event loop, 32 at a time, on the
    app's own ledger: the hand-off to the writer thread, sealing, the write and sync calls,
    and resuming the caller."""
    gate = asyncio.Semaphore(IN_FLIGHT)
    count = 10_000

    async def one(k: int) -> None:
        async with gate:
            await frontline.ledger.append(
                msgspec.structs.replace(records[k % len(records)], id=f"budget-{k}")
            )

    started = time.process_time()
    await asyncio.gather(*(one(k) for k in range(count)))
    return (time.process_time() - started) / count * 1e6


def front_door(started: float) -> None:
    """What the outermost layer adds to every request: its id chosen and bound, the answer's
    ``X-Request-ID`` ready, and the access line written (to this process's stderr)."""
    request_id = bind_request("req-1")
    Answer(_nowhere, request_id.encode())
    log_access("POST", "/v1/decisions", 200, started, request_id)


async def _nowhere(message: Any) -> None:
    """A ``send`` that sends nothing."""


async def stages(app: Any, loads: list[bytes]) -> dict[str, float]:
    """Each stage of a decision on its own, µs (median)."""
    started = time.perf_counter()
    frontline: Frontline = app.state.frontline
    keyring: KeyRing = app.state.keyring
    limits = Limits(10_000_000)
    token = bearer(f"Bearer {KEYS['agent'][1]}")
    assert token is not None
    requests = [msgspec.json.decode(b, type=DecisionRequest) for b in loads]
    n = len(requests)
    compiled, _ = frontline.registry.route("retention-desk", "c-1")
    now = evaluation_time()
    stores = frontline.decisions
    contexts = [
        context_view(await frontline.contexts.get(r.customer_id), r.context, now) for r in requests
    ]
    needed = compiled.counters_needed
    counters = [
        await stores.counters.counts(r.customer_id, needed, now) if needed else None
        for r in requests
    ]

    def evaluate(k: int) -> Any:
        c = contexts[k % n]
        return compiled.evaluate(c.values, now=now, as_of=c.as_of, counters=counters[k % n])

    decisions = [evaluate(k) for k in range(n)]
    actor = Actor(principal=KEYS["agent"][0], role="agent")

    def record(k: int) -> Any:
        c, r = contexts[k % n], requests[k % n]
        return decision_record(
            evaluate(k),
            record_id="01M90MP9KV9J623KNZKTSSHXMK",
            context=c.values,
            inputs={"context": r.context},
            sources=c.sources,
            as_of=c.as_of,
            actor=actor,
            customer_id=r.customer_id,
            agent_id=r.agent_id,
            latency_us=100,
            masker=stores.masker,
        )

    records = [record(k) for k in range(n)]

    def glue(request: DecisionRequest) -> None:
        new_id()
        evaluation_time()
        check_nesting("context", request.context)
        check_nesting("answers", request.answers)

    async def context_of(k: int) -> Any:
        request = requests[k % n]
        return context_view(await frontline.contexts.get(request.customer_id), request.context, now)

    evaluation = median_us(evaluate)
    to_dict = median_us(lambda k: evaluate(k).to_dict()) - evaluation
    building = median_us(record) - evaluation - to_dict  # decision_record renders to_dict
    metrics = frontline.metrics
    return {
        "append_path": await append_path_us(frontline, records),
        "parse_and_validate": median_us(
            lambda k: msgspec.json.decode(loads[k % n], type=DecisionRequest)
        ),
        "authentication": median_us(lambda k: keyring.identify(token)),
        "rate_limit": await median_us_async(lambda k: limits.spend("key:agent:a", time.time())),
        "context": await median_us_async(context_of),
        "counters": (
            await median_us_async(
                lambda k: stores.counters.counts(requests[k % n].customer_id, needed, now)
            )
            if needed
            else 0.0
        ),
        "evaluation": evaluation,
        "decision_to_dict": to_dict,
        "record": building,
        "ids_clock_and_checks": median_us(lambda k: glue(requests[k % n])),
        "metrics": median_us(lambda k: metrics.decided(compiled.name, compiled.revision, 1e-4))
        if metrics is not None
        else 0.0,
        "response_encoding": median_us(
            lambda k: msgspec.json.encode({"decision_id": "x", **decisions[k % n].to_dict()})
        ),
        "request_id_and_access_line": median_us(lambda k: front_door(started)),
    }


def test_where_the_microseconds_of_a_decision_request_go(benchmark: Any, tmp_path: Path) -> None:
    loads = bodies()
    auth = [(b"authorization", f"Bearer {KEYS['agent'][1]}".encode())]
    json_type = [(b"content-type", b"application/json")]
    requests: list[Request] = [("POST", "/v1/decisions", b, [*json_type, *auth]) for b in loads]
    bare_requests: list[Request] = [("POST", "/v1/decisions", b, json_type) for b in loads]

    async def measure() -> dict[str, Any]:
        app = create_app(settings_for(tmp_path / "data"))
        served = with_fast_path(app)  # what the server runs (server/run.py)
        async with Running(app):
            tune_gc()  # as the server does once started
            await cpu_per_request(served, requests, concurrency=IN_FLIGHT, count=3_000)  # warm
            cpu, rate, statuses = await cpu_per_request(
                served, requests, concurrency=IN_FLIGHT, count=REQUESTS
            )
            route_cpu, _, route_statuses = await cpu_per_request(
                app, requests, concurrency=IN_FLIGHT, count=REQUESTS
            )
            parts = await stages(app, loads)
        bare = create_bare_app()
        async with Running(bare):
            tune_gc()
            await cpu_per_request(bare, bare_requests, concurrency=IN_FLIGHT, count=3_000)
            bare_cpu, bare_rate, bare_statuses = await cpu_per_request(
                bare, bare_requests, concurrency=IN_FLIGHT, count=REQUESTS
            )
        assert statuses == route_statuses == bare_statuses == {200: REQUESTS}
        return {
            "stages_us": parts,
            "request_cpu_us": cpu,
            "requests_per_s": rate,
            "route_cpu_us": route_cpu,
            "bare_cpu_us": bare_cpu,
            "bare_requests_per_s": bare_rate,
            # What the stages leave unexplained: reading the request and writing the answer,
            # the service's glue, scheduling, and the writer thread's hand-offs.
            "remainder_us": cpu - sum(parts.values()),
        }

    found = asyncio.run(measure())
    benchmark.extra_info.update(
        {
            "kind": "http-budget",
            "in_flight": IN_FLIGHT,
            "requests": REQUESTS,
            **found,
            "load_average": os.getloadavg(),
        }
    )
    print(
        f"\nrequest budget: {found['request_cpu_us']:.1f} µs CPU per decision request "
        f"({found['requests_per_s']:,.0f}/s in process; through the Litestar route "
        f"{found['route_cpu_us']:.1f}), bare {found['bare_cpu_us']:.1f} µs; "
        + ", ".join(f"{k} {v:.2f}" for k, v in found["stages_us"].items())
        + f"; remainder {found['remainder_us']:.1f} µs"
    )
    benchmark.group = "http"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)

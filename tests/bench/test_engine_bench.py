"""Evaluation speed of Frontline against durable_rules, rule-engine and zen-engine.

Run by ``make bench`` (``pytest tests/bench --benchmark-only``); skipped otherwise, and
``make test`` ignores tests/bench altogether. Every engine evaluates the same generated
workload (tests/bench/workload.py) on the same contexts, cycled so that consecutive calls see
different customers, and every timed call produces the full answer: the ids of the rules that
fired and the table's output. ``python -m tests.bench.report var/bench/engine.json`` turns the
results into docs/benchmarks.md.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import itertools
import os
import platform
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.bench.workload import (
    MODULES,
    SIZES,
    build,
    check_agreement,
    evaluator,
    frontline_compiled,
    frontline_text,
)

pytestmark = pytest.mark.bench

ENGINE_NAMES = ("frontline", "frontline-trace", "durable_rules", "rule-engine", "zen-engine")
# The distribution whose version the report prints beside each engine.
DISTRIBUTIONS = {
    "frontline": "frontline",
    "frontline-trace": "frontline",
    "durable_rules": "durable-rules",
    "rule-engine": "rule-engine",
    "zen-engine": "zen-engine",
}
# One second of measurement after up to one second of warm-up, and at least 30 rounds: the
# slowest case (rule-engine at 1,000 rules, ≈ 15 ms a call) still sees 30+ contexts, and the
# whole run stays within a few minutes on the 2-core machine.
SETTINGS = {"max_time": 1.0, "min_rounds": 30, "warmup": True, "warmup_iterations": 2_000}


@pytest.fixture(autouse=True)
def _only_under_make_bench(request: pytest.FixtureRequest) -> None:
    if not request.config.getoption("benchmark_only"):
        pytest.skip("benchmarks run under `make bench` (pytest tests/bench --benchmark-only)")
    # pytest-benchmark writes --benchmark-json at the end without creating its directory
    # (var/bench/ on a fresh clone).
    json_path = request.config.getoption("benchmark_json")
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _record(benchmark: Any, **info: Any) -> None:
    """Note what ran, where and how, in the JSON the report reads."""
    benchmark.extra_info.update(info)
    benchmark.extra_info.update(
        cpu_model=_cpu_model(),
        cpu_count=os.cpu_count(),
        loadavg_1m=round(os.getloadavg()[0], 2),
        python=platform.python_version(),
        command=shlex.join(getattr(sys, "orig_argv", sys.argv)),
    )


def _timed(benchmark: Any, call: Callable[[dict[str, Any]], Any], n: int) -> None:
    next_context = itertools.cycle(build(n).contexts).__next__
    benchmark(lambda: call(next_context()))


def _sized(group: str) -> list[Any]:
    return [
        pytest.param(n, marks=pytest.mark.benchmark(group=f"{group}-{n}", **SETTINGS), id=str(n))
        for n in SIZES
    ]


@pytest.mark.parametrize("n", _sized("eval"))
@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_evaluate(benchmark: Any, engine: str, n: int) -> None:
    """Time one evaluation of one context, fired rule ids and table output included."""
    if importlib.util.find_spec(MODULES[engine]) is None:
        pytest.skip(f"{engine} is not installed")
    run = evaluator(engine, n)
    check_agreement(build(n), {engine: run})  # time only an engine that answers correctly
    _record(benchmark, engine=engine, n=n, version=_version(DISTRIBUTIONS[engine]))
    _timed(benchmark, run, n)


@pytest.mark.parametrize("n", _sized("frontline-parts"))
@pytest.mark.parametrize("trace", [False, True], ids=["trace-off", "trace-on"])
def test_frontline_decision_json(benchmark: Any, trace: bool, n: int) -> None:
    """Time ``evaluate(...).to_dict()``: the whole decision JSON the service returns."""
    evaluate = frontline_compiled(n).evaluate
    engine = "frontline-json-trace" if trace else "frontline-json"
    _record(benchmark, engine=engine, n=n, version=_version("frontline"))
    _timed(benchmark, lambda context: evaluate(context, trace=trace).to_dict(), n)


@pytest.mark.benchmark(group="compile")
def test_compile_1000_rules(benchmark: Any) -> None:
    """Time ``compile_ruleset`` on the YAML text of the 1,000-rule document."""
    from engine import compile_ruleset

    text = frontline_text(build(1000))
    _record(benchmark, engine="frontline", n=1000, version=_version("frontline"))
    compiled = benchmark.pedantic(compile_ruleset, args=(text,), rounds=5, warmup_rounds=1)
    assert len(compiled.model.eligibility) == 1000

"""Every engine gives the oracle's answer on every context of the benchmark workload.

It uses the ``benchmark`` fixture (timing the whole cross-check once) only so that
``make bench``, which passes ``--benchmark-only``, runs it too; under plain pytest it is an
ordinary test.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.bench.workload import ENGINES, MODULES, SIZES, build, check_agreement, evaluator


def _available() -> list[str]:
    return [name for name in ENGINES if importlib.util.find_spec(MODULES[name]) is not None]


@pytest.mark.parametrize("n", SIZES)
def test_engines_agree(benchmark, n: int) -> None:
    """Frontline (trace off and on), durable_rules, rule-engine and zen-engine agree at n rules."""
    engines = {name: evaluator(name, n) for name in _available()}
    workload = build(n)
    benchmark.group = f"agreement-{n}"
    benchmark.extra_info.update(n=n, engines=sorted(engines), contexts=len(workload.contexts))
    fired = benchmark.pedantic(check_agreement, args=(workload, engines), rounds=1, iterations=1)
    benchmark.extra_info["rules_fired"] = fired
    assert fired > len(workload.contexts) // 2, "the workload should fire some rules"
    assert build.__wrapped__(n) == workload, "the same size must generate the same workload"

"""Write docs/benchmarks.md from a pytest-benchmark JSON file.

    python -m tests.bench.report var/bench/engine.json [--out docs/benchmarks.md]

Every number printed comes from the JSON (what ``make bench`` measured); the machine, the
versions and the command are those the benchmarks recorded in ``extra_info`` when they ran.
Anything below the line ``<!-- end of generated engine section -->`` in the existing file is
hand-written and kept as it is.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

MARKER = "<!-- end of generated engine section -->"
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"

SIZES = (10, 100, 1000)
FRONTLINE = "frontline"
TRACE = "frontline-trace"
PEERS = ("durable_rules", "rule-engine", "zen-engine")
ENGINES = (FRONTLINE, TRACE, *PEERS)
PARTS = ("frontline-json", "frontline-json-trace")
LATENCY_TARGETS_US = {10: 5.0, 100: 20.0, 1000: 50.0}
TRACE_TARGET = 3.0
COMPILE_TARGET_S = 1.0
PEER_TARGET = 10.0


class Results:
    """Median seconds by (engine, n), and the rest of what the JSON says, indexed."""

    def __init__(self, data: dict[str, Any], command: str = "") -> None:
        self.data = data
        self.command = command  # the command that runs this report
        self.evals: dict[tuple[str, int], dict[str, Any]] = {}
        self.compile: dict[str, Any] | None = None
        self.agreement: dict[int, dict[str, Any]] = {}
        for bench in data.get("benchmarks", []):
            info = bench.get("extra_info", {})
            group = bench.get("group") or ""
            if group.startswith(("eval-", "frontline-parts-")):
                self.evals[(info["engine"], int(info["n"]))] = bench
            elif group == "compile":
                self.compile = bench
            elif group.startswith("agreement-"):
                self.agreement[int(info["n"])] = bench

    def median(self, engine: str, n: int) -> float | None:
        bench = self.evals.get((engine, n))
        return None if bench is None else float(bench["stats"]["median"])

    def info(self, key: str) -> list[Any]:
        """The distinct values of ``extra_info[key]`` over all benchmarks, in first-seen order."""
        seen: dict[str, Any] = {}
        for bench in self.data.get("benchmarks", []):
            value = bench.get("extra_info", {}).get(key)
            if value is not None:
                seen.setdefault(json.dumps(value, sort_keys=True), value)
        return list(seen.values())

    def fastest_peer(self, n: int) -> tuple[str, float] | None:
        timed = [(p, m) for p in PEERS if (m := self.median(p, n)) is not None]
        return min(timed, key=lambda pm: pm[1]) if timed else None


# -- formatting ------------------------------------------------------------------------------


def us(seconds: float | None) -> str:
    """Microseconds with three significant figures (at least one decimal below 100 µs)."""
    if seconds is None:
        return "—"
    value = seconds * 1e6
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}×" if value >= 100 else f"{value:.1f}×" if value >= 10 else f"{value:.2f}×"


def table(header: list[str], rows: Iterable[list[str]], align: str = "") -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else "**PASS**" if ok else "**FAIL**"


def every_size(values: dict[int, float], ok: Callable[[float], bool]) -> str:
    """FAIL if a measured size misses; PASS if every size was measured and meets it."""
    if any(not ok(v) for v in values.values()):
        return verdict(False)
    missing = [f"{n:,}" for n in SIZES if n not in values]
    if missing:
        return f"not measured at N = {', '.join(missing)}"
    return verdict(True)


# -- sections --------------------------------------------------------------------------------


def header(results: Results) -> list[str]:
    data = results.data
    when = data.get("datetime")
    date = datetime.fromisoformat(when).strftime("%Y-%m-%d %H:%M UTC") if when else "unknown"
    machine = data.get("machine_info", {})
    cpu = results.info("cpu_model") or [machine.get("cpu", {}).get("brand_raw", "unknown")]
    cores = results.info("cpu_count") or [machine.get("cpu", {}).get("count", "?")]
    python = results.info("python") or [machine.get("python_version", "?")]
    versions = {
        info["engine"]: info.get("version")
        for info in (b.get("extra_info", {}) for b in data.get("benchmarks", []))
        if info.get("engine") in ENGINES
    }
    peers = ", ".join(f"{p} {versions.get(p) or '(not run)'}" for p in PEERS)
    loads = [x for x in results.info("loadavg_1m") if isinstance(x, int | float)]
    commands = results.info("command")
    commit = data.get("commit_info", {})
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python -m tests.bench.report` from the pytest-benchmark JSON that "
        "`make bench` writes; do not edit above the marker line. Hand-written sections go "
        "below it and are kept when the file is regenerated.",
        "",
        f"- **Date:** {date}"
        + (
            f" (commit `{commit['id'][:10]}`{', dirty tree' if commit.get('dirty') else ''})"
            if commit.get("id")
            else ""
        ),
        f"- **Machine:** {', '.join(map(str, cpu))}, {', '.join(map(str, cores))} cores, "
        f"{machine.get('system', '')} {machine.get('release', '')}".rstrip(),
        f"- **Python:** {', '.join(map(str, python))} ({machine.get('python_implementation', '')})",
        f"- **Frontline:** {versions.get(FRONTLINE) or '(not run)'}; **peers:** {peers}",
        f"- **pytest-benchmark:** {data.get('version', '?')}",
    ]
    if loads:
        lines.append(
            f"- **Load average (1 min) while measuring:** {min(loads):.2f}–{max(loads):.2f} "
            f"on {', '.join(map(str, cores))} cores (other work on the machine inflates medians)"
        )
    lines += ["", "Commands (`make bench` runs these two):", ""]
    for command in commands or ["(the benchmarks did not record their command)"]:
        lines += ["```", command, results.command, "```"]
    return lines


def workload_section(results: Results) -> list[str]:
    lines = [
        "",
        "## Workload",
        "",
        "`tests/bench/workload.py` generates, from a fixed seed, N eligibility rules (each a "
        'categorical test — `customer.segment == "s17"` over 50 segments, sometimes a short '
        "`in` list, or for one rule in ten `customer.tier in [...]` — and one or two numeric "
        "comparisons), a 100-row `first` decision table over `customer.region` and "
        "`interaction.amount`, and 200 customer contexts. The same logic is written for each "
        "engine; each timed call evaluates one context (cycling through the 200) and produces "
        "the ids of the rules that fired and the table's output:",
        "",
        "- **frontline**: `decision = compiled.evaluate(context)`, then `decision.eligible_rules` "
        "and `decision.tables`; **frontline-trace** the same with `trace=True`, which records "
        "every evaluated rule's result (rendering the whole decision as JSON is measured "
        "separately below, as no peer builds an equivalent document);",
        "- **durable_rules**: through `durable_rules_engine` directly: the context asserted "
        "as a fact on one session, the actions drained, the fact retracted (an event is "
        "consumed by the first rule it matches, so events cannot report every rule; one session "
        "stays clear of the 1,024-sessions-per-ruleset cap); each table row is a rule, and the "
        "lowest row that fired wins;",
        "- **rule-engine**: one `Rule` per rule and per row over the context flattened to "
        "`customer_segment`-style symbols (its fastest form); every rule is matched, rows until "
        "one holds;",
        "- **zen-engine**: one JDM graph (a collect table for the rules, a first-hit table for "
        "the rows), evaluated by `ZenEngine.evaluate` with a static loader "
        "(`ZenDecision.evaluate` builds a new Tokio runtime on every call, so it is not used).",
    ]
    agreed = sorted(results.agreement)
    missing = [n for n in SIZES if n not in results.agreement]
    if agreed:
        engines = {e for n in agreed for e in results.agreement[n]["extra_info"]["engines"]}
        lines += [
            "",
            f"In this run {', '.join(sorted(engines))} gave the same answers as a plain-Python "
            f"oracle on every context at N = {', '.join(f'{n:,}' for n in agreed)} "
            "(`tests/bench/test_workload_agrees.py`).",
        ]
    if missing:
        sizes = ", ".join(f"{n:,}" for n in missing)
        lines += [
            "",
            f"**No passing cross-check is recorded at N = {sizes}**: the engines' answers there "
            "were not all verified in this run.",
        ]
    return lines


def medians_section(results: Results) -> list[str]:
    rows = []
    for engine in ENGINES:
        if all(results.median(engine, n) is None for n in SIZES):
            continue
        rows.append([engine] + [us(results.median(engine, n)) for n in SIZES])
    lines = ["", "## Median µs per evaluation", ""]
    lines += table(["engine", *(f"N = {n:,}" for n in SIZES)], rows)
    speed = []
    for n in SIZES:
        mine = results.median(FRONTLINE, n)
        peer = results.fastest_peer(n)
        if mine is None or peer is None:
            speed.append([f"{n:,}", "—", "—", "—", "—"])
            continue
        speed.append(
            [
                f"{n:,}",
                us(mine),
                f"{peer[0]} {us(peer[1])}",
                ratio(mine / peer[1]),
                ratio(peer[1] / mine),
            ]
        )
    lines += ["", "Frontline against the fastest peer at each size:", ""]
    lines += table(
        ["N", "frontline µs", "fastest peer µs", "frontline ÷ peer", "peer ÷ frontline"], speed
    )
    trace = [
        [f"{n:,}", us(off), us(on), ratio(on / off) if on and off else "—"]
        for n in SIZES
        for off, on in [(results.median(FRONTLINE, n), results.median(TRACE, n))]
    ]
    lines += ["", "Trace on against trace off:", ""]
    lines += table(["N", "trace off µs", "trace on µs", "on ÷ off"], trace)
    return lines


def parts_section(results: Results) -> list[str]:
    if not any(results.median(p, n) is not None for p in PARTS for n in SIZES):
        return []
    rows = []
    for label, engine in (
        ("`evaluate(context)` + fired ids + table output (= frontline)", FRONTLINE),
        ("`evaluate(context).to_dict()`", "frontline-json"),
        ("`evaluate(context, trace=True)` + fired ids + table output (= frontline-trace)", TRACE),
        ("`evaluate(context, trace=True).to_dict()`", "frontline-json-trace"),
    ):
        rows.append([label] + [us(results.median(engine, n)) for n in SIZES])
    return [
        "",
        "## Where Frontline's time goes",
        "",
        "`evaluate` returns a `Decision` holding rule indices and values; `to_dict()` builds "
        "the decision JSON the API answers with (offers with their params and reasons, table "
        "outputs, missing and stale fields, and with `trace=True` every evaluated rule with the "
        "values it read). Medians in µs; informational, not a target:",
        "",
        *table(["call", *(f"N = {n:,}" for n in SIZES)], rows),
    ]


def compile_section(results: Results) -> list[str]:
    bench = results.compile
    if bench is None:
        return []
    stats = bench["stats"]
    return [
        "",
        "## Compiling",
        "",
        f"`compile_ruleset` on the YAML text of the 1,000-rule document: median "
        f"{stats['median']:.3f} s (min {stats['min']:.3f} s, max {stats['max']:.3f} s, "
        f"{stats['rounds']} rounds).",
    ]


def detail_section(results: Results) -> list[str]:
    rows = []
    for (engine, n), bench in sorted(results.evals.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        s = bench["stats"]
        rows.append(
            [
                engine,
                f"{n:,}",
                us(s["min"]),
                us(s["q1"]),
                us(s["median"]),
                us(s["q3"]),
                f"{s['rounds']:,}",
                f"{s['iterations']:,}",
            ]
        )
    if not rows:
        return []
    return [
        "",
        "## Spread",
        "",
        "µs per evaluation; a round times `iterations` consecutive calls (different contexts).",
        "",
        *table(["engine", "N", "min", "q1", "median", "q3", "rounds", "iterations"], rows),
    ]


def targets(results: Results) -> list[tuple[str, str, str]]:
    """(target, what was measured, PASS / FAIL / not measured) for each target of the issue."""
    out = []
    for n, limit in LATENCY_TARGETS_US.items():
        m = results.median(FRONTLINE, n)
        out.append(
            (
                f"Frontline median ≤ {limit:g} µs at {n:,} rules",
                "—" if m is None else f"{us(m)} µs",
                verdict(None if m is None else m * 1e6 <= limit),
            )
        )
    ratios = {
        n: on / off
        for n in SIZES
        if (off := results.median(FRONTLINE, n)) and (on := results.median(TRACE, n))
    }
    out.append(
        (
            f"trace on ≤ {TRACE_TARGET:g}× trace off, at every size",
            ", ".join(f"{ratio(r)} at {n:,}" for n, r in ratios.items()) or "—",
            every_size(ratios, lambda r: r <= TRACE_TARGET),
        )
    )
    c = results.compile
    out.append(
        (
            f"compiling 1,000 rules ≤ {COMPILE_TARGET_S:g} s (median)",
            "—" if c is None else f"{c['stats']['median']:.3f} s",
            verdict(None if c is None else c["stats"]["median"] <= COMPILE_TARGET_S),
        )
    )
    speedups: dict[int, float] = {}
    for n in SIZES:
        mine, peer = results.median(FRONTLINE, n), results.fastest_peer(n)
        if mine is not None and peer is not None:
            speedups[n] = peer[1] / mine
    out.append(
        (
            f"≥ {PEER_TARGET:g}× faster than the fastest peer, at every size",
            ", ".join(f"{ratio(s)} at {n:,}" for n, s in speedups.items()) or "—",
            every_size(speedups, lambda s: s >= PEER_TARGET),
        )
    )
    return out


def targets_section(results: Results) -> list[str]:
    rows = [list(row) for row in targets(results)]
    return ["", "## Targets", "", *table(["target", "measured", "result"], rows, "lll")]


HTTP_RATIO_TARGET = 0.60
HTTP_UNLOADED_P50_MS = 0.7
HTTP_SHARED_STACK_TARGET = 0.50  # Redis + PostgreSQL against the embedded stack, 1 worker
HTTP_HALF_P99_MS = 10.0


def _by_kind(results: Results, kind: str) -> list[dict[str, Any]]:
    return [
        b["extra_info"]
        for b in results.data.get("benchmarks", [])
        if b.get("extra_info", {}).get("kind") == kind
    ]


def _http_runs(results: Results, stack: str | None = None) -> list[dict[str, Any]]:
    """HTTP runs by worker count; of one stack (``embedded``, ``redis-pg``) when given."""
    runs = [
        r for r in _by_kind(results, "http") if stack is None or r.get("stack", "embedded") == stack
    ]
    return sorted(runs, key=lambda i: (i.get("stack", "embedded"), i["workers"]))


def http_targets(results: Results) -> list[tuple[str, str, str]]:
    runs = _http_runs(results, "embedded")
    if not runs:
        return []
    out = []
    for run in runs:
        out.append(
            (
                f"Frontline ≥ {HTTP_RATIO_TARGET:.0%} of the bare endpoint's requests/s, "
                f"{run['workers']} worker{'s' if run['workers'] > 1 else ''}",
                f"{run['frontline']['requests_per_s']:,.0f} / {run['bare']['requests_per_s']:,.0f}"
                f" req/s = {run['ratio']:.0%}",
                verdict(run["ratio"] >= HTTP_RATIO_TARGET),
            )
        )
    shared = next((r for r in _http_runs(results, "redis-pg") if r["workers"] == 1), None)
    alone = next((r for r in runs if r["workers"] == 1), None)
    if shared is not None and alone is not None:
        ratio = shared["frontline"]["requests_per_s"] / alone["frontline"]["requests_per_s"]
        out.append(
            (
                f"with Redis and PostgreSQL ≥ {HTTP_SHARED_STACK_TARGET:.0%} of the embedded "
                "stack's requests/s, 1 worker",
                f"{shared['frontline']['requests_per_s']:,.0f} / "
                f"{alone['frontline']['requests_per_s']:,.0f} req/s = {ratio:.0%}",
                verdict(ratio >= HTTP_SHARED_STACK_TARGET),
            )
        )
    one = next((r for r in runs if "unloaded" in r), None)
    if one is not None:
        p50 = one["unloaded"]["p50_ms"]
        out.append(
            (
                f"unloaded p50 ≤ {HTTP_UNLOADED_P50_MS:g} ms",
                f"{p50:.2f} ms",
                verdict(p50 <= HTTP_UNLOADED_P50_MS),
            )
        )
        half = next((s for s in one["sweep"] if s["fraction"] == 0.5), None)
        if half is not None:
            out.append(
                (
                    f"p99 ≤ {HTTP_HALF_P99_MS:g} ms at half of its own ceiling",
                    f"{half['p99_ms']:.2f} ms at {half['offered']:,} req/s offered",
                    verdict(half["p99_ms"] <= HTTP_HALF_P99_MS and not half["non_2xx"]),
                )
            )
    return out


def http_section(results: Results) -> list[str]:
    runs = _http_runs(results)
    if not runs:
        return []
    lines = [
        "",
        "## HTTP decisions",
        "",
        "`POST /v1/decisions` (a ~1 KB body for retention-desk with context overrides, 200 "
        "distinct customers) against a bare Litestar endpoint that only validates the same body "
        "(tests/bench/bare_app.py), each served by uvicorn with uvloop and httptools, measured "
        "one after the other in the same run by tests/bench/http_load.py "
        f"({runs[0]['connections']} keep-alive connections, closed loop; the load generator "
        "runs on the same 2 cores). Stacks: `embedded` (the ledger's segments on local disk, "
        "in-process context) and `redis-pg` (context, counters and interactions in this "
        "machine's Redis; the ledger shipped to its PostgreSQL).",
        "",
        *table(["target", "measured", "result"], [list(t) for t in http_targets(results)], "lll"),
        "",
        *table(
            [
                "stack",
                "workers",
                "bare req/s",
                "Frontline req/s",
                "ratio",
                "Frontline p50 / p99 / p99.9 ms",
                "non-2xx",
                "load avg",
            ],
            [
                [
                    r.get("stack", "embedded"),
                    str(r["workers"]),
                    f"{r['bare']['requests_per_s']:,.0f}",
                    f"{r['frontline']['requests_per_s']:,.0f}",
                    f"{r['ratio']:.0%}",
                    f"{r['frontline']['p50_ms']:.1f} / {r['frontline']['p99_ms']:.1f} / "
                    f"{r['frontline']['p999_ms']:.1f}",
                    str(sum(r["frontline"]["non_2xx"].values())),
                    f"{r['load_average'][0]:.2f}",
                ]
                for r in runs
            ],
            "lrrrrrrr",
        ),
    ]
    for one in (r for r in runs if "sweep" in r):
        lines += [
            "",
            f"Open loop, one worker, {one.get('stack', 'embedded')}: requests sent on a fixed "
            "schedule, latency counted from the scheduled send time (queueing included).",
            "",
            *table(
                [
                    "offered req/s",
                    "of ceiling",
                    "answered req/s",
                    "p50 ms",
                    "p99 ms",
                    "p99.9 ms",
                    "non-2xx",
                ],
                [
                    [
                        f"{s['offered']:,}",
                        f"{s['fraction']:.0%}",
                        f"{s['requests_per_s']:,.0f}",
                        f"{s['p50_ms']:.2f}",
                        f"{s['p99_ms']:.2f}",
                        f"{s['p999_ms']:.2f}",
                        str(sum(s["non_2xx"].values())),
                    ]
                    for s in one["sweep"]
                ],
                "rrrrrrr",
            ),
            "",
            f"Unloaded (one request at a time): p50 {one['unloaded']['p50_ms']:.2f} ms, "
            f"p99 {one['unloaded']['p99_ms']:.2f} ms.",
        ]
    return lines + budget_lines(results)


# Why a stage costs what it does, where it costs more than the engine's evaluation.
BUDGET_STAGES = (
    ("parse_and_validate", "parse and validate the body", "msgspec into DecisionRequest"),
    ("authentication", "authentication", "SHA-256 of the key, one dict lookup"),
    ("rate_limit", "rate limit", "one counter per principal and minute"),
    ("context", "context", "cached context and the request's overrides, with sources"),
    ("counters", "counters", "the count(...) windows the ruleset reads"),
    ("evaluation", "evaluation (the engine)", "compiled closures"),
    (
        "decision_to_dict",
        "the decision's JSON shape",
        "every output rendered once as dicts (offers with params, alerts with messages, "
        "missing and stale fields), shared by the response and the record",
    ),
    (
        "record",
        "the ledger record",
        "each field read, with its source and age, masked where classified, and the "
        "request's inputs: per field more than the engine spends reading it",
    ),
    (
        "append_path",
        "append: hand-off, seal, write, sync, resume",
        "sealing 4-5 µs, the hand-off to the writer thread and back to the event loop; the "
        "system calls are shared by a batch",
    ),
    ("ids_clock_and_checks", "ids, clock, nesting checks", "a ULID, the time, two depth walks"),
    ("metrics", "metrics", "one histogram observation"),
    ("response_encoding", "response encoding", "msgspec"),
    (
        "request_id_and_access_line",
        "request id and access line",
        "the id bound to the log context and sent back in X-Request-ID; one JSON line "
        "encoded by msgspec and written",
    ),
    (
        "remainder",
        "the rest",
        "reading the request and writing the answer (the decision fast path), the "
        "service's glue, scheduling, the writer thread's hand-offs",
    ),
)


def budget_lines(results: Results) -> list[str]:
    runs = _by_kind(results, "http-budget")
    if not runs:
        return []
    run = runs[-1]
    parts = {**run["stages_us"], "remainder": run["remainder_us"]}
    rows = [[label, f"{parts[key]:.1f}", why] for key, label, why in BUDGET_STAGES if key in parts]
    rows.append(["**a decision request, as served**", f"**{run['request_cpu_us']:.1f}**", ""])
    rows.append(
        [
            "the same through the Litestar route",
            f"{run['route_cpu_us']:.1f}",
            "what the fast path saves: routing, the Request object, the signature model, the "
            "response machinery",
        ]
    )
    rows.append(
        [
            "the bare endpoint",
            f"{run['bare_cpu_us']:.1f}",
            "Litestar routing, body read, msgspec validation, a small answer",
        ]
    )
    return [
        "",
        "### Where a decision request's microseconds go",
        "",
        "tests/bench/test_request_budget.py: each stage timed on its own (median), and CPU per "
        f"request through the app in this process ({run['in_flight']} in flight, no sockets, "
        "every thread of the process), so that the stages add up to the measured cost. Both "
        "also pay the HTTP server's own cost (uvicorn and httptools), which the figures over "
        "sockets above include.",
        "",
        *table(["stage", "µs per request", "why"], rows, "lrl"),
    ]


def latency_plot(results: Results, path: Path) -> bool:
    """p50 / p99 / p99.9 against offered load for each stack's open-loop sweep, as a PNG."""
    sweeps = [r for r in _http_runs(results) if "sweep" in r]
    if not sweeps:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=120)
    styles = {"p50_ms": ("-", "p50"), "p99_ms": ("--", "p99"), "p999_ms": (":", "p99.9")}
    for run in sweeps:
        offered = [s["offered"] for s in run["sweep"]]
        for key, (style, name) in styles.items():
            axes.plot(
                offered,
                [s[key] for s in run["sweep"]],
                style,
                marker="o",
                label=f"{run.get('stack', 'embedded')} {name}",
            )
        axes.axvline(run["frontline"]["requests_per_s"], color="grey", linewidth=0.6)
    axes.set_yscale("log")
    axes.set_xlabel("offered load (requests/s, open loop)")
    axes.set_ylabel("latency (ms, log scale)")
    axes.set_title("POST /v1/decisions, one worker (grey lines: closed-loop ceilings)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, ncol=2)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return True


SOAK_GROWTH_LIMIT = 0.10


def soak_section(results: Results) -> list[str]:
    runs = _by_kind(results, "soak")
    if not runs:
        return []
    run = runs[0]
    samples = run["rss_mb"]
    lines = [
        "",
        "## Memory",
        "",
        f"A soak of {run['seconds'] / 60:g} minutes at half of the server's capacity "
        f"({run['rate']:,.0f} decisions/s offered, open loop) over {run['customers']:,} distinct "
        "customers whose contexts live in Redis (so the in-process cache fills to its bound); "
        "the server's resident memory sampled every "
        f"{run['every']:.0f} s (tests/bench/test_soak.py).",
        "",
        *table(
            ["minute", "RSS MB"],
            [[f"{t / 60:.1f}", f"{mb:.1f}"] for t, mb in samples[:: max(1, len(samples) // 12)]],
            "rr",
        ),
        "",
        f"Decisions: {run['ok']:,} answered, non-2xx {run['non_2xx'] or 0}, p50 "
        f"{run['p50_ms']:.2f} ms, p99 {run['p99_ms']:.2f} ms, p99.9 {run['p999_ms']:.2f} ms. "
        f"Growth over the second half: {run['growth_second_half']:+.1%} "
        f"({verdict(abs(run['growth_second_half']) <= SOAK_GROWTH_LIMIT)} against "
        f"±{SOAK_GROWTH_LIMIT:.0%}).",
    ]
    return lines


LEDGER_SEAL_US = 5.0
LEDGER_RATE_TARGET = 30_000
LEDGER_LAG_S = 2.0
LEDGER_SHIP_TARGET = 15_000
LEDGER_EXPORT_TARGET = 20_000
LEDGER_P50_MS, LEDGER_P99_MS = 1.0, 5.0
LEDGER_QUERY_MS = {"customer": 20.0, "time-range": 50.0}
BUDGET_PARTS = (
    ("replace_us", "copy the record with its place in the chain"),
    ("encode_us", "encode (msgspec JSON, field order)"),
    ("hash_us", "hash (SHA-256 leaf hash)"),
    ("write_us", "frame + write (share of one write per batch)"),
    ("fdatasync_us", "fdatasync (share of one per batch)"),
)


LEDGER_REPLAY_S = 30.0


def ledger_targets(results: Results) -> list[tuple[str, str, str]]:
    out = []
    for run in _by_kind(results, "ledger-seal"):
        out.append(
            (
                f"sealing (encode + hash) ≤ {LEDGER_SEAL_US:g} µs per decision record",
                f"{run['seal_us']:.2f} µs, {run['record_bytes']:,.0f} bytes (previous design "
                f"in the same run: {run['previous_seal_us']:.2f} µs, "
                f"{run['previous_record_bytes']:,.0f} bytes)",
                verdict(run["seal_us"] <= LEDGER_SEAL_US),
            )
        )
    for run in _by_kind(results, "ledger-throughput"):
        lag = run.get("lag_max_s")
        out.append(
            (
                f"sustained appends ≥ {LEDGER_RATE_TARGET:,} records/s with the indexer running, "
                f"its lag ≤ {LEDGER_LAG_S:g} s",
                f"{run['records_per_s']:,.0f} records/s ({run['record_bytes']:,}-byte records, "
                f"{run['records'] / run['batches']:,.0f} per batch)"
                + (
                    f"; index lag at most {lag:.2f} s / {run['lag_max_records']:,} records, "
                    f"caught up {run['catch_up_s']:.2f} s after the last commit"
                    + (
                        f"; the indexer used {run['indexer_cpu']:.0%} of a core"
                        if "indexer_cpu" in run
                        else ""
                    )
                    if lag is not None
                    else "; index lag not measured"
                ),
                verdict(
                    run["records_per_s"] >= LEDGER_RATE_TARGET
                    and (None if lag is None else lag <= LEDGER_LAG_S) is not False
                ),
            )
        )
    for run in _by_kind(results, "ledger-index-lag"):
        out.append(
            (
                f"index lag ≤ {LEDGER_LAG_S:g} s with {run['rate']:,} appends/s offered for "
                f"{run['seconds']:g} s",
                f"at most {run['lag_max_s']:.2f} s / {run['lag_max_records']:,} records "
                f"({run['lag_at_end_s']:.2f} s at the end; {run['records_per_s']:,.0f} "
                f"appends/s; the indexer used {run['indexer_cpu']:.0%} of a core)",
                verdict(run["lag_max_s"] <= LEDGER_LAG_S),
            )
        )
    for run in _by_kind(results, "ledger-latency"):
        out.append(
            (
                f"append p50 ≤ {LEDGER_P50_MS:g} ms and p99 ≤ {LEDGER_P99_MS:g} ms at "
                f"{run['rate']:,}/s",
                f"p50 {run['p50_ms']:.2f} ms, p99 {run['p99_ms']:.2f} ms "
                f"(p99.9 {run['p999_ms']:.2f} ms)"
                + (
                    f"; the indexer used {run['indexer_cpu']:.0%} of a core, longest GC pause "
                    f"{run['gc_longest_pause_ms']:.1f} ms"
                    if "indexer_cpu" in run and "gc_longest_pause_ms" in run
                    else ""
                ),
                verdict(run["p50_ms"] <= LEDGER_P50_MS and run["p99_ms"] <= LEDGER_P99_MS),
            )
        )
    for run in _by_kind(results, "ledger-query"):
        limit = LEDGER_QUERY_MS.get(run["query"])
        if limit is not None:
            out.append(
                (
                    f"{run['query']} query, first page ≤ {limit:g} ms at "
                    f"{run['records']:,} records",
                    f"median {run['median_ms']:.1f} ms (p90 {run['p90_ms']:.1f} ms)",
                    verdict(run["median_ms"] <= limit),
                )
            )
    for run in _by_kind(results, "ledger-export"):
        out.append(
            (
                f"filtered export by {run['filter']} "
                f"({'JSONL' if run['via'] == 'bodies' else 'CSV'}) ≥ "
                f"{LEDGER_EXPORT_TARGET:,} records/s",
                f"{run['records_per_s']:,.0f} records/s ({run['records']:,} records)",
                verdict(run["records_per_s"] >= LEDGER_EXPORT_TARGET),
            )
        )
    for run in _by_kind(results, "ledger-shipping"):
        out.append(
            (
                f"shipped to PostgreSQL ≥ {LEDGER_SHIP_TARGET:,} records/s",
                f"{run['records_per_s']:,.0f} records/s",
                verdict(run["records_per_s"] >= LEDGER_SHIP_TARGET),
            )
        )
    for run in _by_kind(results, "ledger-replay"):
        out.append(
            (
                f"replaying {run['records']:,} decisions ≤ {LEDGER_REPLAY_S:g} s, with progress",
                f"{run['seconds']:.1f} s ({run['records_per_s']:,.0f}/s; {run['changed']:,} would "
                f"change); {run['progress_calls']} progress reports, the first after "
                f"{run['first_progress_s']:.2f} s",
                verdict(run["seconds"] <= LEDGER_REPLAY_S and run["progress_calls"] > 1),
            )
        )
    return out


def ledger_section(results: Results) -> list[str]:
    targets_ = ledger_targets(results)
    if not targets_:
        return []
    lines = [
        "",
        "## Ledger",
        "",
        "Real decision records (retention-desk decisions built by "
        "`audit.recording.decision_record`, pii masked) through `LedgerWriter` into an "
        "instance's segment files (one write and one fdatasync per batch), with the indexer "
        "process following the log as the server runs it; tests/bench/test_ledger_bench.py.",
        "",
        *table(["target", "measured", "result"], [list(t) for t in targets_], "lll"),
    ]
    for seal in _by_kind(results, "ledger-seal"):
        lines += [
            "",
            f"Sealing one record, median of {seal['records'] * seal['rounds']:,} seals of "
            f"{seal['records']:,} decision records, the two designs interleaved:",
            "",
            *table(
                ["design", "µs per record", "bytes per record"],
                [
                    [
                        "segments: field order, hash outside the bytes",
                        f"{seal['seal_us']:.2f}",
                        f"{seal['record_bytes']:,.0f}",
                    ],
                    [
                        "previous: sorted keys, hash placeholder",
                        f"{seal['previous_seal_us']:.2f}",
                        f"{seal['previous_record_bytes']:,.0f}",
                    ],
                ],
                "lrr",
            ),
        ]
    for budget in _by_kind(results, "ledger-append-budget"):
        rows = [[label, f"{budget[key]:.2f}"] for key, label in BUDGET_PARTS]
        rows.append(["**commit path**", f"**{budget['commit_path_us']:.2f}**"])
        rows.append(
            [
                "index (`catch_up` time / records, in the indexer process)",
                f"{budget['index_us']:.2f}",
            ]
        )
        lines += [
            "",
            f"Where the µs of one append go, at {budget['batch']:,} records per batch (the "
            "sustained run's):",
            "",
            *table(["part", "µs per record"], rows, "lr"),
        ]
        sustained = budget.get("sustained_append_us")
        if sustained:
            lines += [
                "",
                f"The sustained run took {sustained:.2f} µs of wall time per record; the rest "
                "is the producer threads, the writer's queue, settling each caller, and waiting "
                "for a core (the indexer process and anything else running share the two).",
            ]
        by_batch = budget.get("batches") or []
        if by_batch:
            lines += [
                "",
                *table(
                    [
                        "records per batch",
                        "frame + write µs/record",
                        "fdatasync ms/batch",
                        "fdatasync µs/record",
                        "SegmentLog.append µs/record",
                    ],
                    [
                        [
                            f"{b['batch']:,}",
                            f"{b['write_us']:.2f}",
                            f"{b['fdatasync_ms_per_batch']:.3f}",
                            f"{b['fdatasync_us']:.2f}",
                            f"{b['segment_append_us']:.2f}",
                        ]
                        for b in by_batch
                    ],
                    "rrrrr",
                ),
            ]
    queries = _by_kind(results, "ledger-query")
    if queries:
        lines += [
            "",
            f"First page (100 records, newest first) on a ledger of {queries[0]['records']:,} "
            "records (10,000 customers, 50 agents, 40 rulesets), 60 queries each:",
            "",
            *table(
                ["filter", "median ms", "p90 ms"],
                [[q["query"], f"{q['median_ms']:.2f}", f"{q['p90_ms']:.2f}"] for q in queries],
                "lrr",
            ),
        ]
    exports = _by_kind(results, "ledger-export")
    if exports:
        lines += [
            "",
            "Filtered exports on the same ledger, streamed to the end: JSONL is the stored "
            "bytes (`LedgerReader.bodies`), CSV decodes each record (`iterate` + `csv_lines`):",
            "",
            *table(
                ["filter", "format", "records", "seconds", "records/s"],
                [
                    [
                        e["filter"],
                        "JSONL" if e["via"] == "bodies" else "CSV",
                        f"{e['records']:,}",
                        f"{e['seconds']:.2f}",
                        f"{e['records_per_s']:,.0f}",
                    ]
                    for e in exports
                ],
                "llrrr",
            ),
        ]
    return lines


CONTEXT_CACHE_US, CONTEXT_REDIS_US = 10.0, 300.0
ALERT_P50_MS, ALERT_P99_MS = 5.0, 25.0
EVENT_CPU_MS = 0.8  # server CPU per event or context change


def realtime_targets(results: Results) -> list[tuple[str, str, str]]:
    out = []
    per = {
        b["extra_info"]["where"]: b["stats"]["median"] / b["extra_info"]["batch"] * 1e6
        for b in results.data.get("benchmarks", [])
        if b.get("extra_info", {}).get("kind") == "context"
    }
    base = per.get("request")
    for where, limit in (("cache", CONTEXT_CACHE_US), ("redis", CONTEXT_REDIS_US)):
        if base is not None and where in per:
            extra = per[where] - base
            label = "the in-process cache" if where == "cache" else "Redis"
            out.append(
                (
                    f"context from {label} costs ≤ {limit:g} µs more than in the request",
                    f"+{extra:.1f} µs ({per[where]:.1f} against {base:.1f} µs per decision)",
                    verdict(extra <= limit),
                )
            )
    for run in sorted(_by_kind(results, "alerts"), key=lambda i: i["instances"]):
        where = "one instance" if run["instances"] == 1 else "across two instances"
        out.append(
            (
                f"event → alert on the WebSocket at {run['rate']}/s, {where}: "
                f"p50 ≤ {ALERT_P50_MS:g} ms, p99 ≤ {ALERT_P99_MS:g} ms",
                f"p50 {run['p50_ms']:.2f} ms, p99 {run['p99_ms']:.2f} ms "
                f"(p99.9 {run['p999_ms']:.2f} ms; {run['alerts']:,} alerts, "
                f"{run['missing']} missing)",
                verdict(
                    run["p50_ms"] <= ALERT_P50_MS
                    and run["p99_ms"] <= ALERT_P99_MS
                    and run["missing"] == 0
                ),
            )
        )
        if "server_cpu_ms_per_event" in run:
            out.append(
                (
                    f"an event costs ≤ {EVENT_CPU_MS:g} ms of server CPU ({where})",
                    f"{run['server_cpu_ms_per_event']:.3f} ms ({run['events_answered']:,} of "
                    f"{run['events']:,} events answered; the client used "
                    f"{run['client_cpu_s']:.2f} s of CPU)",
                    verdict(run["server_cpu_ms_per_event"] <= EVENT_CPU_MS),
                )
            )
    return out


TIMER_LATE_S = 1.0  # every timer run within a second of its due time


def timer_targets(results: Results) -> list[tuple[str, str, str]]:
    out = []
    for run in _by_kind(results, "timers"):
        out.append(
            (
                f"{run['interactions']:,} live interactions on a {run['every_s']} s timer, "
                "two instances: every run within 1 s of its due time, none twice in a period",
                f"{run['runs']:,} runs in {run['ran_for_s']} s "
                f"({' + '.join(f'{n:,}' for n in run['runs_per_instance'])} by instance), "
                f"every interaction run at least {run['least_runs_per_interaction']} times; "
                f"late p50 {run['late_p50_s']:.3f} s, p99 {run['late_p99_s']:.3f} s, "
                f"max {run['late_max_s']:.3f} s; {run['twice_in_a_period']} twice in a period",
                verdict(
                    run["late_max_s"] is not None
                    and run["late_max_s"] <= TIMER_LATE_S
                    and run["twice_in_a_period"] == 0
                    and run["interactions_run"] == run["interactions"]
                ),
            )
        )
    return out


def realtime_section(results: Results) -> list[str]:
    targets_ = realtime_targets(results) + timer_targets(results)
    if not targets_:
        return []
    return [
        "",
        "## Context and alerts",
        "",
        "Context: the context-and-evaluate step of a retention-desk decision "
        "(the decision reads, the context view, then `evaluate`), 200 per round, with the "
        "~1 KB context in the request, in the in-process cache in front of Redis, or read "
        "from Redis on every decision (cache off); tests/bench/test_context_bench.py. "
        "Alerts: events posted at a fixed rate by the lean open-loop client (its own process, "
        "32 keep-alive connections) to a server on this machine's Redis, each raising one "
        "alert, timed from the event's scheduled send to the alert on "
        "the agent's WebSocket, the desktop on the same server or on a second one; "
        "tests/bench/test_alert_bench.py. Timers: 10,000 interactions started across two "
        "instances, a timer rule every 30 s that always fires, each run's lateness read "
        "from its alert record (recorded at, against due at); tests/bench/test_timer_bench.py.",
        "",
        *table(["target", "measured", "result"], [list(t) for t in targets_], "lll"),
    ]


SECTIONS: tuple[Callable[[Results], list[str]], ...] = (
    header,
    targets_section,
    medians_section,
    compile_section,
    parts_section,
    workload_section,
    detail_section,
    http_section,
    ledger_section,
    realtime_section,
)


def render(data: dict[str, Any], command: str) -> str:
    """The generated part of docs/benchmarks.md, ending with the marker line."""
    results = Results(data, command)
    lines: list[str] = []
    for section in SECTIONS:
        lines += section(results)
    return "\n".join([*lines, "", MARKER, ""])


PERFORMANCE = DEFAULT_OUT.parent / "performance.md"
PLOT = DEFAULT_OUT.parent / "performance-latency.png"


def render_performance(data: dict[str, Any], command: str, plotted: bool) -> str:
    """docs/performance.md: every figure of the run in one report, with the latency plot and
    the memory soak, and every target of every issue in one table."""
    results = Results(data, command)
    every = (
        targets(results)
        + http_targets(results)
        + ledger_targets(results)
        + realtime_targets(results)
        + timer_targets(results)
    )
    lines = [
        "# Performance",
        "",
        "*Generated by `make bench` (tests/bench/report.py) from one run; every ratio compares "
        "figures measured side by side in that run. The engine, HTTP, ledger and real-time "
        "sections are also in docs/benchmarks.md, with notes on reading them.*",
    ]
    lines += header(results)[3:]
    lines += [
        "",
        "## Every target",
        "",
        *table(["target", "measured", "result"], [list(t) for t in every], "lll"),
    ]
    if plotted:
        lines += [
            "",
            "## Latency against offered load",
            "",
            f"![p50, p99 and p99.9 of POST /v1/decisions against offered load]({PLOT.name})",
        ]
    for section in SECTIONS[1:]:
        lines += section(results)
    lines += soak_section(results)
    return "\n".join([*lines, ""])


def merge(generated: str, existing: str | None) -> str:
    """The generated part followed by whatever the existing file holds below the marker."""
    if existing is None or MARKER not in existing:
        return generated
    tail = existing.split(MARKER, 1)[1].lstrip("\n")
    return generated + ("\n" + tail if tail else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, help="pytest-benchmark JSON (--benchmark-json)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown to write")
    args = parser.parse_args(argv)
    data = json.loads(args.json.read_text(encoding="utf-8"))
    existing = args.out.read_text(encoding="utf-8") if args.out.exists() else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = shlex.join(getattr(sys, "orig_argv", sys.argv))
    args.out.write_text(merge(render(data, command), existing), encoding="utf-8")
    print(f"wrote {args.out}")
    results = Results(data)
    if args.out == DEFAULT_OUT:
        plotted = latency_plot(results, PLOT)
        PERFORMANCE.write_text(render_performance(data, command, plotted), encoding="utf-8")
        print(f"wrote {PERFORMANCE}" + (f" and {PLOT}" if plotted else ""))
    for target, measured, result in (
        targets(results)
        + http_targets(results)
        + ledger_targets(results)
        + realtime_targets(results)
        + timer_targets(results)
    ):
        print(f"  {result.strip('*')}: {target}: {measured}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

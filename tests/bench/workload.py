"""One benchmark workload, generated deterministically and written for four rule engines.

``build(n)`` draws ``n`` eligibility rules, a 100-row ``first`` decision table and 200 input
contexts from a seeded generator, as an engine-neutral description, and emits the same logic as

- a Frontline document (docs/language.md), as a mapping and as YAML text;
- a durable_rules JSON ruleset (one rule per eligibility rule and per table row);
- rule-engine ``Rule`` expressions (one per eligibility rule and per table row);
- a zen-engine JDM graph: input → collect table (the rules) and first-hit table → output.

The rules look like a contact centre's offer catalogue: each is a conjunction of a categorical
test (``customer.segment == "s17"`` over 50 segments, sometimes a short ``in`` list; one rule
in ten keys on ``customer.tier in [...]`` instead) and one or two numeric comparisons, some
with an extra tier test. Every context carries every field, so no engine's handling of missing
values matters, and numeric thresholds never equal a context value, so float and decimal
arithmetic agree.

Each ``*_evaluator(workload)`` compiles its engine's form and returns ``evaluate(context) ->
(fired rule ids, table limit)``, the one operation the benchmarks time. ``check_agreement``
runs all of them, and a plain-Python oracle over the neutral description, on every context and
raises ``AssertionError`` on the first difference.
"""

from __future__ import annotations

import json
import operator
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from engine import CompiledRuleset

SEED = 20261122
SIZES = (10, 100, 1000)
CONTEXT_COUNT = 200
TABLE_ROWS = 100
TABLE_ID = "limits"
RULESET = "bench-eligibility"

SEGMENTS = tuple(f"s{i:02d}" for i in range(50))
TIERS = ("bronze", "silver", "gold", "platinum")
TIER_WEIGHTS = (50, 30, 15, 5)
REGIONS = ("north", "south", "east", "west", "central", "coast", "hills", "metro", "rural")

# Field path → (Frontline type, enum or None). Every context sets every one of them.
FIELDS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "customer.segment": ("string", SEGMENTS),
    "customer.tier": ("string", TIERS),
    "customer.region": ("string", REGIONS),
    "customer.tenure_months": ("integer", None),
    "customer.churn_score": ("number", None),
    "history.contacts_7d": ("integer", None),
    "interaction.amount": ("number", None),
}
RULE_FIELDS = (
    "customer.segment",
    "customer.tier",
    "customer.tenure_months",
    "customer.churn_score",
    "history.contacts_7d",
)
TABLE_FIELDS = ("customer.region", "interaction.amount")

# A test is (field, op, value): op is "==", "in" (value a tuple), ">=", ">", "<", "<=", or,
# in table cells only, "any" and "range" (value (low, high), meaning low <= x < high).
Test = tuple[str, str, Any]
Result = tuple[list[str], int | None]
Evaluator = Callable[[dict[str, Any]], Result]


@dataclass(frozen=True)
class Rule:
    id: str
    tests: tuple[Test, ...]
    offer: str


@dataclass(frozen=True)
class Row:
    region: Test
    amount: Test
    limit: int


@dataclass(frozen=True)
class Workload:
    n: int
    rules: tuple[Rule, ...]
    rows: tuple[Row, ...]
    contexts: tuple[dict[str, Any], ...]


# -- generation ------------------------------------------------------------------------------


def _numeric_test(rng: random.Random, field: str) -> Test:
    if field == "customer.tenure_months":
        return (field, rng.choice((">=", ">=", "<")), rng.choice((3, 6, 12, 24, 36, 60)))
    if field == "customer.churn_score":
        # Three decimals against contexts' two: a threshold never equals a score.
        return (field, rng.choice((">", ">", "<=")), round(rng.randrange(1, 19) * 0.05 + 0.005, 3))
    return (field, ">=", rng.randrange(1, 5))


def _rule(rng: random.Random, k: int) -> Rule:
    tests: list[Test] = []
    if rng.random() < 0.9:
        if rng.random() < 0.85:
            tests.append(("customer.segment", "==", rng.choice(SEGMENTS)))
        else:
            tests.append(("customer.segment", "in", tuple(sorted(rng.sample(SEGMENTS, 2)))))
        if rng.random() < 0.2:
            tests.append(("customer.tier", "in", tuple(rng.sample(TIERS, 2))))
    else:
        tests.append(("customer.tier", "in", tuple(rng.sample(TIERS, rng.choice((1, 2))))))
    numeric = ("customer.tenure_months", "customer.churn_score", "history.contacts_7d")
    for field in rng.sample(numeric, rng.choice((1, 1, 2))):
        tests.append(_numeric_test(rng, field))
    return Rule(f"e{k:04d}", tuple(tests), f"offer-{k % 40:02d}")


def _row(rng: random.Random) -> Row:
    roll = rng.random()
    if roll < 0.7:
        region: Test = ("customer.region", "==", rng.choice(REGIONS))
    elif roll < 0.85:
        region = ("customer.region", "in", tuple(rng.sample(REGIONS, 2)))
    else:
        region = ("customer.region", "any", None)
    roll = rng.random()
    low = rng.randrange(0, 900, 25)
    if roll < 0.6:
        amount: Test = ("interaction.amount", "range", (low, low + rng.randrange(25, 300, 25)))
    elif roll < 0.8:
        amount = ("interaction.amount", "<", low + 25)
    else:
        amount = ("interaction.amount", ">=", low)
    return Row(region, amount, rng.randrange(1, 51) * 10)


def _context(rng: random.Random) -> dict[str, Any]:
    return {
        "customer": {
            "segment": rng.choice(SEGMENTS),
            "tier": rng.choices(TIERS, TIER_WEIGHTS)[0],
            "region": rng.choice(REGIONS),
            "tenure_months": rng.randrange(0, 121),
            "churn_score": rng.randrange(0, 101) / 100,
        },
        "history": {"contacts_7d": min(rng.randrange(0, 4) + rng.randrange(0, 4), 6)},
        "interaction": {"amount": rng.randrange(0, 100_000) / 100},
    }


@cache
def build(n: int) -> Workload:
    """The workload with ``n`` eligibility rules; the same ``n`` always gives the same one."""
    rng = random.Random(f"{SEED}-rules-{n}")
    rules = tuple(_rule(rng, k) for k in range(n))
    # The table and the contexts do not depend on n: every size evaluates the same inputs.
    rng = random.Random(f"{SEED}-table")
    # As an author would write it: bounded amount bands for a region first, then open-ended
    # bands, then rows for any region, then the catch-all.
    rows = tuple(
        sorted(
            (_row(rng) for _ in range(TABLE_ROWS - 1)),
            key=lambda row: (row.region[1] == "any", row.amount[1] != "range"),
        )
    )
    rows += (Row(("customer.region", "any", None), ("interaction.amount", "any", None), 0),)
    rng = random.Random(f"{SEED}-contexts")
    contexts = tuple(_context(rng) for _ in range(CONTEXT_COUNT))
    return Workload(n, rules, rows, contexts)


# -- the oracle ------------------------------------------------------------------------------


def _get(context: dict[str, Any], path: str) -> Any:
    root, name = path.split(".")
    return context[root][name]


_COMPARE = {
    "==": operator.eq,
    ">=": operator.ge,
    ">": operator.gt,
    "<": operator.lt,
    "<=": operator.le,
}


def _holds(test: Test, context: dict[str, Any]) -> bool:
    field, op, value = test
    x = _get(context, field)
    if op == "any":
        return True
    if op == "in":
        return x in value
    if op == "range":
        return bool(value[0] <= x < value[1])
    return bool(_COMPARE[op](x, value))


def oracle(workload: Workload, context: dict[str, Any]) -> Result:
    """What every engine must answer, computed directly from the neutral description."""
    fired = [r.id for r in workload.rules if all(_holds(t, context) for t in r.tests)]
    rows = (row for row in workload.rows if _holds(row.region, context))
    limit = next((row.limit for row in rows if _holds(row.amount, context)), None)
    return fired, limit


# -- Frontline -------------------------------------------------------------------------------


def _literal(value: Any) -> str:
    return json.dumps(value)


def _frontline_condition(test: Test) -> str:
    field, op, value = test
    if op == "in":
        return f"{field} in {_literal(list(value))}"
    return f"{field} {op} {_literal(value)}"


def _frontline_cell(test: Test) -> str:
    _, op, value = test
    if op == "any":
        return "-"
    if op == "==":
        return _literal(value)
    if op == "in":
        return _literal(list(value))
    if op == "range":
        return f"[{value[0]}..{value[1]})"
    return f"{op} {value}"


def frontline_document(workload: Workload) -> dict[str, Any]:
    """The workload as a Frontline ruleset document (a mapping)."""
    context: dict[str, Any] = {}
    for path, (kind, enum) in FIELDS.items():
        context[path] = {"type": kind, "enum": list(enum)} if enum else kind
    return {
        "ruleset": RULESET,
        "description": f"Benchmark workload: {workload.n} eligibility rules, one first-hit table",
        "context": context,
        "eligibility": [
            {
                "id": rule.id,
                "when": " and ".join(_frontline_condition(t) for t in rule.tests),
                "offer": rule.offer,
            }
            for rule in workload.rules
        ],
        "tables": [
            {
                "id": TABLE_ID,
                "hit": "first",
                "inputs": list(TABLE_FIELDS),
                "outputs": ["limit"],
                "rows": [
                    [_frontline_cell(row.region), _frontline_cell(row.amount), row.limit]
                    for row in workload.rows
                ],
            }
        ],
    }


class _Dumper(yaml.SafeDumper):
    """Writes lists of scalars (enums, table rows) on one line, everything else in blocks."""

    def represent_list(self, data: list[Any]) -> yaml.Node:
        flow = all(not isinstance(item, dict | list) for item in data)
        return self.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _Dumper.represent_list)


def frontline_text(workload: Workload) -> str:
    """The Frontline document as YAML, the way an author would deploy it."""
    return yaml.dump(frontline_document(workload), Dumper=_Dumper, sort_keys=False, width=120)


@cache
def frontline_compiled(n: int) -> CompiledRuleset:
    """The compiled Frontline document of ``build(n)``, compiled from its YAML text once."""
    from engine import compile_ruleset

    return compile_ruleset(frontline_text(build(n)))


def frontline_evaluator(workload: Workload, trace: bool = False) -> Evaluator:
    """Evaluate, then read the fired rule ids and the table's output: what every peer gives.

    With ``trace`` the evaluation records every rule's three-valued result as it goes;
    rendering the whole decision as JSON (``to_dict()``) is measured on its own
    (``test_frontline_decision_json``), as no peer builds an equivalent document.
    """
    evaluate = frontline_compiled(workload.n).evaluate

    def run(context: dict[str, Any]) -> Result:
        decision = evaluate(context, trace=trace)
        outputs = decision.tables[TABLE_ID]
        return decision.eligible_rules, None if outputs is None else outputs["limit"]

    return run


# -- durable_rules ---------------------------------------------------------------------------

_DURABLE_OPS = {">=": "$gte", ">": "$gt", "<": "$lt", "<=": "$lte"}


def _durable_test(test: Test) -> dict[str, Any] | None:
    field, op, value = test
    if op == "any":
        return None
    if op == "==":
        return {field: value}
    if op == "in":
        return {"$or": [{field: v} for v in value]}
    if op == "range":
        return {"$and": [{"$gte": {field: value[0]}}, {"$lt": {field: value[1]}}]}
    return {_DURABLE_OPS[op]: {field: value}}


def _durable_rule(tests: tuple[Test, ...]) -> dict[str, Any]:
    parts = [p for p in map(_durable_test, tests) if p is not None]
    if not parts:  # the table's catch-all row: durable_rules needs a test; region is always set
        parts = [{"$ex": {"customer.region": 1}}]
    condition = parts[0] if len(parts) == 1 else {"$and": parts}
    return {"all": [{"m": condition}]}


def durable_ruleset(workload: Workload) -> dict[str, Any]:
    """The workload as a durable_rules JSON ruleset: rules ``e0000…``, table rows ``t000…``.

    durable_rules has no decision tables: each row is a rule, and the evaluator takes the
    first row (lowest number) among those that fire.
    """
    rules = {rule.id: _durable_rule(rule.tests) for rule in workload.rules}
    for k, row in enumerate(workload.rows):
        rules[f"t{k:03d}"] = _durable_rule((row.region, row.amount))
    return rules


_durable_names = iter(range(1_000_000))


def durable_evaluator(workload: Workload) -> Evaluator:
    """Drive the durable_rules engine through its C API, one fact per evaluation.

    Why this way: durable_rules *events* are consumed by the first rule that matches, so
    ``post`` reports one rule where several hold; a *fact* fires every rule that holds. Each
    evaluation asserts the context as a fact on the single default session, drains the actions
    (one per rule that fired) and retracts the fact, leaving the session empty again. One
    session keeps clear of the 1,024-sessions-per-ruleset cap (the 1,025th raises MemoryError)
    and ``delete_state`` (which can segfault) is never called. ``durable.engine.Host`` adds a
    closure, a state update and a JSON parse per action (≈ 5× slower here), and its background
    dispatch threads call into the same handle, so the module's functions are called directly;
    the rule name is read from the front of each action's JSON without parsing the rest.
    """
    import durable_rules_engine as dre

    handle = dre.create_ruleset(
        f"bench{workload.n}x{next(_durable_names)}", json.dumps(durable_ruleset(workload))
    )
    assert_fact, retract_fact = dre.assert_fact, dre.retract_fact
    start, complete = dre.start_action_for_state, dre.complete_and_start_action
    dumps = json.dumps

    def run(context: dict[str, Any]) -> Result:
        fact = dumps(context)
        code, state = assert_fact(handle, fact)
        fired: list[str] = []
        rows: list[int] = []
        if code == 0:
            action = start(handle, state)
            message = action[1] if action else None
            while message:
                name = message[2 : message.index('"', 2)]
                if name[0] == "t":
                    rows.append(int(name[1:]))
                else:
                    fired.append(name)
                message = complete(handle, state)
        elif code != 1:  # 1: no rule matched, though the fact is stored all the same
            raise RuntimeError(f"durable_rules refused the fact: code {code}")
        retract_fact(handle, fact)
        return fired, workload.rows[min(rows)].limit if rows else None

    return run


# -- rule-engine -----------------------------------------------------------------------------


def _rule_engine_symbol(field: str) -> str:
    return field.replace(".", "_")


def _rule_engine_test(test: Test) -> str | None:
    field, op, value = test
    symbol = _rule_engine_symbol(field)
    if op == "any":
        return None
    if op == "in":
        return "(" + " or ".join(f"{symbol} == {_literal(v)}" for v in value) + ")"
    if op == "range":
        return f"{symbol} >= {value[0]} and {symbol} < {value[1]}"
    return f"{symbol} {op} {_literal(value)}"


def rule_engine_expressions(workload: Workload) -> tuple[list[tuple[str, str]], list[str]]:
    """The rules as ``(id, expression)`` and the table rows as expressions, in order.

    Expressions read flat symbols (``customer_segment``) and spell ``in`` as ``==`` tests
    joined by ``or``: rule-engine 5.1 resolves ``customer.segment`` on a dict through its
    failed-attribute path (≈ 470 µs a rule, spent computing "did you mean" suggestions),
    ``customer["segment"]`` costs ≈ 55 µs, a flat symbol ≈ 18 µs; and ``x in ["a", "b"]``
    costs ≈ 3× the equivalent ``or`` (measured on this machine). The evaluator flattens the
    context once per evaluation, inside the timed call.
    """
    rules = [
        (rule.id, " and ".join(filter(None, map(_rule_engine_test, rule.tests))))
        for rule in workload.rules
    ]
    rows = [
        " and ".join(filter(None, (_rule_engine_test(row.region), _rule_engine_test(row.amount))))
        or "true"
        for row in workload.rows
    ]
    return rules, rows


def rule_engine_evaluator(workload: Workload) -> Evaluator:
    """One ``rule_engine.Rule`` per rule and per row: match every rule, and rows until one holds."""
    import rule_engine

    rule_exprs, row_exprs = rule_engine_expressions(workload)
    rules = [(rule_id, rule_engine.Rule(text).matches) for rule_id, text in rule_exprs]
    rows = [
        (rule_engine.Rule(text).matches, row.limit)
        for text, row in zip(row_exprs, workload.rows, strict=True)
    ]

    def run(context: dict[str, Any]) -> Result:
        flat = {f"{root}_{name}": v for root, sub in context.items() for name, v in sub.items()}
        fired = [rule_id for rule_id, matches in rules if matches(flat)]
        limit = next((limit for matches, limit in rows if matches(flat)), None)
        return fired, limit

    return run


# -- zen-engine ------------------------------------------------------------------------------


def _zen_cell(test: Test) -> str:
    _, op, value = test
    if op == "any":
        return ""
    if op == "==":
        return f"'{value}'" if isinstance(value, str) else str(value)
    if op == "in":
        return ", ".join(f"'{v}'" for v in value)
    if op == "range":
        return f"[{value[0]}..{value[1]})"
    return f"{op} {value}"


def _zen_table(
    node_id: str, hit: str, inputs: tuple[str, ...], output: str, rows: list[tuple[dict, str]]
) -> dict[str, Any]:
    """A decision table node reading ``inputs`` and writing its result under ``node_id``."""
    columns = [{"id": f"in{i}", "name": field, "field": field} for i, field in enumerate(inputs)]
    rules = []
    for k, (tests, result) in enumerate(rows):
        cells = {f"in{i}": _zen_cell(tests[f]) if f in tests else "" for i, f in enumerate(inputs)}
        rules.append({"_id": f"{node_id}-{k}", **cells, "out0": result})
    return {
        "id": node_id,
        "type": "decisionTableNode",
        "name": node_id,
        "position": {"x": 400, "y": 100 if hit == "collect" else 300},
        "content": {
            "hitPolicy": hit,
            "inputs": columns,
            "outputs": [{"id": "out0", "name": output, "field": output}],
            "rules": rules,
            "outputPath": node_id,
        },
    }


def zen_graph(workload: Workload) -> dict[str, Any]:
    """The workload as a JDM decision graph.

    ``input → eligible`` is a collect table with one row per rule (one column per field, an
    empty cell where the rule does not test it) writing ``{"rule": id}`` rows to ``eligible``;
    ``input → limits`` is a first-hit table writing ``{"limit": n}`` to ``limits``; both feed
    the output node, which merges them.
    """
    rule_rows = [({t[0]: t for t in rule.tests}, f"'{rule.id}'") for rule in workload.rules]
    eligible = _zen_table("eligible", "collect", RULE_FIELDS, "rule", rule_rows)
    table_rows = [
        ({t[0]: t for t in (row.region, row.amount)}, str(row.limit)) for row in workload.rows
    ]
    limits = _zen_table(TABLE_ID, "first", TABLE_FIELDS, "limit", table_rows)
    nodes = [
        {"id": "request", "type": "inputNode", "name": "request", "position": {"x": 100, "y": 200}},
        eligible,
        limits,
        {
            "id": "response",
            "type": "outputNode",
            "name": "response",
            "position": {"x": 700, "y": 200},
        },
    ]
    edges = [
        {"id": f"{a}-{b}", "type": "edge", "sourceId": a, "targetId": b}
        for a, b in (
            ("request", "eligible"),
            ("request", TABLE_ID),
            ("eligible", "response"),
            (TABLE_ID, "response"),
        )
    ]
    return {"nodes": nodes, "edges": edges}


def zen_evaluator(workload: Workload) -> Evaluator:
    """Evaluate the graph through ``ZenEngine.evaluate`` with a static loader.

    Why not ``ZenDecision.evaluate``: in the Python binding that method builds a new Tokio
    runtime for every call (``Runtime::new()`` in bindings/python/src/decision.rs), which costs
    ≈ 200-250 µs a call here and far more when the machine is busy; ``ZenEngine.evaluate``
    runs on the binding's one shared runtime and gives the same result ≈ 10× faster.
    """
    import zen

    zen_engine = zen.ZenEngine(
        {"loader": {"type": "static", "content": {"bench": zen_graph(workload)}}}
    )
    evaluate = zen_engine.evaluate

    def run(context: dict[str, Any]) -> Result:
        result = evaluate("bench", context)["result"]
        outputs = result.get(TABLE_ID)
        fired = [row["rule"] for row in result["eligible"]]
        return fired, outputs["limit"] if outputs else None

    return run


# -- agreement -------------------------------------------------------------------------------

# The module each engine needs: a peer that is not installed is skipped, not failed.
MODULES = {
    "frontline": "engine",
    "frontline-trace": "engine",
    "durable_rules": "durable_rules_engine",
    "rule-engine": "rule_engine",
    "zen-engine": "zen",
}
PEERS: dict[str, Callable[[Workload], Evaluator]] = {
    "durable_rules": durable_evaluator,
    "rule-engine": rule_engine_evaluator,
    "zen-engine": zen_evaluator,
}
ENGINES: dict[str, Callable[[Workload], Evaluator]] = {
    "frontline": frontline_evaluator,
    "frontline-trace": lambda w: frontline_evaluator(w, trace=True),
    **PEERS,
}


@cache
def evaluator(engine: str, n: int) -> Evaluator:
    """``ENGINES[engine]`` on ``build(n)``, built once per process."""
    return ENGINES[engine](build(n))


def check_agreement(workload: Workload, engines: dict[str, Evaluator]) -> int:
    """Evaluate every engine on every context; raise on the first answer that differs.

    Fired rules are compared as sets (durable_rules reports them in its own order); the
    expected answer is the oracle's. Returns how many rules fired in all, so a caller can
    check that the workload is not trivially empty.
    """
    total = 0
    for k, context in enumerate(workload.contexts):
        fired, limit = oracle(workload, context)
        total += len(fired)
        for name, evaluate in engines.items():
            got_fired, got_limit = evaluate(context)
            assert sorted(got_fired) == fired and got_limit == limit, (
                f"{name} disagrees at n={workload.n}, context {k}: fired "
                f"{sorted(got_fired)} limit {got_limit}, expected {fired} limit {limit}"
            )
    return total

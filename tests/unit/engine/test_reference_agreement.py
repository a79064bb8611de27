"""The compiled closures agree with the reference interpreter (tests/reference.py).

Hypothesis builds random but well-typed documents — rules over every operator and function,
decision tables under every hit policy and unary-test form, small trees — and random inputs
whose fields are present, absent, null or of the wrong type; the engine's decision must match
the reference's on rule ids, alert messages, table outputs and errors, the arithmetic errors
(which failed operation left which rule, table input, template part or tree branch unknown),
tree steps, missing and invalid fields. The anchors at the end pin both interpreters to the
tables of docs/language.md, so that they cannot drift away from the doc together.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from engine import compile_ruleset
from tests.reference import decide

# -- the schema every generated document declares ----------------------------------------------

TIERS = ["bronze", "silver", "gold", "platinum"]
CHOICES = ["yes", "no"]
SCHEMA: dict[str, dict[str, Any]] = {
    "customer.tier": {"type": "string", "enum": TIERS},
    "customer.name": {"type": "string"},
    "customer.tenure": {"type": "integer"},
    "customer.score": {"type": "number"},
    "customer.vip": {"type": "boolean"},
    "customer.amounts": {"type": "list", "items": "number"},
    "customer.tags": {"type": "list", "items": "string"},
    "customer.cases": {"type": "list", "items": {"status": "string", "priority": "integer"}},
    "customer.since": {"type": "datetime"},
    "customer.address.city": {"type": "string"},
    "history.contacts": {"type": "integer"},
    "answers.age": {"type": "integer"},
    "answers.choice": {"type": "string", "enum": CHOICES},
}
ENUMS = {"customer.tier": TIERS, "answers.choice": CHOICES}
ANSWER_FIELDS = ["answers.age", "answers.choice"]
EVENTS = [("payment_failed", "7d"), ("login", "1h"), ("refund", "30d")]
WORDS = ["", "a", "ab", "B", "gold", "x y"]
NUMBERS = [-3, -1, 0, 1, 2, 5, 10, 0.5, 2.5, -1.25, 100.0]
PATTERNS = ["^a", "b$", "a.b", "[ab]+", "^$", "y"]


@dataclass(frozen=True)
class Env:
    """What an expression may read, by type: field paths, table outputs, generator variables."""

    leaves: dict[str, list[str]] = field(
        default_factory=lambda: {
            "num": [
                "customer.tenure",
                "customer.score",
                "history.contacts",
                "answers.age",
                "len(customer.cases)",
            ],
            "str": ["customer.name", "customer.address.city"],
            "bool": ["customer.vip"],
            "nums": ["customer.amounts"],
            "strs": ["customer.tags"],
        }
    )
    variables: tuple[str, ...] = ()

    def reading(self, kind: str, text: str, variable: str | None = None) -> Env:
        """This environment plus one more readable expression of the given type."""
        leaves = {k: [*v, text] if k == kind else v for k, v in self.leaves.items()}
        return Env(leaves, (*self.variables, variable) if variable else self.variables)


def lit(value: Any) -> str:
    """A literal as expression text."""
    return json.dumps(value)


def paren(text: str) -> str:
    """Expression text in parentheses, so that precedence never depends on the generator."""
    return f"({text})"


def choose(draw: st.DrawFn, options: list[Any]) -> Any:
    """One of the options, drawn."""
    return draw(st.sampled_from(options))


# -- expressions -------------------------------------------------------------------------------


def num_expr(draw: st.DrawFn, env: Env, depth: int) -> str:
    """A random number-typed expression."""

    def sub() -> str:
        return paren(num_expr(draw, env, depth - 1))

    pick = functools.partial(choose, draw)
    match draw(st.integers(0, 10 if depth > 0 else 2)):
        case 0:
            return lit(pick(NUMBERS))
        case 1:
            return pick(env.leaves["num"])
        case 2:
            event, within = pick(EVENTS)
            return f'count("{event}", within="{within}")'
        case 3 | 4:
            return f"{sub()} {pick(['+', '-', '*', '/', '%', '**'])} {sub()}"
        case 5:
            return pick(["-{}", "abs({})", "round({})", "round({}, 1)"]).format(sub())
        case 6:
            if draw(st.booleans()):
                return f"len({str_expr(draw, env, depth - 1)})"
            return f"len({pick([*env.leaves['nums'], *env.leaves['strs']])})"
        case 7:
            arguments = ", ".join(sub() for _ in range(draw(st.integers(2, 3))))
            return f"{pick(['min', 'max'])}({arguments})"
        case 8:
            return f"{pick(['min', 'max'])}({pick(env.leaves['nums'])})"
        case 9:
            return f"{pick(['days_since', 'hours_since'])}(customer.since)"
        case _:
            return pick(env.leaves["num"])


def str_expr(draw: st.DrawFn, env: Env, depth: int) -> str:
    """A random string-typed expression (never an enum field: literals would be checked)."""

    def sub() -> str:
        return paren(str_expr(draw, env, depth - 1))

    pick = functools.partial(choose, draw)
    match draw(st.integers(0, 3 if depth > 0 else 1)):
        case 0:
            return lit(pick(WORDS))
        case 1:
            return pick(env.leaves["str"])
        case 2:
            return f"{sub()} + {sub()}"
        case _:
            return f"{pick(['lower', 'upper'])}{sub()}"


def bool_expr(draw: st.DrawFn, env: Env, depth: int) -> str:
    """A random boolean expression over every construct of the language."""

    def num() -> str:
        return paren(num_expr(draw, env, depth - 1))

    def text() -> str:
        return paren(str_expr(draw, env, depth - 1))

    def sub() -> str:
        return paren(bool_expr(draw, env, depth - 1))

    pick = functools.partial(choose, draw)
    order = ["==", "!=", "<", "<=", ">", ">="]
    match draw(st.integers(0, 21 if depth > 0 else 2)):
        case 0:
            return pick([*env.leaves["bool"], "true", "false", "True", "False"])
        case 1:
            return f"missing({pick(sorted(SCHEMA))})"
        case 2:
            path, values = pick(sorted(ENUMS.items()))
            items = draw(st.lists(st.sampled_from(values), min_size=1, max_size=3))
            return pick(
                [
                    f"{path} == {lit(items[0])}",
                    f"{lit(items[0])} != {path}",
                    f"{path} in {lit(items)}",
                    f"{path} not in {lit(items)}",
                ]
            )
        case 3:
            return f"{num()} {pick(order)} {num()}"
        case 4:
            return f"{num()} {pick(order)} {num()} {pick(order)} {num()}"
        case 5:
            return f"{text()} {pick(order)} {text()}"
        case 6:
            numbers = draw(st.lists(st.sampled_from(NUMBERS), min_size=1, max_size=3))
            return f"{num()} {pick(['in', 'not in'])} {lit(numbers)}"
        case 7:
            words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=3))
            return f"{text()} {pick(['in', 'not in'])} {lit(words)}"
        case 8:
            return f"{text()} {pick(['in', 'not in'])} {text()}"
        case 9:
            return f"{num()} {pick(['in', 'not in'])} {pick(env.leaves['nums'])}"
        case 10:
            return f"{text()} {pick(['in', 'not in'])} {pick(env.leaves['strs'])}"
        case 11 | 12:
            operands = [sub() for _ in range(draw(st.integers(2, 3)))]
            return f" {pick(['and', 'or'])} ".join(operands)
        case 13:
            return f"not {sub()}"
        case 14:
            return f"{pick(['contains', 'startswith', 'endswith'])}({text()}, {text()})"
        case 15:
            return f"contains({pick(env.leaves['nums'])}, {num()})"
        case 16:
            return f"contains({pick(env.leaves['strs'])}, {text()})"
        case 17:
            return f"matches({text()}, {lit(pick(PATTERNS))})"
        case 18:
            name = next(n for n in ("x", "item", "v", "w") if n not in env.variables)
            kind, items = pick(
                [
                    ("num", pick(env.leaves["nums"])),
                    ("str", pick(env.leaves["strs"])),
                    ("case", "customer.cases"),
                ]
            )
            inner = (
                env.reading("str", f"{name}.status", name).reading("num", f"{name}.priority")
                if kind == "case"
                else env.reading(kind, name, name)
            )
            body = bool_expr(draw, inner, depth - 1)
            return f"{pick(['any', 'all'])}({body} for {name} in {items})"
        case 19:
            return f"{sub()} {pick(['==', '!='])} {sub()}"
        case 20:
            return f"customer.since {pick(order)} now()"
        case _:
            return f"{pick(['days_since', 'hours_since'])}(customer.since) {pick(order)} {num()}"


def condition(draw: st.DrawFn, env: Env, depth: int = 3) -> str | bool:
    """A ``when:``: usually an expression, sometimes a YAML boolean."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.booleans())
    return bool_expr(draw, env, depth)


def template(draw: st.DrawFn, env: Env) -> str:
    """A ``message:``/``say:`` text with zero to two ``{expression}`` parts and escaped braces."""
    parts = ["Note"]
    for _ in range(draw(st.integers(0, 2))):
        maker = draw(st.sampled_from([num_expr, str_expr, bool_expr]))
        parts.append(f"{{{maker(draw, env, 1)}}}")
    if draw(st.booleans()):
        parts.append("{{literal}}")
    return " ".join(parts)


# -- decision tables ---------------------------------------------------------------------------


def number_test(draw: st.DrawFn) -> str:
    """One unary test on a number, as cell text."""
    pick = functools.partial(choose, draw)
    low, high = sorted(draw(st.lists(st.sampled_from(NUMBERS), min_size=2, max_size=2)))
    return pick(
        [
            lit(low),
            f"{pick(['<', '<=', '>', '>='])} {lit(high)}",
            f"{pick(['[', '('])}{lit(low)}..{lit(high)}{pick([']', ')'])}",
            lit(sorted({low, high})),
        ]
    )


def word_test(draw: st.DrawFn, words: list[str], ordered: bool) -> str:
    """One unary test on a string, as cell text (comparisons only where ``ordered``)."""
    chosen = draw(st.lists(st.sampled_from(words), min_size=1, max_size=2))
    forms = [lit(chosen[0]), lit(chosen)]
    if ordered:
        forms.append(f"{choose(draw, ['<', '<=', '>', '>='])} {lit(chosen[0])}")
    return choose(draw, forms)


def input_cell(draw: st.DrawFn, kind: str) -> Any:
    """A random input cell for an input of the given kind (num, str, bool or an enum field)."""
    pick = functools.partial(choose, draw)
    if draw(st.integers(0, 3)) == 0:
        return "-"
    if kind == "bool":
        value = draw(st.booleans())
        return pick([value, lit(value), f"not({lit(value)})"])
    count = draw(st.integers(1, 2))
    if kind == "num":
        direct: Any = pick(NUMBERS)
        tests = [number_test(draw) for _ in range(count)]
    else:
        words = ENUMS.get(kind, WORDS)
        direct = draw(st.lists(st.sampled_from(words), min_size=1, max_size=2))
        tests = [word_test(draw, words, ordered=kind == "str") for _ in range(count)]
    return pick([direct, ", ".join(tests), f"not({', '.join(tests)})"])


OUTPUT_VALUES = {
    "num": [0, 1, 2, 5, 2.5, 10],
    "str": ["low", "mid", "high"],
    "obj": [{"a": 1}, {"a": 2, "b": "x"}],
}


@st.composite
def table(draw: st.DrawFn, index: int, env: Env) -> tuple[dict[str, Any], Env]:
    """A random decision table, and the environment extended with the outputs rules may read."""
    table_id = draw(st.sampled_from([f"t{index}", f"tab-{index}"]))
    hit = draw(
        st.sampled_from(
            ["unique", "any", "first", "priority", "collect", "rule_order", "output_order"]
        )
    )
    aggregate = choose(draw, [None, "sum", "min", "max", "count"]) if hit == "collect" else None
    sources = [("num", path) for path in env.leaves["num"]] + [
        ("str", "customer.name"),
        ("customer.tier", "customer.tier"),
        ("answers.choice", "answers.choice"),
        ("bool", "customer.vip"),
        ("num", "len(customer.tags)"),
        ("num", "customer.tenure + 1"),
        ("num", "customer.score / customer.tenure"),
        ("num", "customer.score * 2"),
    ]
    inputs = draw(st.lists(st.sampled_from(sources), min_size=1, max_size=3))
    names = draw(
        st.lists(
            st.sampled_from(["out", "limit", "level", "x_1"]), min_size=1, max_size=2, unique=True
        )
    )
    kinds = [
        draw(st.sampled_from(["num"] if aggregate else ["num", "num", "str", "obj"])) for _ in names
    ]
    pools = [draw(st.permutations(OUTPUT_VALUES[kind])) for kind in kinds]
    nullable = hit in ("unique", "any", "first")
    # Outputs not ranked by their values may be computed from what earlier tables give.
    computed = hit not in ("priority", "output_order")

    def output(kind: str, pool: list[Any], row: int) -> Any:
        if nullable and row and draw(st.integers(0, 5)) == 0:
            return None
        if computed and kind != "obj" and draw(st.integers(0, 3)) == 0:
            if kind == "num":
                return f"{{{num_expr(draw, env, 1)}}}"
            return draw(st.sampled_from([f"{{{str_expr(draw, env, 1)}}}", template(draw, env)]))
        return choose(draw, pool)

    rows = [
        [input_cell(draw, kind) for kind, _ in inputs]
        + [output(kind, pool, row) for kind, pool in zip(kinds, pools, strict=True)]
        for row in range(draw(st.integers(1, 5)))
    ]
    outputs: list[Any] = [
        {"name": n, "values": pool} if hit in ("priority", "output_order") else n
        for n, pool in zip(names, pools, strict=True)
    ]
    document: dict[str, Any] = {
        "id": table_id,
        "hit": hit,
        "inputs": [text for _, text in inputs],
        "outputs": outputs,
        "rows": rows,
    }
    if aggregate:
        document["aggregate"] = aggregate
    for name, kind in zip(names, kinds, strict=True):
        if kind != "obj":
            listed = hit in ("collect", "rule_order", "output_order") and not aggregate
            env = env.reading(f"{kind}s" if listed else kind, f"tables.{table_id}.{name}")
    return document, env


# -- trees -------------------------------------------------------------------------------------


@st.composite
def tree(draw: st.DrawFn, index: int, env: Env) -> dict[str, Any]:
    """A small random tree: a spanning tree plus extra forward edges, so acyclic and connected."""
    size = draw(st.integers(1, 5))
    parents = [draw(st.integers(0, child - 1)) for child in range(1, size)]
    nodes: dict[str, Any] = {}
    for i in range(size):
        targets = [child for child, parent in enumerate(parents, 1) if parent == i]
        if not targets:
            node: dict[str, Any] = {"outcome": draw(st.sampled_from(["refund", "decline"]))}
            if draw(st.booleans()):
                node["say"] = template(draw, env)
            if draw(st.booleans()):
                node["queue"] = "billing"
            nodes[f"n{i}"] = node
            continue
        targets += draw(st.lists(st.integers(i + 1, size - 1), max_size=2))
        branches = [
            {"goto": f"n{target}", "when": condition(draw, env, 2)}
            for target in draw(st.permutations(targets))
        ]
        if draw(st.booleans()):
            del branches[-1]["when"]
        nodes[f"n{i}"] = {"next": branches}
        if draw(st.booleans()):
            nodes[f"n{i}"].update(ask="What now?", answer=draw(st.sampled_from(ANSWER_FIELDS)))
    return {"id": f"tree-{index}", "start": "n0", "nodes": nodes}


# -- documents ---------------------------------------------------------------------------------


@st.composite
def documents(draw: st.DrawFn, rules: int = 4, tables: int = 0, trees: int = 0) -> dict[str, Any]:
    """A random valid document with up to the given number of rules per section, tables, trees."""
    env = Env()
    context = {
        path: spec["type"] if len(spec) == 1 and draw(st.booleans()) else spec
        for path, spec in SCHEMA.items()
    }
    document: dict[str, Any] = {"ruleset": "generated", "context": context}
    if tables:
        document["tables"] = []
        for i in range(draw(st.integers(1, tables))):
            generated, env = draw(table(i, env))
            document["tables"].append(generated)

    def count() -> int:
        return draw(st.integers(0, rules))

    document["eligibility"] = [
        {
            "id": f"offer-{i}",
            "when": condition(draw, env),
            "offer": draw(st.sampled_from(["waive-fee", "upgrade"])),
        }
        for i in range(count())
    ]
    document["escalation"] = [
        {
            "id": f"route-{i}",
            "when": condition(draw, env),
            "queue": "q",
            "priority": draw(st.integers(1, 3)),
        }
        for i in range(count())
    ]
    document["alerts"] = []
    for i in range(count()):
        alert = {
            "id": f"alert-{i}",
            "when": condition(draw, env),
            "severity": draw(st.sampled_from(["info", "warning", "critical"])),
            "message": template(draw, env),
        }
        if draw(st.booleans()):
            alert["on"] = draw(
                st.lists(
                    st.sampled_from(["decision", "context_change", "event"]),
                    min_size=1,
                    max_size=3,
                    unique=True,
                )
            )
        document["alerts"].append(alert)
    if trees:
        document["trees"] = [draw(tree(i, env)) for i in range(draw(st.integers(1, trees)))]
    return document


# -- inputs ------------------------------------------------------------------------------------


def _timestamps() -> st.SearchStrategy[str]:
    moments = st.datetimes(datetime(2020, 1, 1), datetime(2027, 1, 1))
    zones = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))])
    return st.builds(
        lambda m, z: m.replace(microsecond=0, tzinfo=z).isoformat().replace("+00:00", "Z"),
        moments,
        zones,
    )


# The largest floats make arithmetic overflow (unknown, and an entry in errors).
NUMBER = st.one_of(
    st.integers(-5, 100),
    st.floats(-1e3, 1e3),
    st.sampled_from([0, 0.5, 2.5, -0.5, 1.5e308, -1e308]),
)
VALID: dict[str, st.SearchStrategy[Any]] = {
    "customer.tier": st.sampled_from(TIERS),
    "customer.name": st.sampled_from([*WORDS, "Gold", "bab", "ayb"]),
    "customer.tenure": st.integers(-5, 100),
    "customer.score": NUMBER,
    "customer.vip": st.booleans(),
    "customer.amounts": st.lists(NUMBER, max_size=4),
    "customer.tags": st.lists(st.sampled_from(WORDS), max_size=3),
    "customer.cases": st.lists(
        st.fixed_dictionaries(
            {"status": st.sampled_from(["open", "closed"]), "priority": st.integers(0, 3)}
        ),
        max_size=3,
    ),
    "customer.since": _timestamps(),
    "customer.address.city": st.sampled_from(WORDS),
    "history.contacts": st.integers(0, 12),
    "answers.age": st.integers(-1, 90),
    "answers.choice": st.sampled_from(CHOICES),
}
WRONG: dict[str, st.SearchStrategy[Any]] = {
    "customer.tier": st.sampled_from(["diamond", "Gold", 3, True]),
    "customer.name": st.sampled_from([7, True, ["a"], {"a": 1}]),
    "customer.tenure": st.sampled_from(["12", True, 2.5, [1]]),
    "customer.score": st.sampled_from(["0.9", False, [1.0], {}, math.inf, -math.inf]),
    "customer.vip": st.sampled_from(["true", 1, 0, "yes"]),
    "customer.amounts": st.one_of(
        st.sampled_from(["1, 2", 5]),
        st.lists(st.one_of(NUMBER, st.sampled_from(["x", True, None])), min_size=1, max_size=4),
    ),
    "customer.cases": st.one_of(
        st.sampled_from([{}, "open"]),
        st.lists(
            st.sampled_from(
                [
                    {"status": "open"},
                    {"status": "open", "priority": None},
                    {"priority": "high"},
                    {"status": 1, "priority": 1},
                    {"status": "closed", "priority": 2, "extra": 1},
                    None,
                    "open",
                ]
            ),
            min_size=1,
            max_size=3,
        ),
    ),
    "customer.tags": st.one_of(
        st.sampled_from(["a", 5]),
        st.lists(
            st.one_of(st.sampled_from(WORDS), st.sampled_from([1, False, None])),
            min_size=1,
            max_size=3,
        ),
    ),
    "customer.since": st.sampled_from(
        ["yesterday", 5, "2026-13-01T00:00:00Z", "2026-02-30T10:00:00Z", "2026-02-03T10:00:00"]
    ),
    "customer.address.city": st.sampled_from([3, ["a"]]),
    "history.contacts": st.sampled_from(["3", False, 1.5]),
    "answers.age": st.sampled_from(["12", True, 7.5]),
    "answers.choice": st.sampled_from(["maybe", "Yes", 1, False]),
}


@st.composite
def inputs(draw: st.DrawFn, document: dict[str, Any]) -> dict[str, Any]:
    """Evaluation arguments: each field present, absent, null or wrong; answers; now; counters."""
    context: dict[str, Any] = {}
    answers: dict[str, Any] = {}
    states = st.sampled_from(
        ["valid"] * draw(st.sampled_from([1, 4, 40])) + ["absent", "null", "wrong"]
    )
    for path in SCHEMA:
        state = draw(states)
        if state == "absent":
            continue
        root, *middle, leaf = path.split(".")
        value = None if state == "null" else draw((VALID if state == "valid" else WRONG)[path])
        parent = answers if root == "answers" else context.setdefault(root, {})
        for name in middle:  # nested objects, created by the first of their fields drawn
            parent = parent.setdefault(name, {})
        parent[leaf] = value
    if draw(st.integers(0, 9)) == 0:
        context["customer"] = draw(st.sampled_from([None, "gold", 5, []]))
    trees = [t["id"] for t in document.get("trees", [])]
    return {
        "context": context,
        "answers": answers if answers or draw(st.booleans()) else None,
        "now": draw(
            st.one_of(
                st.none(),
                st.datetimes(datetime(2024, 1, 1), datetime(2028, 1, 1), timezones=st.just(UTC)),
            )
        ),
        "counters": draw(
            st.one_of(
                st.none(),
                st.dictionaries(
                    st.sampled_from([event for event, _ in EVENTS]),
                    st.dictionaries(st.sampled_from(["7d", "1h", "30d"]), st.integers(0, 5)),
                    max_size=3,
                ),
            )
        ),
        "tree": draw(st.sampled_from([None, *trees])),
    }


# -- comparison --------------------------------------------------------------------------------

STEP_KEYS = ("tree", "node", "ask", "answer", "outcome", "say", "queue")


def arithmetic(error: dict[str, str]) -> bool:
    """Whether an entry of ``errors`` reports failed arithmetic (docs/language.md)."""
    return " by zero in `" in error["error"] or " is not a finite number" in error["error"]


def compared(decision: dict[str, Any]) -> dict[str, Any]:
    """The parts of a decision the reference covers, in a form two decisions compare by."""
    step = decision["next_step"]
    if step is not None:
        step = {
            **{key: step.get(key) for key in STEP_KEYS},
            "path": step.get("path") if "outcome" in step else None,
            "error": "error" in step,
        }
    return {
        "eligible": [offer["rule"] for offer in decision["eligible"]],
        "escalation": decision["escalation"] and decision["escalation"]["rule"],
        "alerts": sorted((alert["rule"], alert["message"]) for alert in decision["alerts"]),
        "tables": decision["tables"],
        "table_errors": sorted(
            error["table"]
            for error in decision["errors"]
            if "table" in error and not arithmetic(error)
        ),
        "arithmetic_errors": sorted(
            json.dumps(error, sort_keys=True) for error in decision["errors"] if arithmetic(error)
        ),
        "next_step": step,
        "missing_fields": decision["missing_fields"],
        "invalid_fields": sorted(invalid["field"] for invalid in decision["invalid_fields"]),
    }


def assert_agrees(document: dict[str, Any], cases: list[dict[str, Any]], as_text: bool) -> None:
    """Compile the document once and check every case's decision against the reference."""
    # Not strict: overlapping rows of a unique table are evaluated, not refused.
    compiled = compile_ruleset(json.dumps(document) if as_text else document, strict=False)
    for case in cases:
        note(f"inputs: {case!r}")
        engine = compiled.evaluate(
            case["context"],
            answers=case["answers"],
            now=case["now"],
            counters=case["counters"],
            tree=case["tree"],
        ).to_dict()
        expected = decide(
            document,
            case["context"],
            answers=case["answers"],
            now=case["now"],
            counters=case["counters"],
            tree=case["tree"],
        )
        assert compared(engine) == compared(expected)
        if any(case[k] is not None for k in ("answers", "now", "counters", "tree")):
            # The context alone: for a document without trees, the generated entry point's
            # own reads (CompiledRuleset.entry).
            plain = compiled.evaluate(case["context"]).to_dict()
            assert compared(plain) == compared(decide(document, case["context"]))


def tuned(max_examples: int) -> settings:
    """Settings for one property: its example budget (the module runs in about 40 s), no
    deadline (compiling takes a while), and one shrunk counterexample per failure."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        report_multiple_bugs=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@st.composite
def scenarios(draw: st.DrawFn, **sizes: int) -> tuple[dict[str, Any], list[dict[str, Any]], bool]:
    """A document, a few inputs to evaluate it on, and whether to hand it over as JSON text."""
    document = draw(documents(**sizes))
    return document, draw(st.lists(inputs(document), min_size=1, max_size=4)), draw(st.booleans())


@tuned(250)
@given(scenarios(rules=4))
def test_rules_agree_with_reference(scenario: tuple[dict[str, Any], list[Any], bool]) -> None:
    """Eligibility, escalation and alert rules decide exactly as the reference does."""
    assert_agrees(*scenario)


@tuned(200)
@given(scenarios(rules=2, tables=3))
def test_tables_agree_with_reference(scenario: tuple[dict[str, Any], list[Any], bool]) -> None:
    """Decision tables under every hit policy, and rules reading them, match the reference."""
    assert_agrees(*scenario)


@tuned(150)
@given(scenarios(rules=1, tables=2, trees=2))
def test_trees_agree_with_reference(scenario: tuple[dict[str, Any], list[Any], bool]) -> None:
    """Tree walks reach the same question, outcome or dead end as the reference's."""
    assert_agrees(*scenario)


# -- anchors: the documented semantics, so the two cannot drift together -----------------------

ANCHOR_CONTEXT = {"customer": {"tenure": 5, "vip": False, "amounts": [], "name": "ab"}}


@pytest.mark.parametrize(
    ("when", "fires"),
    [
        pytest.param("customer.score > 1 and false", False, id="unknown-and-false"),
        pytest.param("customer.score > 1 and true", None, id="unknown-and-true"),
        pytest.param("customer.score > 1 or true", True, id="unknown-or-true"),
        pytest.param("customer.score > 1 or false", None, id="unknown-or-false"),
        pytest.param("not (customer.score > 1)", None, id="not-unknown"),
        pytest.param("missing(customer.score)", True, id="missing-is-never-unknown"),
        pytest.param('count("payment_failed", within="7d") == 0', True, id="absent-counter-is-0"),
        pytest.param("any(x > 1 for x in customer.amounts)", False, id="any-of-empty"),
        pytest.param("all(x > 1 for x in customer.amounts)", True, id="all-of-empty"),
        pytest.param("customer.tenure / 0 == 1", None, id="division-by-zero"),
        pytest.param("customer.tenure % 0 == 1", None, id="modulo-by-zero"),
        pytest.param("1 < customer.score < 3", None, id="chained-with-unknown"),
        pytest.param("3 < customer.tenure < customer.score", None, id="chained-true-then-unknown"),
        pytest.param(
            "9 < customer.tenure < customer.score", False, id="chained-false-then-unknown"
        ),
        pytest.param("max(customer.amounts) > 0", None, id="max-of-empty"),
        pytest.param('"a" in customer.name', True, id="substring"),
        pytest.param("customer.vip == false", True, id="boolean-equality"),
    ],
)
def test_documented_three_valued_logic(when: str, fires: bool | None) -> None:
    """Both interpreters give the result docs/language.md tabulates (None: unknown, not fired)."""
    document = {
        "ruleset": "anchor",
        "context": SCHEMA,
        "eligibility": [
            {"id": "r", "when": when, "offer": "o"},
            {"id": "n", "when": f"not ({when})", "offer": "o"},
        ],
    }
    expected = {True: ["r"], False: ["n"], None: []}[fires]
    engine = compile_ruleset(document).evaluate(ANCHOR_CONTEXT).to_dict()
    assert [offer["rule"] for offer in engine["eligible"]] == expected
    assert [offer["rule"] for offer in decide(document, ANCHOR_CONTEXT)["eligible"]] == expected


TABLE = {"id": "t", "hit": "collect", "inputs": ["customer.tenure"], "outputs": ["row"]}


@pytest.mark.parametrize(
    ("cell", "tenure", "matches"),
    [
        pytest.param("-", None, True, id="dash-matches-unknown"),
        pytest.param("5", None, False, id="literal-does-not-match-unknown"),
        pytest.param("not(5)", None, False, id="not-does-not-match-unknown"),
        pytest.param(5, 5, True, id="yaml-number"),
        pytest.param("<= 5", 5, True, id="at-most"),
        pytest.param("< 5", 5, False, id="below"),
        pytest.param("[1..5]", 5, True, id="closed-range-includes-end"),
        pytest.param("[1..5)", 5, False, id="half-open-range-excludes-end"),
        pytest.param("(5..9]", 5, False, id="open-range-excludes-start"),
        pytest.param("[1, 5]", 5, True, id="json-list"),
        pytest.param([1, 4], 5, False, id="yaml-list"),
        pytest.param("1, >= 5", 5, True, id="comma-list"),
        pytest.param("not(1, [4..6])", 5, False, id="not-of-range"),
        pytest.param("not(1, 2)", 5, True, id="not-of-literals"),
    ],
)
def test_documented_unary_tests(cell: Any, tenure: int | None, matches: bool) -> None:
    """Both interpreters match a table cell against a value as docs/language.md tabulates."""
    document = {
        "ruleset": "anchor",
        "context": SCHEMA,
        "tables": [{**TABLE, "rows": [[cell, "hit"]]}],
    }
    context = {"customer": {"tenure": tenure}}
    expected = {"row": ["hit"] if matches else []}
    assert compile_ruleset(document).evaluate(context).to_dict()["tables"]["t"] == expected
    assert decide(document, context)["tables"]["t"] == expected


GRADES = {
    "id": "t",
    "inputs": ["customer.tenure"],
    "outputs": [{"name": "grade", "values": ["a", "b", "c"]}],
    "rows": [[">= 1", "b"], ["< 3", "c"], [">= 5", "a"], ["-", "b"]],
}
POINTS = {
    "id": "t",
    "hit": "collect",
    "inputs": ["customer.tenure"],
    "outputs": ["points"],
    "rows": [[">= 1", 2], ["< 3", 5], [">= 5", 4]],
}


@pytest.mark.parametrize(
    ("table", "tenure", "outputs"),
    [
        pytest.param({**GRADES, "hit": "unique"}, 5, None, id="unique-several-match"),
        pytest.param({**GRADES, "hit": "unique"}, None, {"grade": "b"}, id="unique-one-matches"),
        pytest.param({**GRADES, "hit": "first"}, 5, {"grade": "b"}, id="first"),
        pytest.param({**GRADES, "hit": "priority"}, 5, {"grade": "a"}, id="priority"),
        pytest.param({**GRADES, "hit": "collect"}, 5, {"grade": ["b", "a", "b"]}, id="collect"),
        pytest.param(
            {**GRADES, "hit": "rule_order"}, 5, {"grade": ["b", "a", "b"]}, id="rule-order"
        ),
        pytest.param(
            {**GRADES, "hit": "output_order"}, 5, {"grade": ["a", "b", "b"]}, id="output-order"
        ),
        pytest.param({**GRADES, "hit": "any"}, 5, None, id="any-rows-differ"),
        pytest.param({**GRADES, "hit": "any"}, 4, {"grade": "b"}, id="any-rows-agree"),
        pytest.param(
            {**GRADES, "hit": "collect", "aggregate": "count"}, 5, {"grade": 3}, id="collect-count"
        ),
        pytest.param({**POINTS, "aggregate": "sum"}, 5, {"points": 6}, id="sum"),
        pytest.param({**POINTS, "aggregate": "min"}, 5, {"points": 2}, id="min"),
        pytest.param({**POINTS, "aggregate": "max"}, 5, {"points": 4}, id="max"),
        pytest.param({**POINTS, "aggregate": "count"}, None, {"points": 0}, id="count-of-none"),
        pytest.param({**POINTS, "aggregate": "sum"}, None, {"points": None}, id="sum-of-none"),
        pytest.param({**POINTS, "aggregate": "max"}, None, {"points": None}, id="max-of-none"),
        pytest.param(POINTS, None, {"points": []}, id="collect-of-none"),
    ],
)
def test_documented_hit_policies(
    table: dict[str, Any], tenure: int | None, outputs: dict[str, Any] | None
) -> None:
    """Both interpreters give each hit policy's documented output (None: no outputs)."""
    document = {"ruleset": "anchor", "context": SCHEMA, "tables": [table]}
    context = {"customer": {"tenure": tenure}}
    compiled = compile_ruleset(document, strict=False)  # GRADES' rows overlap
    assert compiled.evaluate(context).to_dict()["tables"]["t"] == outputs
    assert decide(document, context)["tables"]["t"] == outputs


ASKING = {
    "id": "ask",
    "start": "q",
    "nodes": {
        "q": {
            "ask": "Did the refund arrive?",
            "answer": "answers.choice",
            "next": [{"goto": "end"}],
        },
        "end": {"outcome": "close"},
    },
}


@pytest.mark.parametrize(
    ("answers", "node"),
    [
        pytest.param(None, "q", id="no-answers"),
        pytest.param({}, "q", id="answer-absent"),
        pytest.param({"choice": None}, "q", id="answer-null"),
        pytest.param({"choice": "yes"}, "end", id="answer-given"),
    ],
)
def test_documented_question_stops_the_walk(answers: dict[str, Any] | None, node: str) -> None:
    """A walk stops at a question until its answer is given, even if no branch reads it."""
    document = {"ruleset": "anchor", "context": SCHEMA, "trees": [ASKING]}
    engine = compile_ruleset(document).evaluate({}, answers=answers).to_dict()
    assert engine["next_step"]["node"] == node
    assert decide(document, {}, answers=answers)["next_step"]["node"] == node

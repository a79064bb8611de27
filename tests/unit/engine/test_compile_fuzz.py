"""Compiling never fails but with RulesetError, whatever the input.

Random and hostile expression text, random Python syntax trees, random document texts and
random mutations of a valid document go through ``compile_ruleset``: it either succeeds or
raises ``RulesetError`` carrying at least one problem with a message — no other exception, no
hang — and a document it accepts evaluates without raising anything but ``EvaluationError``.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import json
import re
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import EvaluationError, RulesetError, compile_ruleset
from engine.source import resolve_plain

CONTEXT = {
    "customer.tier": {"type": "string", "enum": ["bronze", "silver", "gold", "platinum"]},
    "customer.tenure": "integer",
    "customer.score": "number",
    "customer.tags": {"type": "list", "items": "string"},
    "customer.cases": {"type": "list", "items": {"status": "string", "priority": "integer"}},
    "answers.age": "integer",
}
VALID: dict[str, Any] = {
    "ruleset": "fuzz",
    "context": CONTEXT,
    "eligibility": [
        {
            "id": "offer",
            "when": 'customer.tier == "gold"',
            "offer": "waive-fee",
            "params": {"max": 25},
        }
    ],
    "escalation": [{"id": "route", "when": "customer.score > 0.8", "queue": "q", "priority": 1}],
    "alerts": [
        {
            "id": "alert",
            "when": "customer.tenure < 2",
            "severity": "warning",
            "message": "New customer ({customer.tenure} months)",
            "on": ["decision"],
        }
    ],
    "tables": [
        {
            "id": "limit",
            "hit": "first",
            "inputs": ["customer.tier", "customer.score"],
            "outputs": ["amount"],
            "rows": [['"gold"', "[0..1)", 500], ["-", "-", 50]],
        }
    ],
    "trees": [
        {
            "id": "dispute",
            "start": "ask",
            "nodes": {
                "ask": {
                    "ask": "How old?",
                    "answer": "answers.age",
                    "next": [{"when": "answers.age > 60", "goto": "old"}, {"goto": "refund"}],
                },
                "old": {"outcome": "decline"},
                "refund": {"outcome": "refund", "say": "Refund up to {tables.limit.amount}"},
            },
        }
    ],
    "tests": [
        {
            "name": "gold",
            "context": {"customer": {"tier": "gold", "score": 0.5}},
            "expect": {"eligible": ["offer"], "tables": {"limit": {"amount": 500}}},
        }
    ],
}
SAMPLE_CONTEXTS: list[dict[str, Any]] = [
    {},
    {
        "customer": {
            "tier": "gold",
            "tenure": 1,
            "score": 0.9,
            "tags": ["a"],
            "cases": [{"status": "open", "priority": 1}],
        }
    },
    {"customer": {"tier": 5, "tenure": "x", "score": None, "tags": "a", "cases": [3]}},
]


def compiles_or_refuses(source: Any, *, from_text: bool | None = None) -> None:
    """Compile; a refusal must be a RulesetError with located, non-empty problems, and an
    accepted document must evaluate without raising anything but EvaluationError."""
    from_text = isinstance(source, str | bytes) if from_text is None else from_text
    try:
        compiled = compile_ruleset(source)
    except RulesetError as error:
        assert error.errors, "a RulesetError must carry at least one problem"
        for problem in error.errors:
            assert isinstance(problem.message, str)
            assert problem.message.strip()
            if from_text:
                assert problem.line is not None and problem.line >= 1, problem
        return
    for context in SAMPLE_CONTEXTS:
        with contextlib.suppress(EvaluationError):
            compiled.evaluate(context, answers={"age": 61})


def with_expression(source: str, slot: str) -> dict[str, Any]:
    """The valid document with ``source`` placed as the expression in one slot."""
    document = copy.deepcopy(VALID)
    match slot:
        case "eligibility":
            document["eligibility"][0]["when"] = source
        case "escalation":
            document["escalation"][0]["when"] = source
        case "alert":
            document["alerts"][0]["when"] = source
        case "message":
            document["alerts"][0]["message"] = f"Note {{{source}}} end"
        case "table":
            document["tables"][0]["inputs"][1] = source
        case "branch":
            document["trees"][0]["nodes"]["ask"]["next"][0]["when"] = source
        case "say":
            document["trees"][0]["nodes"]["refund"]["say"] = f"Say {{{source}}}"
    return document


SLOTS = st.sampled_from(["eligibility", "escalation", "alert", "message", "table", "branch", "say"])
TOKENS = [
    "customer.tier",
    "customer.tenure",
    "customer.tags",
    "customer.cases",
    "answers.age",
    "tables.limit.amount",
    "tables.limit",
    "tables",
    "customer",
    "x",
    "x.status",
    "_",
    "0",
    "1",
    "-1",
    "2.5",
    "1e308",
    "1e999",
    "9" * 400,
    "0x1F",
    "0o7",
    "1_000",
    "1j",
    ".5",
    '"gold"',
    "'silver'",
    '""',
    "true",
    "false",
    "null",
    "None",
    "True",
    "...",
    "and",
    "or",
    "not",
    "in",
    "not in",
    "is",
    "is not",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "**",
    "//",
    "@",
    "~",
    "<<",
    ">>",
    "&",
    "|",
    "^",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    ".",
    ";",
    "=",
    ":=",
    "->",
    "lambda",
    "lambda:",
    "if",
    "else",
    "for",
    "x in",
    "async",
    "await",
    "yield",
    "import",
    "from",
    "def",
    "class",
    "del",
    "global",
    "__import__",
    "__import__('os')",
    "__class__",
    "().__class__",
    "__builtins__",
    ".__subclasses__()",
    "__dict__",
    "globals()",
    "locals()",
    "vars()",
    "eval",
    "exec",
    "compile",
    "open",
    "getattr",
    "setattr",
    "breakpoint()",
    "print",
    "type",
    "object",
    "len(",
    "abs(",
    "min(",
    "max(",
    "round(",
    "lower(",
    "contains(",
    "matches(",
    "missing(",
    "count(",
    "any(",
    "all(",
    "now()",
    "days_since(",
    'within="7d"',
    "for x in",
    'f"{1}"',
    "f'{x!r}'",
    'b"x"',
    'r"\\d"',
    '"""',
    '"unterminated',
    "'",
    "\\",
    "\\n",
    "\n",
    "\t",
    "\r",
    "\x00",
    "\x0b",
    "#",
    "é",
    "𝟘",
    "ﬁ",
    "\u202e",
    "\ufeff",
    "\u00a0",
    "(" * 200,
    ")" * 200,
    "(" * 1000,
    "[" * 40,
    "not " * 40,
    "-" * 50,
    "x" * 2100,
]
TOKEN_SOURCES = st.lists(st.sampled_from(TOKENS), max_size=14).flatmap(
    lambda tokens: st.sampled_from([" ".join(tokens), "".join(tokens)])
)


@settings(max_examples=400, deadline=None)
@given(source=st.text(max_size=80), slot=SLOTS)
def test_random_text_expressions_compile_or_refuse(source: str, slot: str) -> None:
    """Arbitrary Unicode text as an expression is refused with RulesetError or compiles."""
    compiles_or_refuses(with_expression(source, slot))


@settings(max_examples=600, deadline=None)
@given(source=TOKEN_SOURCES, slot=SLOTS)
def test_token_soup_expressions_compile_or_refuse(source: str, slot: str) -> None:
    """Expressions built from language and attack tokens are refused cleanly or compile."""
    compiles_or_refuses(with_expression(source, slot))


@settings(max_examples=150, deadline=None)
@given(source=TOKEN_SOURCES, slot=SLOTS, encoding=st.sampled_from(["json", "yaml"]))
def test_token_soup_in_document_text_compiles_or_refuses(
    source: str, slot: str, encoding: str
) -> None:
    """The same expressions inside YAML or JSON text are refused with a line, or compile."""
    document = with_expression(source, slot)
    text = json.dumps(document) if encoding == "json" else yaml.safe_dump(document)
    compiles_or_refuses(text)


# -- random Python syntax trees ----------------------------------------------------------------

NAMES = [
    "customer",
    "tables",
    "answers",
    "x",
    "true",
    "null",
    "len",
    "any",
    "open",
    "__import__",
    "__builtins__",
    "eval",
    "count",
    "missing",
    "matches",
    "now",
]
ATTRIBUTES = [
    "tier",
    "tenure",
    "tags",
    "limit",
    "amount",
    "status",
    "__class__",
    "__dict__",
    "__globals__",
    "upper",
    "format",
    "mro",
]


def _load(name: str) -> ast.Name:
    return ast.Name(id=name, ctx=ast.Load())


def _loop(target: str, source: ast.expr) -> list[ast.comprehension]:
    return [
        ast.comprehension(
            target=ast.Name(id=target, ctx=ast.Store()), iter=source, ifs=[], is_async=0
        )
    ]


def _lambda(body: ast.expr) -> ast.Lambda:
    arguments = ast.arguments(
        posonlyargs=[], args=[ast.arg(arg="x")], kwonlyargs=[], kw_defaults=[], defaults=[]
    )
    return ast.Lambda(args=arguments, body=body)


CONSTANTS = st.one_of(
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.binary(max_size=4),
    st.booleans(),
    st.none(),
    st.just(Ellipsis),
    st.complex_numbers(max_magnitude=10, allow_nan=False),
).map(lambda value: ast.Constant(value=value))
LEAVES = st.one_of(CONSTANTS, st.sampled_from(NAMES).map(_load))
OPERATORS = [
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Mod,
    ast.Pow,
    ast.FloorDiv,
    ast.MatMult,
    ast.LShift,
    ast.RShift,
    ast.BitAnd,
    ast.BitOr,
    ast.BitXor,
]
COMPARISONS = [
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Is,
    ast.IsNot,
]


def _grow(children: st.SearchStrategy[ast.expr]) -> st.SearchStrategy[ast.expr]:
    """Every kind of Python expression node over the given children."""
    pairs = st.lists(children, min_size=2, max_size=3)
    return st.one_of(
        st.builds(
            ast.Attribute, value=children, attr=st.sampled_from(ATTRIBUTES), ctx=st.just(ast.Load())
        ),
        st.builds(
            lambda a, op, b: ast.BinOp(left=a, op=op(), right=b),
            children,
            st.sampled_from(OPERATORS),
            children,
        ),
        st.builds(
            lambda op, a: ast.UnaryOp(op=op(), operand=a),
            st.sampled_from([ast.Not, ast.USub, ast.UAdd, ast.Invert]),
            children,
        ),
        st.builds(
            lambda op, values: ast.BoolOp(op=op(), values=values),
            st.sampled_from([ast.And, ast.Or]),
            pairs,
        ),
        st.builds(
            lambda values, ops: ast.Compare(
                left=values[0], ops=[op() for op in ops], comparators=values[1 : len(ops) + 1]
            ),
            st.lists(children, min_size=4, max_size=4),
            st.lists(st.sampled_from(COMPARISONS), min_size=1, max_size=3),
        ),
        st.builds(
            lambda f, args, keyword: ast.Call(
                func=f,
                args=args,
                keywords=[ast.keyword(arg="within", value=keyword)] if keyword else [],
            ),
            st.one_of(st.sampled_from(NAMES).map(_load), children),
            st.lists(children, max_size=3),
            st.one_of(st.none(), children),
        ),
        st.lists(children, max_size=3).map(lambda items: ast.List(elts=items, ctx=ast.Load())),
        st.lists(children, max_size=3).map(lambda items: ast.Tuple(elts=items, ctx=ast.Load())),
        st.lists(children, min_size=1, max_size=3).map(lambda items: ast.Set(elts=items)),
        pairs.map(lambda items: ast.Dict(keys=items[:1], values=items[1:2])),
        st.builds(lambda a, b: ast.Subscript(value=a, slice=b, ctx=ast.Load()), children, children),
        st.builds(
            lambda a, b: ast.Subscript(
                value=a, slice=ast.Slice(lower=b, upper=None, step=None), ctx=ast.Load()
            ),
            children,
            children,
        ),
        children.map(_lambda),
        st.builds(
            lambda a, b, c: ast.IfExp(test=a, body=b, orelse=c), children, children, children
        ),
        st.builds(
            lambda a, b: ast.GeneratorExp(elt=a, generators=_loop("x", b)), children, children
        ),
        st.builds(
            lambda f, a, b: ast.Call(
                func=_load(f), args=[ast.GeneratorExp(elt=a, generators=_loop("x", b))], keywords=[]
            ),
            st.sampled_from(["any", "all", "min"]),
            children,
            children,
        ),
        st.builds(lambda a, b: ast.ListComp(elt=a, generators=_loop("x", b)), children, children),
        st.builds(
            lambda a, b: ast.DictComp(key=a, value=a, generators=_loop("y", b)), children, children
        ),
        children.map(lambda a: ast.NamedExpr(target=ast.Name(id="x", ctx=ast.Store()), value=a)),
        children.map(
            lambda a: ast.JoinedStr(
                values=[
                    ast.Constant(value="v="),
                    ast.FormattedValue(value=a, conversion=-1, format_spec=None),
                ]
            )
        ),
        children.map(lambda a: ast.Starred(value=a, ctx=ast.Load())),
        children.map(lambda a: ast.Await(value=a)),
        children.map(lambda a: ast.Yield(value=a)),
    )


PYTHON_TREES = st.recursive(LEAVES, _grow, max_leaves=25)


def unparsed(node: ast.expr) -> str | None:
    """The source text of a generated tree, or None when ``ast.unparse`` cannot write it."""
    try:
        return ast.unparse(ast.fix_missing_locations(node))
    except (ValueError, TypeError, AttributeError, RecursionError):
        return None


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(source=PYTHON_TREES.map(unparsed).filter(bool), slot=SLOTS)
def test_random_python_trees_compile_or_refuse(source: str, slot: str) -> None:
    """Any Python expression, however exotic, is refused with RulesetError or compiles."""
    compiles_or_refuses(with_expression(source, slot))


# -- random documents --------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12)
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
KEYS = [
    "ruleset",
    "description",
    "context",
    "eligibility",
    "escalation",
    "alerts",
    "tables",
    "trees",
    "tests",
    "id",
    "when",
    "offer",
    "params",
    "queue",
    "priority",
    "severity",
    "message",
    "on",
    "hit",
    "inputs",
    "outputs",
    "rows",
    "aggregate",
    "start",
    "nodes",
    "next",
    "goto",
    "ask",
    "answer",
    "outcome",
    "say",
    "type",
    "enum",
    "items",
    "max_age",
    "classification",
    "name",
    "expect",
    "customer.tier",
    "a.b",
    "x",
    "__class__",
]
ALMOST_DOCUMENTS = st.dictionaries(st.sampled_from(KEYS), JSON_VALUES, max_size=8)
YAML_LINES = [
    "ruleset: fuzz",
    "ruleset: Fuzz!",
    "context:",
    "  customer.tier: string",
    "  customer.tier: {type: string, enum: [a, b]}",
    "  customer.x: {type: banana}",
    "eligibility:",
    "  - id: r",
    "    when: customer.tier == 'a'",
    "    when: [",
    "    offer: o",
    "  - {id: r, when: true, offer: o}",
    "tables:",
    "  - id: t",
    "    hit: first",
    "    inputs: [customer.tier]",
    "    outputs: [o]",
    "    rows: [['-', 1]]",
    "trees: []",
    "on: yes",
    "yes: no",
    "? complex key",
    ": value",
    "- item",
    "---",
    "...",
    "%YAML 1.2",
    "%TAG ! tag:x,2000:",
    "!!python/object/apply:os.system ['x']",
    "!!binary aGk=",
    "x: !!python/name:os.system",
    "a: &a [1, 2]",
    "b: *a",
    "c: *missing",
    "<<: *a",
    "d: &d [*a, *a, *a, *a, *a, *a, *a, *a, *a]",
    "\tx: 1",
    "x: 'unterminated",
    'x: "\\x"',
    "{",
    "[",
    "}",
    "]",
    "x: 1\x00",
    "é: ü",
    "x: 1e999",
    "x: 0x1F",
    "x: .nan",
    "x: ~",
    "x: 2026-11-22",
    "x: 12:30:00",
    "x: " + "9" * 5000,
    "x: -" + "1" * 4400,
    "&anchor",
    "*alias",
    "|",
    ">",
    "  ",
    "#comment",
]
YAML_TEXTS = st.lists(st.sampled_from(YAML_LINES), max_size=16).map("\n".join)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=200), YAML_TEXTS))
def test_random_document_texts_compile_or_refuse(text: str) -> None:
    """Random text and YAML-ish line soup is refused with located problems, or compiles."""
    compiles_or_refuses(text)


@settings(max_examples=200, deadline=None)
@given(
    document=st.one_of(JSON_VALUES, ALMOST_DOCUMENTS),
    encoding=st.sampled_from(["mapping", "json", "yaml"]),
)
def test_random_json_documents_compile_or_refuse(document: Any, encoding: str) -> None:
    """Random JSON values, given as data, JSON text or YAML text, are refused or compile."""
    if encoding == "mapping":
        compiles_or_refuses(document, from_text=False)
    else:
        text = json.dumps(document) if encoding == "json" else yaml.safe_dump(document)
        compiles_or_refuses(text)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a document (the root excluded)."""
    children: list[tuple[Any, Any]] = []
    if isinstance(node, dict):
        children = list(node.items())
    elif isinstance(node, list):
        children = list(enumerate(node))
    return [
        path for key, child in children for path in [(*prefix, key), *_paths(child, (*prefix, key))]
    ]


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    """The valid document after one to four random edits: delete, retype, add, duplicate."""
    document = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(document) or [("ruleset",)]))
        parent: Any = document
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        match draw(st.sampled_from(["delete", "retype", "unknown-key", "duplicate"])):
            case "delete":
                del parent[key]
            case "retype":
                parent[key] = draw(JSON_VALUES)
            case "unknown-key" if isinstance(parent[key], dict):
                parent[key][draw(st.sampled_from([*KEYS, "colour"]))] = draw(JSON_VALUES)
            case "duplicate" if isinstance(parent[key], list) and parent[key]:
                parent[key].append(copy.deepcopy(parent[key][0]))
            case _:
                parent[key] = copy.deepcopy(draw(st.sampled_from(list(VALID.values()))))
    return document


@settings(max_examples=400, deadline=None)
@given(document=mutated_documents(), encoding=st.sampled_from(["mapping", "json", "yaml"]))
def test_mutated_documents_compile_or_refuse(document: dict[str, Any], encoding: str) -> None:
    """A valid document with keys deleted, types changed, keys added or ids duplicated is
    refused with RulesetError, or still compiles."""
    if encoding == "mapping":
        compiles_or_refuses(document, from_text=False)
    else:
        text = json.dumps(document) if encoding == "json" else yaml.safe_dump(document)
        compiles_or_refuses(text)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_text_edits_of_a_valid_document_compile_or_refuse(data: st.DataObject) -> None:
    """Characters deleted, inserted or replaced anywhere in the valid YAML are handled."""
    text = yaml.safe_dump(VALID)
    for _ in range(data.draw(st.integers(1, 5))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 3))
        insert = data.draw(
            st.sampled_from(
                [
                    "",
                    ":",
                    "-",
                    " ",
                    "\n",
                    "'",
                    '"',
                    "[",
                    "{",
                    "&a",
                    "*a",
                    "!!str",
                    "\t",
                    "#",
                    "é",
                    "\x00",
                ]
            )
        )
        text = text[:at] + insert + text[at + cut :]
    compiles_or_refuses(text)


def test_the_valid_document_compiles() -> None:
    """The document every mutation starts from is valid, so refusals come from the edits."""
    compiled = compile_ruleset(VALID)
    decision = compiled.evaluate(SAMPLE_CONTEXTS[1], answers={"age": 3}).to_dict()
    assert [offer["rule"] for offer in decision["eligible"]] == ["offer"]
    assert decision["next_step"]["outcome"] == "refund"


# -- hostile expressions are refused by name ---------------------------------------------------


@pytest.mark.parametrize(
    ("source", "named"),
    [
        pytest.param('__import__("os").system("x")', r"__import__", id="import"),
        pytest.param('open("/etc/passwd")', r"\bopen\b", id="open"),
        pytest.param("customer.tier.__class__", r"__class__", id="dunder-attribute"),
        pytest.param("().__class__.__bases__", r"__class__|__bases__|tuple", id="dunder-on-tuple"),
        pytest.param("(lambda: 1)()", r"lambda", id="lambda-call"),
        pytest.param("lambda: 1", r"lambda", id="lambda"),
        pytest.param("[x for x in customer.tags]", r"comprehension", id="list-comprehension"),
        pytest.param("2 // 1 > 1", r"//", id="floor-division"),
        pytest.param('customer.tags[0] == "a"', r"subscript", id="subscript"),
        pytest.param("(x := 1) > 0", r":=|assignment", id="walrus"),
        pytest.param('f"{customer.tier}" == "gold"', r"f-string", id="f-string"),
        pytest.param("1 if true else 2", r"conditional", id="conditional-expression"),
        pytest.param('eval("1") == 1', r"\beval\b", id="eval"),
        pytest.param('getattr(customer, "tier") == "gold"', r"getattr", id="getattr"),
        pytest.param('customer.tier.upper() == "GOLD"', r"upper", id="method-call"),
    ],
)
def test_hostile_expressions_are_refused_by_name(source: str, named: str) -> None:
    """Each construct outside the language is refused with a message that names it."""
    with pytest.raises(RulesetError) as refused:
        compile_ruleset(with_expression(source, "eligibility"))
    messages = [problem.message for problem in refused.value.errors]
    assert any(re.search(named, message) for message in messages), messages


class _Yaml12Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper, quoting every string that YAML 1.2 would read as another type.

    PyYAML writes YAML 1.1, which leaves ``1e3`` and ``0o17`` unquoted as strings; Frontline
    reads YAML 1.2, where they are numbers (docs/language.md asks authors to quote them).
    """


def _represent_text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = None if isinstance(resolve_plain(value), str) else "'"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Yaml12Dumper.add_representer(str, _represent_text)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=20), encoding=st.sampled_from(["json", "json-utf8", "yaml"]))
def test_document_texts_compile_like_the_mapping(text: str, encoding: str) -> None:
    """Any text in a description and a message survives JSON or YAML serialisation: the
    serialised document compiles exactly when the mapping does."""
    document = copy.deepcopy(VALID)
    document["description"] = text
    document["alerts"][0]["message"] = text.replace("{", "{{").replace("}", "}}")
    serialise = {
        "json": json.dumps,
        "yaml": lambda value: yaml.dump(value, Dumper=_Yaml12Dumper),
        "json-utf8": lambda value: json.dumps(value, ensure_ascii=False),
    }[encoding]
    try:
        compile_ruleset(document)
    except RulesetError:
        with pytest.raises(RulesetError):
            compile_ruleset(serialise(document))
    else:
        compile_ruleset(serialise(document))

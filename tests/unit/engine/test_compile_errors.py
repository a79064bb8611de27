"""Compile-time safety: every refusal names file, line and column and says what was expected."""

from __future__ import annotations

import textwrap

import pytest

from engine import RulesetError, compile_ruleset
from engine.source import load_document

HEADER = """\
ruleset: errors
context:
  customer.tier: {type: string, enum: [bronze, silver, gold, platinum]}
  customer.tenure_months: integer
  customer.tags: {type: list, items: string}
  answers.age: integer
"""


def refuse(body: str) -> list[tuple[int | None, int | None, str]]:
    text = HEADER + textwrap.dedent(body)
    with pytest.raises(RulesetError) as caught:
        compile_ruleset(text, filename="doc.yaml")
    for problem in caught.value.errors:
        assert problem.file == "doc.yaml"
        assert str(problem).startswith("doc.yaml:")
    return [(p.line, p.column, p.message) for p in caught.value.errors]


@pytest.mark.parametrize(
    ("when", "at", "message"),
    [
        pytest.param(
            'customer.teir == "gold"',
            0,
            "unknown field 'customer.teir'; did you mean 'customer.tier'?",
            id="unknown-field",
        ),
        pytest.param(
            'customer.tenure_months == "ten"',
            0,
            "cannot compare integer with string",
            id="type-mismatch",
        ),
        pytest.param(
            "customer.tier > 3", 0, "cannot order string and integer", id="order-mismatch"
        ),
        pytest.param(
            'customer.tier == "platnum"',
            0,
            "'platnum' is not one of customer.tier's values",
            id="enum-typo",
        ),
        pytest.param(
            "lenn(customer.tags) > 1",
            0,
            "unknown function 'lenn'; did you mean len()?",
            id="unknown-function",
        ),
        pytest.param(
            "len(customer.tags, 2) > 1", 0, "len() takes 1 argument, got 2", id="wrong-arity"
        ),
        pytest.param(
            "customer.tenure_months", 0, "a condition must be true or false", id="not-boolean"
        ),
        pytest.param(
            "customer.tenure_months // 2 > 4", 0, "// is not allowed", id="floor-division"
        ),
        pytest.param(
            "customer.tier ** 2 > 4", 0, "cannot apply ** to string and integer", id="power-of-text"
        ),
        pytest.param(
            "customer.tags[0] == 'a'", 0, "subscripts (x[...]) are not allowed", id="subscript"
        ),
        pytest.param("customer.tier.__class__ == 1", 0, "dunder attributes", id="dunder-attribute"),
        pytest.param(
            '__import__("os").system("x")', 0, "only these functions may be called", id="import"
        ),
        pytest.param('open("/etc/passwd") == 1', 0, "unknown function 'open'", id="open-file"),
        pytest.param("(lambda: True)()", 0, "only these functions may be called", id="lambda-call"),
        pytest.param(
            "[t for t in customer.tags] == []",
            0,
            "list comprehensions are not allowed",
            id="comprehension",
        ),
        pytest.param('f"{customer.tier}" == "gold"', 0, "f-strings are not allowed", id="f-string"),
        pytest.param("customer.tier == null", 17, "null is always unknown", id="null"),
        pytest.param(
            'matches(customer.tier, "a(?=b)")',
            0,
            "bad regular expression 'a(?=b)': invalid perl operator: (?= (matches() takes RE2",
            id="look-around",
        ),
        pytest.param(
            'matches(customer.tier, "[")', 0, "bad regular expression", id="invalid-regex"
        ),
        pytest.param("customer.tier == 'gold' and", 0, "invalid syntax", id="syntax"),
        pytest.param(
            "(customer.tenure_months if true else 1) > 2",
            1,
            "conditional expressions",
            id="conditional",
        ),
        pytest.param(
            "customer.tenure_months > 3 and customer.bogus",
            31,
            "unknown field 'customer.bogus'",
            id="column-points-inside",
        ),
    ],
)
def test_expression_errors_are_located(when: str, at: int, message: str) -> None:
    """Each forbidden or ill-typed expression is refused at the exact line and column."""
    quoted = when.replace("'", "''")
    problems = refuse(f"""\
        eligibility:
          - id: r
            when: '{quoted}'
            offer: o
        """)
    assert len(problems) == 1
    line, col, text = problems[0]
    assert line == 9
    assert col == 12 + at  # the expression starts after "    when: '"
    assert message in text


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        pytest.param(
            """\
            eligibility:
              - id: r
                when: true
            """,
            8,
            "missing required key 'offer'",
            id="missing-key",
        ),
        pytest.param(
            """\
            eligibility:
              - id: r
                when: true
                offer: o
                ofer: p
            """,
            11,
            "unknown key 'ofer'; did you mean 'offer'?",
            id="unknown-key",
        ),
        pytest.param(
            """\
            eligibility:
              - {id: r, when: true, offer: o}
              - {id: r, when: true, offer: o}
            """,
            9,
            "duplicate eligibility id 'r'",
            id="duplicate-id",
        ),
        pytest.param(
            """\
            eligibility:
              - {id: Bad_Id, when: true, offer: o}
            """,
            8,
            "invalid id 'Bad_Id'",
            id="bad-id",
        ),
        pytest.param(
            """\
            eligibility:
              - {id: r, when: true, offer: o, reason_code: eligibility/r}
            """,
            8,
            "invalid reason code 'eligibility/r': expected a short identifier",
            id="bad-reason-code",
        ),
        pytest.param(
            """\
            alerts:
              - {id: a, when: true, severity: info, message: m, reason_code: "9LIVES"}
            """,
            8,
            "invalid reason code '9LIVES'",
            id="reason-code-starts-with-a-digit",
        ),
        pytest.param(
            """\
            escalation:
              - {id: e, when: true, queue: q}
            """,
            8,
            "missing required key 'priority'",
            id="escalation-priority",
        ),
        pytest.param(
            """\
            alerts:
              - {id: a, when: true, severity: loud, message: m}
            """,
            8,
            "'loud' is not allowed; expected 'info', 'warning' or 'critical'",
            id="bad-severity",
        ),
        pytest.param(
            """\
            tables:
              - id: t
                hit: first
                inputs: [customer.tier]
                outputs: [limit]
                rows:
                  - ['"gold"', 1, 2]
            """,
            13,
            "row 1 has 3 cells; expected 2",
            id="row-width",
        ),
        pytest.param(
            """\
            tables:
              - id: t
                hit: first
                inputs: [customer.tier]
                outputs: [limit]
                rows:
                  - [gold, 1]
            """,
            13,
            "'gold' is not a JSON literal",
            id="unquoted-cell",
        ),
        pytest.param(
            """\
            tables:
              - id: t
                hit: first
                inputs: [customer.tenure_months]
                outputs: [limit]
                rows:
                  - ['"ten"', 1]
            """,
            13,
            'cannot compare this input (integer) with "ten"',
            id="cell-type",
        ),
        pytest.param(
            """\
            tables:
              - id: t
                hit: first
                inputs: [customer.tier]
                outputs: [limit]
                rows:
                  - ['"gold"', 1]
                  - ['"silver"', "one"]
            """,
            11,
            "output 'limit' mixes value types",
            id="output-types",
        ),
        pytest.param(
            """\
            tables:
              - id: t
                hit: priority
                inputs: [customer.tier]
                outputs: [limit]
                rows:
                  - ['"gold"', 1]
            """,
            11,
            "hit: priority needs the outputs' values",
            id="priority-values",
        ),
        pytest.param(
            """\
            tables:
              - {id: a, hit: first, inputs: [tables.b.x], outputs: [y], rows: [["-", 1]]}
              - {id: b, hit: first, inputs: [tables.a.y], outputs: [x], rows: [["-", 1]]}
            """,
            8,
            "tables read each other in a cycle",
            id="table-cycle",
        ),
        pytest.param(
            """\
            trees:
              - id: t
                start: a
                nodes:
                  a: {next: [{goto: nowhere}]}
            """,
            11,
            "goto 'nowhere' names no node of tree 't'",
            id="undefined-goto",
        ),
        pytest.param(
            """\
            trees:
              - id: t
                start: a
                nodes:
                  a: {next: [{goto: b}]}
                  b: {next: [{goto: a}]}
            """,
            12,
            "tree 't' has a cycle: a → b → a",
            id="tree-cycle",
        ),
        pytest.param(
            """\
            trees:
              - id: t
                start: a
                nodes:
                  a: {outcome: done}
                  orphan: {outcome: lost}
            """,
            12,
            "node 'orphan' cannot be reached from start node 'a'",
            id="unreachable-node",
        ),
        pytest.param(
            """\
            trees:
              - id: t
                start: a
                nodes:
                  a: {ask: How old?, answer: customer.tier, next: [{goto: b}]}
                  b: {outcome: done}
            """,
            11,
            "must be a declared answers.* field",
            id="answer-not-answers",
        ),
        pytest.param(
            """\
            tests:
              - name: x
                expect: {eligible: [nope]}
            """,
            9,
            "expects unknown eligibility rule 'nope'",
            id="test-unknown-rule",
        ),
        pytest.param(
            """\
            eligibility:
              - {id: r, when: "customer.tier == 'gold' and count('x', within='7 days') > 1",
                 offer: o}
            """,
            8,
            "invalid duration '7 days'",
            id="bad-duration",
        ),
    ],
)
def test_document_errors_are_located(body: str, line: int, message: str) -> None:
    """Structural and semantic errors in the document point at the offending line."""
    problems = refuse(body)
    assert any(p[0] == line and message in p[2] for p in problems), problems


def test_all_problems_are_reported_together() -> None:
    """Independent errors in different rules are reported in one RulesetError, in order."""
    problems = refuse("""\
        eligibility:
          - {id: a, when: customer.nope > 1, offer: o}
          - {id: b, when: customer.tier > 1, offer: o}
        """)
    assert [p[0] for p in problems] == [8, 9]


def test_mapping_input_errors_name_the_path() -> None:
    """A document given as a mapping has no lines; its errors name the path instead."""
    with pytest.raises(RulesetError) as caught:
        compile_ruleset(
            {
                "ruleset": "m",
                "context": {"customer.tier": "integer"},
                "eligibility": [{"id": "r", "when": "customer.teir > 1", "offer": "o"}],
            }
        )
    problem = caught.value.errors[0]
    assert problem.line is None
    assert problem.path == "eligibility[0].when"
    assert str(problem) == (
        "<document>: eligibility[0].when: unknown field 'customer.teir'; "
        "did you mean 'customer.tier'?"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("ruleset: [unclosed", "invalid YAML", id="yaml-syntax"),
        pytest.param("- just\n- a list\n", "must be a mapping", id="not-a-mapping"),
        pytest.param("", "expected exactly one document", id="empty"),
        pytest.param("a: 1\n---\nb: 2\n", "found 2", id="two-documents"),
        pytest.param(
            "ruleset: x\ncontext: {}\nruleset: y\n", "duplicate key 'ruleset'", id="duplicate-key"
        ),
        pytest.param(
            "ruleset: !!python/object:os.system x\ncontext: {}\n",
            "unsupported YAML tag",
            id="python-tag",
        ),
        pytest.param("ruleset: x\x00\n", "NUL character", id="nul"),
    ],
)
def test_unparseable_text_is_refused(text: str, message: str) -> None:
    """Text that is not one YAML mapping document is refused with a plain message."""
    with pytest.raises(RulesetError, match=message.replace("(", r"\(")):
        compile_ruleset(text)


def test_alias_bomb_is_bounded() -> None:
    """Nested aliases that would expand to billions of values are refused, quickly."""
    lines = ["ruleset: bomb", "context: {}", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
        f"*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]"
        for i in range(1, 9)
    ]
    with pytest.raises(RulesetError, match="expands to more than") as caught:
        compile_ruleset("\n".join(lines))
    # Refused from the node graph, before any value is built: it points at the document.
    assert caught.value.errors[0].line == 1


def test_an_overlong_list_is_refused_before_its_items_are_built() -> None:
    """A list longer than any document may hold is refused at its own line."""
    rules = "".join(
        f"  - {{id: r{k}, when: customer.age > {k}, offer: o}}\n" for k in range(10_001)
    )
    text = "ruleset: long\ncontext: {customer.age: integer}\neligibility:\n" + rules
    with pytest.raises(RulesetError, match="a list of 10001 items; the limit is 10000") as caught:
        compile_ruleset(text)
    assert caught.value.errors[0].line == 4


def test_yaml_1_2_keeps_norway_and_on() -> None:
    """YAML 1.2 scalars: ``on``/``no`` stay strings; ``on:`` is a key, not true."""
    compiled = compile_ruleset("""\
ruleset: countries
context:
  customer.country: {type: string, enum: [NO, SE, on]}
alerts:
  - id: a
    when: customer.country in ["NO", "on"]
    severity: info
    message: hi
    on: [decision]
""")
    assert compiled.evaluate({"customer": {"country": "NO"}}).alert_rules == ["a"]
    assert compiled.model.alerts[0].on == ["decision"]


def test_plain_scalars_follow_the_yaml_1_2_core_schema() -> None:
    """Numbers as YAML 1.2 reads them (``1e3``, ``0o17``, ``0x1f``); 1.1's booleans, dates and
    sexagesimals stay strings; quoted scalars are always strings; ``<<`` still merges."""
    data, _ = load_document(
        "a: 1e3\nb: 0o17\nc: 0x1f\nd: yes\ne: 2026-01-01\nf: 1:30\ng: '12'\n"
        "h: &base {p: 1}\ni: {<<: *base, q: 2}\nj: ~\nk: True\n"
    )
    assert data == {
        "a": 1000.0,
        "b": 15,
        "c": 31,
        "d": "yes",
        "e": "2026-01-01",
        "f": "1:30",
        "g": "12",
        "h": {"p": 1},
        "i": {"p": 1, "q": 2},
        "j": None,
        "k": True,
    }


def test_design_document_flow_conditions_parse() -> None:
    """Unquoted flow-mapping conditions with [ , ] parse, and errors keep true columns."""
    text = HEADER + textwrap.dedent("""\
        trees:
          - id: t
            start: a
            nodes:
              a:
                next:
                  - {when: customer.tier in ["gold", "platinum"], goto: b}
                  - {when: customer.tier in ["silver"] and customer.nope, goto: b}
              b: {outcome: done}
        """)
    with pytest.raises(RulesetError) as caught:
        compile_ruleset(text, filename="d.yaml")
    problem = caught.value.errors[0]
    assert "unknown field 'customer.nope'" in problem.message
    line = text.splitlines()[problem.line - 1]  # type: ignore[operator]
    assert line[problem.column - 1 :].startswith("customer.nope")  # type: ignore[operator]


@pytest.mark.parametrize(
    ("section", "count"),
    [
        pytest.param("eligibility", 5_001, id="rules"),
        pytest.param("tests", 1_001, id="tests"),
    ],
)
def test_size_limits(section: str, count: int) -> None:
    """Sections beyond their limits are refused with the limit named."""
    item = (
        {"id": "r", "when": "true", "offer": "o"}
        if section == "eligibility"
        else {"name": "t", "expect": {}}
    )
    with pytest.raises(RulesetError, match="at most"):
        compile_ruleset({"ruleset": "big", "context": {}, section: [item] * count})


def test_expression_length_and_depth_limits() -> None:
    """Over-long and over-deep expressions are refused before they reach the compiler."""
    long = " or ".join(["customer.tenure_months > 1"] * 100)
    assert "limit is 2000" in refuse(f"eligibility: [{{id: r, when: '{long}', offer: o}}]\n")[0][2]
    deep = "not " * 40 + "true"
    assert "levels" in refuse(f"eligibility: [{{id: r, when: '{deep}', offer: o}}]\n")[0][2]
    huge = "(" * 300 + "true" + ")" * 300
    assert refuse(f"eligibility: [{{id: r, when: '{huge}', offer: o}}]\n")


MULTILINE = """\
ruleset: multiline
context: {customer.tier: string, customer.churn_score: number}
eligibility:
  - id: folded
    when: >-
      customer.tier == "gold"
      and customer.churn_scor > 0.5
    offer: x
  - id: literal
    when: |
      customer.tier == "gold"
        and customer.churn_scor > 0.5
    offer: x
  - id: plain
    when: customer.tier == "gold"
      and customer.churn_scor > 0.5
    offer: x
  - id: quoted
    when: "customer.tier == 'gold'
      and customer.churn_scor > 0.5"
    offer: x
alerts:
  - id: a
    when: true
    severity: info
    message: "Churn {customer.churn_scor}"
"""


def test_errors_inside_multiline_expressions_point_at_the_right_line() -> None:
    """Folded, literal, plain and quoted multi-line values map errors to their own lines."""
    with pytest.raises(RulesetError) as caught:
        compile_ruleset(MULTILINE, filename="m.yaml")
    lines = MULTILINE.splitlines()
    located = [(p.line, p.column) for p in caught.value.errors]
    assert located == [(7, 11), (12, 13), (16, 11), (20, 11), (26, 22)]
    for line, column in located:
        assert lines[line - 1][column - 1 :].startswith("customer.churn_scor")


RULE = {
    "alerts": "- {id: r, when: true, severity: info, message: m",
    "escalation": "- {id: r, when: true, queue: q, priority: 1",
}


@pytest.mark.parametrize("section", ["alerts", "escalation"])
@pytest.mark.parametrize(
    ("extra", "at", "message"),
    [
        pytest.param(
            ", on: [timer]}",
            "[timer]",
            "a rule runs on a timer with both on: [timer] and every: (such as every: 30s)",
            id="timer-without-every",
        ),
        pytest.param(
            ", every: 30s}",
            "30s",
            "a rule runs on a timer with both on: [timer] and every: (such as every: 30s)",
            id="every-without-timer",
        ),
        pytest.param(
            ", on: [timer], every: 500ms}", "500ms", "every must be at least 1s", id="short"
        ),
        pytest.param(
            ", on: [timer], every: soon}", "soon", "invalid duration 'soon'", id="not-a-duration"
        ),
        pytest.param(
            ", on: [timer, timer], every: 1m}",
            "[timer, timer]",
            "'on' lists a trigger twice",
            id="twice",
        ),
        pytest.param(
            ", on: [later]}",
            "later",
            "'later' is not allowed; expected 'decision', 'context_change', 'event' or 'timer'",
            id="unknown-trigger",
        ),
        pytest.param(", on: []}", "[]", "should have at least 1 item", id="no-trigger"),
    ],
)
def test_on_and_every_are_checked_alike_for_alert_and_escalation_rules(
    section: str, extra: str, at: str, message: str
) -> None:
    """``on: [timer]`` needs ``every`` and ``every`` needs ``on: [timer]``, a duration of at
    least a second, each trigger named once: refused at the value's line and column, for an
    alert rule and an escalation rule alike."""
    rule = f"  {RULE[section]}{extra}"
    problems = refuse(f"{section}:\n{rule}\n")
    assert problems == [(8, rule.index(at) + 1, problems[0][2])], problems
    assert message in problems[0][2]


def test_a_rule_on_a_timer_with_its_period_compiles_in_either_section() -> None:
    text = HEADER + textwrap.dedent("""\
        escalation:
          - {id: slow, when: true, queue: q, priority: 1, on: [timer], every: 30s}
          - {id: both, when: true, queue: q, priority: 2, on: [decision, timer], every: 2m}
          - {id: plain, when: true, queue: q, priority: 3}
        alerts:
          - {id: slow, when: true, severity: info, message: m, on: [timer], every: 1s}
        """)
    compiled = compile_ruleset(text, filename="doc.yaml")
    # An escalation rule that names no trigger routes decisions only, as it always has.
    assert [(r.on, r.every) for r in compiled.model.escalation] == [
        (["timer"], "30s"),
        (["decision", "timer"], "2m"),
        (["decision"], None),
    ]

"""Each hit policy as one object: its check, its resolution and its output shape, and a table
of each policy evaluated end to end through the same object."""

from __future__ import annotations

import typing
from typing import Any

import pytest

from engine import RulesetError, compile_ruleset
from engine.expr import INTEGER, NUMBER, STRING, list_of
from engine.hitpolicies import HIT_POLICIES
from engine.model import Table

from .helpers import document

ROWS = [("a", 1), ("b", 2), ("c", 3)]
ANY_DIFFER = "hit policy any, but rows 1, 2 all match and their outputs differ"


def test_every_policy_the_document_may_name_has_one_object() -> None:
    names = set(typing.get_args(Table.model_fields["hit"].annotation))
    assert names == set(HIT_POLICIES)
    assert all(policy.name == name for name, policy in HIT_POLICIES.items())


@pytest.mark.parametrize(
    ("hit", "matches", "values", "shown"),
    [
        ("unique", [1], ("b", 2), {"o": "b", "n": 2}),
        ("unique", [0, 2], (None, None), None),
        ("unique", [], (None, None), None),
        ("first", 2, ("c", 3), {"o": "c", "n": 3}),
        ("first", -1, (None, None), None),
        ("collect", [0, 2], (["a", "c"], [1, 3]), {"o": ["a", "c"], "n": [1, 3]}),
        ("collect", [], ([], []), {"o": [], "n": []}),
        ("rule_order", [2, 0], (["c", "a"], [3, 1]), {"o": ["c", "a"], "n": [3, 1]}),
        ("any", [1], ("b", 2), {"o": "b", "n": 2}),
        ("any", [], (None, None), None),
    ],
)
def test_resolution_and_shape(hit: str, matches: Any, values: Any, shown: Any) -> None:
    policy = HIT_POLICIES[hit]
    resolve = policy.resolver(ROWS, None, None)
    assert resolve(matches) == values
    assert policy.outputs(["o", "n"], ROWS, resolve)(matches) == shown


def test_priority_ranks_rows_by_their_outputs_declared_order() -> None:
    policy = HIT_POLICIES["priority"]
    table = Table.model_validate(
        {
            "id": "t",
            "hit": "priority",
            "inputs": ["x"],
            "outputs": [{"name": "o", "values": ["c", "a", "b"]}, "n"],
            "rows": [["-", "a", 1]],
        }
    )
    problems: list[tuple[Any, str]] = []
    ranks = policy.ranks(table, ROWS, [["c", "a", "b"], None], lambda p, m: problems.append((p, m)))
    assert problems == []
    assert ranks == [(1,), (2,), (0,)]
    resolve = policy.resolver(ROWS, ranks, None)
    assert resolve([0, 1, 2]) == ("c", 3)
    assert resolve([0, 1]) == ("a", 1)
    assert policy.outputs(["o", "n"], ROWS, resolve)([]) is None


def test_priority_reports_a_row_whose_output_is_not_declared() -> None:
    policy = HIT_POLICIES["priority"]
    table = Table.model_validate(
        {
            "id": "t",
            "hit": "priority",
            "inputs": ["x"],
            "outputs": ["o", "n"],
            "rows": [["-", "a", 1]],
        }
    )
    problems: list[tuple[Any, str]] = []
    policy.ranks(table, ROWS, [["a", "b"], None], lambda p, m: problems.append((p, m)))
    assert problems == [(("rows", 2, 1), "'c' is not among output 'o''s values")]
    problems.clear()
    assert policy.ranks(table, ROWS, [None, None], lambda p, m: problems.append((p, m))) is None
    assert "needs the outputs' values in priority order" in problems[0][1]


def test_any_gives_the_outputs_the_matching_rows_agree_on() -> None:
    policy = HIT_POLICIES["any"]
    rows = [("a", 1), ("b", 2), ("a", 1.0)]
    resolve = policy.resolver(rows, None, None)
    assert resolve([0, 2]) == ("a", 1)
    assert resolve([0, 1]) == (None, None)
    outputs = policy.outputs(["o", "n"], rows, resolve)
    assert outputs([0, 2]) == {"o": "a", "n": 1}
    assert outputs([0, 1]) is None
    assert policy.read_type(None, STRING) == STRING


def test_output_order_lists_rows_by_their_outputs_declared_order() -> None:
    policy = HIT_POLICIES["output_order"]
    table = Table.model_validate(
        {
            "id": "t",
            "hit": "output_order",
            "inputs": ["x"],
            "outputs": [{"name": "o", "values": ["c", "a", "b"]}, "n"],
            "rows": [["-", "a", 1]],
        }
    )
    rows = [*ROWS, ("a", 4)]
    problems: list[tuple[Any, str]] = []
    ranks = policy.ranks(table, rows, [["c", "a", "b"], None], lambda p, m: problems.append((p, m)))
    assert problems == []
    resolve = policy.resolver(rows, ranks, None)
    # c first, then the two a rows in document order, then b.
    assert resolve([0, 1, 2, 3]) == (["c", "a", "a", "b"], [3, 1, 4, 2])
    assert resolve([]) == ([], [])
    assert policy.read_type(None, STRING) == list_of(STRING)
    problems.clear()
    assert policy.ranks(table, rows, [None, None], lambda p, m: problems.append((p, m))) is None
    assert "hit: output_order needs the outputs' values" in problems[0][1]


def test_collect_aggregates_and_what_rules_read() -> None:
    collect = HIT_POLICIES["collect"]
    assert collect.resolver(ROWS, None, "count")([0, 1]) == (2, 2)
    assert collect.resolver([(1,), (2.5,)], None, "sum")([0, 1]) == (3.5,)
    assert collect.resolver([(1,), (2.5,)], None, "max")([0, 1]) == (2.5,)
    assert collect.resolver([(1e308,), (1e308,)], None, "sum")([0, 1]) == (None,)
    assert collect.read_type("count", STRING) == INTEGER
    assert collect.read_type("sum", INTEGER) == INTEGER
    assert collect.read_type(None, STRING) == list_of(STRING)
    assert HIT_POLICIES["first"].read_type(None, NUMBER) == NUMBER


def test_only_unique_and_any_report_conflicts_and_only_first_stops_at_one_row() -> None:
    unique = HIT_POLICIES["unique"]
    assert unique.conflict([0, 2], ROWS) == "hit policy unique, but rows 1, 3 all match"
    assert unique.conflict([0], ROWS) is None
    agreeing = [("a", 1), ("b", 2), ("a", 1.0)]
    assert HIT_POLICIES["any"].conflict([0, 2], agreeing) is None
    assert HIT_POLICIES["any"].conflict([0, 1, 2], agreeing) == (
        "hit policy any, but rows 1, 2, 3 all match and their outputs differ"
    )
    assert [n for n, p in HIT_POLICIES.items() if p.conflicts] == ["unique", "any"]
    assert [n for n, p in HIT_POLICIES.items() if p.single] == ["first"]
    assert HIT_POLICIES["first"].rows(-1) == []
    assert HIT_POLICIES["first"].rows(1) == [1]
    assert HIT_POLICIES["collect"].rows([0, 2]) == [0, 2]


def _table(hit: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "t",
        "hit": hit,
        "inputs": ["customer.tier"],
        "outputs": ["o"],
        "rows": [['"gold"', "x"], ["-", "y"]],
        **extra,
    }


@pytest.mark.parametrize(
    ("hit", "tier", "outputs", "errors"),
    [
        ("unique", "silver", {"o": "y"}, []),
        (
            "unique",
            "gold",
            None,
            [{"table": "t", "error": "hit policy unique, but rows 1, 2 all match"}],
        ),
        ("first", "gold", {"o": "x"}, []),
        ("collect", "gold", {"o": ["x", "y"]}, []),
        ("rule_order", "gold", {"o": ["x", "y"]}, []),
        ("any", "silver", {"o": "y"}, []),
        (
            "any",
            "gold",
            None,
            [{"table": "t", "error": ANY_DIFFER}],
        ),
    ],
)
def test_each_policy_end_to_end(hit: str, tier: str, outputs: Any, errors: Any) -> None:
    # Not strict: the unique table's rows overlap (on "gold"), which a deploy refuses.
    compiled = compile_ruleset(document(tables=[_table(hit)]), strict=False)
    decision = compiled.evaluate({"customer": {"tier": tier}}, trace=True).to_dict()
    assert decision["tables"] == {"t": outputs}
    assert decision["errors"] == errors


def test_any_agrees_when_the_matching_rows_give_the_same_outputs() -> None:
    table = {**_table("any"), "rows": [['"gold"', "x"], ["-", "x"], ['"silver"', "z"]]}
    compiled = compile_ruleset(document(tables=[table]))
    decision = compiled.evaluate({"customer": {"tier": "gold"}}).to_dict()
    assert decision["tables"] == {"t": {"o": "x"}}
    assert decision["errors"] == []


def test_output_order_end_to_end_and_what_rules_read() -> None:
    table = {
        **_table("output_order"),
        "outputs": [{"name": "o", "values": ["y", "x"]}],
    }
    rule = {"id": "r", "when": '"y" in tables.t.o', "offer": "o"}
    compiled = compile_ruleset(document(tables=[table], eligibility=[rule]))
    decision = compiled.evaluate({"customer": {"tier": "gold"}}, trace=True).to_dict()
    assert decision["tables"] == {"t": {"o": ["y", "x"]}}
    assert decision["eligible"][0]["rule"] == "r"
    assert decision["trace"]["tables"] == [{"table": "t", "matched_rows": [1, 2]}]
    with pytest.raises(RulesetError, match="hit: output_order needs the outputs' values"):
        compile_ruleset(document(tables=[_table("output_order")]))


def test_aggregate_outside_collect_is_refused_at_deploy() -> None:
    with pytest.raises(RulesetError, match="aggregate applies only to hit: collect"):
        compile_ruleset(document(tables=[_table("first", aggregate="count")]))

"""Eligibility, escalation, alerts, decision tables and trees, as docs/language.md defines them."""

from __future__ import annotations

import itertools
import math
import re
from typing import Any

import pytest

from engine import RulesetError, compile_ruleset

from .helpers import document


def test_eligibility_collects_every_rule_that_holds_in_document_order() -> None:
    """Every eligibility rule that holds is listed, in the order written, with its offer."""
    compiled = compile_ruleset(
        document(
            eligibility=[
                {
                    "id": "b",
                    "when": "customer.tenure_months > 12",
                    "offer": "loyalty",
                    "params": {"pct": 10},
                    "because": "Long-standing customer",
                },
                {"id": "a", "when": 'customer.tier == "gold"', "offer": "waive-fee"},
                {"id": "c", "when": "customer.tenure_months > 100", "offer": "gift"},
            ]
        )
    )
    decision = compiled.evaluate({"customer": {"tier": "gold", "tenure_months": 20}})
    assert decision.to_dict()["eligible"] == [
        {
            "rule": "b",
            "offer": "loyalty",
            "params": {"pct": 10},
            "because": "Long-standing customer",
        },
        {"rule": "a", "offer": "waive-fee", "params": {}, "because": None},
    ]


@pytest.mark.parametrize("id_format", ["r{}", "r{:02d}"])
def test_indexed_eligibility_agrees_with_sequential_evaluation(id_format: str) -> None:
    """With enough rules to build an index, the fired set and its order are unchanged.

    Both id formats: ids that do not sort in document order ("r10" < "r2") and ids that do.
    """
    rules = [
        {
            "id": id_format.format(i),
            "when": f'customer.tier == "{t}" and customer.tenure_months > {i}',
            "offer": f"o{i}",
        }
        for i, t in enumerate(["gold", "silver", "bronze", "platinum"] * 10)
    ]
    rules.append({"id": "any-tier", "when": "customer.tenure_months > 5", "offer": "x"})
    rules.append({"id": "in-list", "when": 'customer.tier in ["gold", "silver"]', "offer": "y"})
    compiled = compile_ruleset(document(eligibility=rules))
    assert "_bucket" in compiled.source  # the index is in use
    for tier in ["gold", "silver", "bronze", "platinum", None]:
        for tenure in [0, 7, 20, 50]:
            context = {"customer": {"tier": tier, "tenure_months": tenure}}
            expected = [
                r["id"]
                for i, r in enumerate(rules[:-2])
                if r["id"]
                and ["gold", "silver", "bronze", "platinum"][i % 4] == tier
                and tenure > i
            ]
            if tenure > 5:
                expected.append("any-tier")
            if tier in ("gold", "silver"):
                expected.append("in-list")
            order = [r["id"] for r in rules]
            expected.sort(key=order.index)
            assert compiled.evaluate(context).eligible_rules == expected, (tier, tenure)


def test_escalation_lowest_priority_wins_and_ties_go_to_the_first_written() -> None:
    """The matching rule with the lowest priority number wins; equal numbers, the first."""
    compiled = compile_ruleset(
        document(
            escalation=[
                {"id": "late", "when": "true", "queue": "general", "priority": 5},
                {"id": "first-tie", "when": 'customer.tier == "gold"', "queue": "a", "priority": 2},
                {
                    "id": "second-tie",
                    "when": 'customer.tier == "gold"',
                    "queue": "b",
                    "priority": 2,
                },
                {"id": "never", "when": "false", "queue": "c", "priority": 1},
            ]
        )
    )
    assert compiled.evaluate({"customer": {"tier": "gold"}}).escalation_rule == "first-tie"
    assert compiled.evaluate({"customer": {"tier": "silver"}}).escalation_rule == "late"
    escalation = compiled.evaluate({"customer": {"tier": "gold"}}).to_dict()["escalation"]
    assert escalation == {"rule": "first-tie", "queue": "a", "priority": 2, "because": None}


def test_no_escalation_is_null() -> None:
    """When no escalation rule holds the decision says null."""
    compiled = compile_ruleset(
        document(escalation=[{"id": "x", "when": "false", "queue": "q", "priority": 1}])
    )
    assert compiled.evaluate({}).to_dict()["escalation"] is None


def test_alert_messages_render_templates() -> None:
    """{expression} parts of a message print the value; unknown prints '?'; {{ }} escape."""
    compiled = compile_ruleset(
        document(
            alerts=[
                {
                    "id": "churn",
                    "when": "customer.churn_score > 0.7",
                    "severity": "warning",
                    "message": "High churn risk ({customer.churn_score}) for {customer.tier}"
                    " {{vip}}",
                },
            ]
        )
    )
    alerts = compiled.evaluate({"customer": {"churn_score": 0.9}}).to_dict()["alerts"]
    assert alerts == [
        {"rule": "churn", "severity": "warning", "message": "High churn risk (0.9) for ? {vip}"}
    ]


def test_alerts_run_only_for_their_triggers() -> None:
    """An alert is evaluated on the triggers its ``on`` lists (all three by default)."""
    compiled = compile_ruleset(
        document(
            alerts=[
                {
                    "id": "on-event",
                    "when": "true",
                    "severity": "info",
                    "message": "e",
                    "on": ["event"],
                },
                {"id": "always", "when": "true", "severity": "critical", "message": "a"},
                {
                    "id": "on-decision",
                    "when": "true",
                    "severity": "info",
                    "message": "d",
                    "on": ["decision", "context_change"],
                },
            ]
        )
    )
    assert compiled.evaluate({}).alert_rules == ["always", "on-decision"]
    assert compiled.evaluate({}, trigger="event").alert_rules == ["on-event", "always"]
    changed = compiled.evaluate({}, trigger="context_change")
    assert changed.alert_rules == ["always", "on-decision"]
    assert changed.eligible_rules == []


def test_escalation_rules_run_only_for_their_triggers() -> None:
    """An escalation rule runs on decisions unless its ``on`` says otherwise; on each trigger
    the lowest priority among that trigger's rules wins, and only what they read is missing
    and only their failed arithmetic is reported."""
    compiled = compile_ruleset(
        document(
            escalation=[
                {"id": "gold", "when": 'customer.tier == "gold"', "queue": "g", "priority": 1},
                {
                    "id": "long-wait",
                    "when": "history.contacts_7d / interaction.amount > 1",
                    "queue": "lead",
                    "priority": 2,
                    "on": ["timer"],
                    "every": "30s",
                },
                {
                    "id": "vip",
                    "when": "customer.vip",
                    "queue": "v",
                    "priority": 3,
                    "on": ["decision", "timer", "event"],
                    "every": "1m",
                },
            ]
        )
    )
    gold = {"customer": {"tier": "gold", "vip": True}, "history": {"contacts_7d": 3}}
    assert compiled.evaluate(gold).escalation_rule == "gold"
    assert compiled.evaluate(gold, trigger="event").escalation_rule == "vip"
    assert compiled.evaluate(gold, trigger="context_change").escalation_rule is None
    waiting = {**gold, "interaction": {"amount": 2}}
    timer = compiled.evaluate(waiting, trigger="timer")
    assert timer.escalation_rule == "long-wait"
    assert timer.to_dict()["escalation"] == {
        "rule": "long-wait",
        "queue": "lead",
        "priority": 2,
        "because": None,
    }
    # What a trigger's rules read: a decision never reads the timer rule's fields.
    assert "interaction.amount" not in compiled.evaluate({}).missing_fields
    assert "interaction.amount" in compiled.evaluate({}, trigger="timer").missing_fields
    # Division by zero in the timer rule: reported on the timer's evaluation alone.
    broken = {**gold, "interaction": {"amount": 0}}
    assert compiled.evaluate(broken).to_dict()["errors"] == []
    on_timer = compiled.evaluate(broken, trigger="timer")
    assert on_timer.escalation_rule == "vip"
    assert [e["rule"] for e in on_timer.to_dict()["errors"]] == ["long-wait"]


def _table(hit: str, rows: list[list[Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": "t",
        "hit": hit,
        "inputs": ["customer.tier", "interaction.amount"],
        "outputs": extra.pop("outputs", ["limit"]),
        "rows": rows,
        **extra,
    }


ROWS: list[list[Any]] = [
    ['"platinum"', "<= 500", 500],
    ['["gold", "silver"]', "-", 200],
    ["-", "[0..100]", 50],
    ["-", "-", 10],
]


@pytest.mark.parametrize(
    ("hit", "extra", "context", "outputs"),
    [
        pytest.param("first", {}, {"customer": {"tier": "gold"}}, {"limit": 200}, id="first"),
        pytest.param(
            "first",
            {},
            {"customer": {"tier": "platinum"}, "interaction": {"amount": 900}},
            {"limit": 10},
            id="first-skips-failed-range",
        ),
        pytest.param(
            "collect",
            {},
            {"customer": {"tier": "gold"}, "interaction": {"amount": 50}},
            {"limit": [200, 50, 10]},
            id="collect",
        ),
        pytest.param(
            "rule_order", {}, {"customer": {"tier": "bronze"}}, {"limit": [10]}, id="rule-order"
        ),
        pytest.param(
            "collect",
            {"aggregate": "sum"},
            {"customer": {"tier": "gold"}, "interaction": {"amount": 50}},
            {"limit": 260},
            id="collect-sum",
        ),
        pytest.param(
            "collect",
            {"aggregate": "count"},
            {"customer": {"tier": "gold"}},
            {"limit": 2},
            id="collect-count",
        ),
        pytest.param(
            "collect",
            {"aggregate": "max"},
            {"customer": {"tier": "bronze"}, "interaction": {"amount": 5}},
            {"limit": 50},
            id="collect-max",
        ),
        pytest.param(
            "priority",
            {"outputs": [{"name": "limit", "values": [10, 50, 200, 500]}]},
            {"customer": {"tier": "gold"}, "interaction": {"amount": 50}},
            {"limit": 10},
            id="priority",
        ),
    ],
)
def test_hit_policies(
    hit: str, extra: dict[str, Any], context: dict[str, Any], outputs: dict[str, Any]
) -> None:
    """Each hit policy picks rows and shapes outputs as the reference table says."""
    compiled = compile_ruleset(document(tables=[_table(hit, ROWS, **extra)]))
    assert compiled.evaluate(context).to_dict()["tables"] == {"t": outputs}


def test_unique_conflict_is_an_error_in_the_decision() -> None:
    """A unique table matching two rows reports an error and gives no outputs; no crash.
    (A deploy refuses such a table; a revision stored before the analysis still serves.)"""
    overlaps = [
        "table 't' rows 1 and 3 overlap: customer.tier = \"platinum\", interaction.amount = 0 "
        "matches both",
        "table 't' rows 1 and 4 overlap: customer.tier = \"platinum\", interaction.amount = 0 "
        "matches both",
    ]
    with pytest.raises(RulesetError) as refused:
        compile_ruleset(document(tables=[_table("unique", ROWS)]))
    assert [p.message for p in refused.value.errors] == overlaps
    compiled = compile_ruleset(document(tables=[_table("unique", ROWS)]), strict=False)
    assert [w.message for w in compiled.warnings] == overlaps
    decision = compiled.evaluate({"customer": {"tier": "gold"}}).to_dict()
    assert decision["tables"] == {"t": None}
    assert decision["errors"] == [
        {"table": "t", "error": "hit policy unique, but rows 2, 4 all match"}
    ]
    single = compile_ruleset(document(tables=[_table("unique", ROWS[:2])]))
    assert single.evaluate({"customer": {"tier": "gold"}}).to_dict()["tables"] == {
        "t": {"limit": 200}
    }


@pytest.mark.parametrize(
    ("cell", "value", "matches"),
    [
        pytest.param("-", None, True, id="dash-matches-unknown"),
        pytest.param("500", 500, True, id="literal"),
        pytest.param(500, 500.0, True, id="yaml-number"),
        pytest.param("< 5", 4, True, id="less"),
        pytest.param("< 5", 5, False, id="less-boundary"),
        pytest.param("<= 5", 5, True, id="less-equal"),
        pytest.param("> 5", None, False, id="comparison-unknown"),
        pytest.param(">= -2.5", -2.5, True, id="negative"),
        pytest.param("[1..10]", 10, True, id="closed-range"),
        pytest.param("(1..10)", 10, False, id="open-range"),
        pytest.param("(1..10]", 1, False, id="half-open-low"),
        pytest.param("[1..10)", 1, True, id="half-open-high"),
        pytest.param("]1..10[", 5, True, id="dmn-exclusive-brackets"),
        pytest.param("[1, 2, 3]", 2, True, id="json-list"),
        pytest.param([1, 2, 3], 4, False, id="yaml-list"),
        pytest.param("1, 7", 7, True, id="comma-disjunction"),
        pytest.param("not(1, 7)", 7, False, id="not"),
        pytest.param("not(< 3)", 5, True, id="not-comparison"),
        pytest.param("not(< 3)", None, False, id="not-unknown"),
    ],
)
def test_unary_tests(cell: Any, value: Any, matches: bool) -> None:
    """Every unary-test form matches exactly the values it describes."""
    compiled = compile_ruleset(
        document(
            tables=[
                {
                    "id": "t",
                    "hit": "first",
                    "inputs": ["interaction.amount"],
                    "outputs": ["hit"],
                    "rows": [[cell, True]],
                }
            ]
        )
    )
    result = compiled.evaluate({"interaction": {"amount": value}}).to_dict()["tables"]["t"]
    assert (result == {"hit": True}) is matches


def test_tables_are_readable_from_rules_and_from_other_tables() -> None:
    """tables.<id>.<output> reads a table's output; tables run in dependency order."""
    compiled = compile_ruleset(
        document(
            tables=[
                {
                    "id": "band-limit",
                    "hit": "first",
                    "inputs": ["tables.tier-band.band"],
                    "outputs": ["limit"],
                    "rows": [['"high"', 500], ["-", 50]],
                },
                {
                    "id": "tier-band",
                    "hit": "first",
                    "inputs": ["customer.tier"],
                    "outputs": ["band"],
                    "rows": [['["gold", "platinum"]', "high"], ["-", "low"]],
                },
            ],
            eligibility=[
                {"id": "big-refund", "when": "tables.band-limit.limit >= 500", "offer": "refund"}
            ],
        )
    )
    assert compiled.evaluate({"customer": {"tier": "gold"}}).eligible_rules == ["big-refund"]
    assert compiled.evaluate({"customer": {"tier": "bronze"}}).eligible_rules == []


def test_large_table_index_agrees_with_row_order() -> None:
    """A table bucketed by an equality column still returns the first matching row."""
    tiers = ["bronze", "silver", "gold", "platinum"]
    rows: list[list[Any]] = [
        [f'"{tiers[i % 4]}"', f"[{i * 10}..{i * 10 + 9}]", i] for i in range(40)
    ]
    rows.insert(5, ["-", "< 3", -1])
    rows.append(["-", "-", -2])
    compiled = compile_ruleset(
        document(
            tables=[
                {
                    "id": "t",
                    "hit": "first",
                    "inputs": ["customer.tier", "interaction.amount"],
                    "outputs": ["row"],
                    "rows": rows,
                }
            ]
        )
    )
    assert "_table0_b" in compiled.source
    for tier in [*tiers, None]:
        for amount in [0, 2, 15, 55, 399, 1000, None]:
            expected = -2
            for cells in rows:
                tier_ok = cells[0] == "-" or cells[0] == f'"{tier}"'
                rng = cells[1]
                if rng == "-":
                    amount_ok = True
                elif rng.startswith("<"):
                    amount_ok = amount is not None and amount < 3
                else:
                    low, high = map(int, rng.strip("[]").split(".."))
                    amount_ok = amount is not None and low <= amount <= high
                if tier_ok and amount_ok:
                    expected = cells[2]
                    break
            got = compiled.evaluate({"customer": {"tier": tier}, "interaction": {"amount": amount}})
            assert got.to_dict()["tables"]["t"] == {"row": expected}, (tier, amount)


TREE: dict[str, Any] = {
    "id": "billing-dispute",
    "start": "charge-age",
    "nodes": {
        "charge-age": {
            "ask": "How many days ago?",
            "answer": "answers.charge_age_days",
            "next": [
                {"when": "answers.charge_age_days > 60", "goto": "too-old"},
                {"goto": "by-tier"},
            ],
        },
        "by-tier": {
            "next": [
                {"when": 'customer.tier in ["gold", "platinum"]', "goto": "refund"},
                {"when": 'customer.tier in ["bronze", "silver"]', "goto": "supervisor"},
            ]
        },
        "refund": {"outcome": "refund", "say": "Refund up to {tables.limit.limit}"},
        "too-old": {"outcome": "decline", "say": "Explain the 60-day window"},
        "supervisor": {"outcome": "escalate", "queue": "billing-supervisors"},
    },
}
LIMIT = {
    "id": "limit",
    "hit": "first",
    "inputs": ["customer.tier"],
    "outputs": ["limit"],
    "rows": [['"platinum"', 500], ["-", 200]],
}


@pytest.mark.parametrize(
    ("context", "answers", "step"),
    [
        pytest.param(
            {},
            None,
            {
                "node": "charge-age",
                "ask": "How many days ago?",
                "answer": "answers.charge_age_days",
                "path": ["charge-age"],
            },
            id="asks-first-question",
        ),
        pytest.param(
            {},
            {"charge_age_days": 90},
            {
                "node": "too-old",
                "outcome": "decline",
                "say": "Explain the 60-day window",
                "queue": None,
                "path": ["charge-age", "too-old"],
            },
            id="outcome-after-answer",
        ),
        pytest.param(
            {"customer": {"tier": "platinum"}},
            {"charge_age_days": 3},
            {
                "node": "refund",
                "outcome": "refund",
                "say": "Refund up to 500",
                "queue": None,
                "path": ["charge-age", "by-tier", "refund"],
            },
            id="say-reads-a-table",
        ),
        pytest.param(
            {"customer": {"tier": "silver"}},
            {"charge_age_days": 3},
            {
                "node": "supervisor",
                "outcome": "escalate",
                "say": None,
                "queue": "billing-supervisors",
                "path": ["charge-age", "by-tier", "supervisor"],
            },
            id="queue-outcome",
        ),
        pytest.param(
            {},
            {"charge_age_days": 3},
            {
                "node": "by-tier",
                "error": "no branch of node 'by-tier' holds; unknown: customer.tier",
                "path": ["charge-age", "by-tier"],
            },
            id="stuck-on-unknown",
        ),
    ],
)
def test_tree_walk(
    context: dict[str, Any], answers: dict[str, Any] | None, step: dict[str, Any]
) -> None:
    """The walk stops at an unanswered question, an outcome, or a node no branch holds."""
    compiled = compile_ruleset(document(tables=[LIMIT], trees=[TREE]))
    got = compiled.evaluate(context, answers=answers).to_dict()["next_step"]
    assert got == {"tree": "billing-dispute", **step}


def test_answers_may_come_inside_the_context() -> None:
    """Without an ``answers`` argument, the context's ``answers`` object is read."""
    compiled = compile_ruleset(document(tables=[LIMIT], trees=[TREE]))
    step = compiled.evaluate({"answers": {"charge_age_days": 99}}).to_dict()["next_step"]
    assert step["node"] == "too-old"


def test_missing_fields_list_what_the_rules_needed() -> None:
    """missing_fields names the unknown fields the evaluated rules read, tree path included."""
    compiled = compile_ruleset(
        document(
            eligibility=[
                {"id": "e", "when": 'customer.tier == "gold" or customer.vip', "offer": "o"}
            ],
            tables=[LIMIT],
            trees=[TREE],
        )
    )
    decision = compiled.evaluate({"customer": {"vip": True}}, answers={"charge_age_days": 1})
    assert decision.to_dict()["missing_fields"] == ["customer.tier"]
    assert decision.eligible_rules == ["e"]


def test_stale_fields_compare_as_of_with_now() -> None:
    """A field older than its max_age is stale; the longest as_of prefix applies."""
    compiled = compile_ruleset(
        document(eligibility=[{"id": "e", "when": "customer.churn_score > 0.5", "offer": "o"}])
    )
    context = {"customer": {"churn_score": 0.9}}
    now = "2026-11-22T10:00:00Z"
    fresh = compiled.evaluate(context, now=now, as_of={"customer": "2026-11-22T09:00:00Z"})
    assert fresh.to_dict()["stale_fields"] == []
    stale = compiled.evaluate(
        context,
        now=now,
        as_of={"customer": "2026-11-22T09:00:00Z", "customer.churn_score": "2026-11-20T09:00:00Z"},
    )
    assert stale.to_dict()["stale_fields"] == ["customer.churn_score"]
    assert stale.eligible_rules == ["e"]  # stale values are still used, and flagged
    assert compiled.evaluate(context, now=now).to_dict()["stale_fields"] == []


def test_trace_lists_every_evaluated_rule_with_its_reads() -> None:
    """trace=True records each evaluated rule's three-valued result and the values it read."""
    compiled = compile_ruleset(
        document(
            eligibility=[
                {"id": "e", "when": "customer.tenure_months > 3", "offer": "o"},
                {"id": "f", "when": 'customer.tier == "gold"', "offer": "p"},
            ],
            tables=[LIMIT],
        )
    )
    trace = compiled.evaluate({"customer": {"tier": "gold"}}, trace=True).to_dict()["trace"]
    assert trace["rules"] == [
        {
            "section": "eligibility",
            "rule": "e",
            "result": "unknown",
            "reads": {"customer.tenure_months": None},
        },
        {
            "section": "eligibility",
            "rule": "f",
            "result": "true",
            "reads": {"customer.tier": "gold"},
        },
    ]
    assert trace["tables"] == [{"table": "limit", "matched_rows": [2]}]
    assert compiled.evaluate({}).to_dict()["trace"] is None


def test_nested_and_leftover_indexes_agree_with_sequential_evaluation() -> None:
    """Buckets split again on a second field, and leftover rules indexed on another field,
    fire exactly the rules that hold, in document order."""
    tiers = ["bronze", "silver", "gold", "platinum"]
    rules = [
        {
            "id": f"seg{k}",
            "offer": "o",
            "when": f'customer.email == "a" and customer.tier == "{tiers[k % 4]}"',
        }
        for k in range(20)
    ] + [
        {
            "id": f"chan{k}",
            "offer": "o",
            "when": f'interaction.channel == "{["voice", "chat"][k % 2]}" and '
            f"customer.tenure_months > {k}",
        }
        for k in range(20)
    ]
    compiled = compile_ruleset(document(eligibility=rules))
    assert compiled.source.count("def _bucket") >= 8
    for email in ["a", "b", None]:
        for tier in [*tiers, None]:
            for channel in ["voice", "chat", None]:
                context = {
                    "customer": {"email": email, "tier": tier, "tenure_months": 9},
                    "interaction": {"channel": channel},
                }
                expected = [f"seg{k}" for k in range(20) if email == "a" and tier == tiers[k % 4]]
                expected += [
                    f"chan{k}" for k in range(20) if channel == ["voice", "chat"][k % 2] and k < 9
                ]
                assert compiled.evaluate(context).eligible_rules == expected, context


def _amount_table(hit: str, rows: list[list[Any]]) -> dict[str, Any]:
    """A document with one table ``t`` over ``interaction.amount``, output ``k``."""
    table = {"id": "t", "hit": hit, "inputs": ["interaction.amount"], "outputs": ["k"]}
    return document(tables=[{**table, "rows": rows}])


@pytest.mark.parametrize("hit", ["first", "collect", "rule_order", "unique"])
def test_interval_index_agrees_with_the_reference(hit: str) -> None:
    """Rows bisected over one numeric input match what the reference interpreter finds."""
    import random

    from tests.reference import decide

    rnd = random.Random(hit)
    cells = [
        "-",
        "< 10",
        "<= 10",
        "> 50",
        ">= 50",
        "[10..20]",
        "(10..20)",
        "[20..30)",
        "(30..40]",
        "15",
        "[1, 2, 3]",
        "not(< 5)",
        "5, 25",
        "not([10..20], 45)",
    ]
    doc = _amount_table(hit, [[rnd.choice(cells), k] for k in range(30)])
    compiled = compile_ruleset(doc, strict=False)  # overlapping unique rows evaluated too
    assert "_bisect" in compiled.source
    for amount in [
        None,
        -1,
        0,
        1,
        2.5,
        5,
        9.99,
        10,
        10.5,
        15,
        19.999,
        20,
        25,
        30,
        35,
        40,
        45,
        49,
        50,
        50.5,
        99,
        *(
            near
            for point in (1, 2, 3, 5, 10, 15, 20, 25, 30, 40, 45, 50)
            for near in (float(point), math.nextafter(point, -math.inf), math.nextafter(point, 99))
        ),
    ]:
        context = {"interaction": {"amount": amount}}
        expected = decide(doc, context)["tables"]["t"]
        assert compiled.evaluate(context).tables["t"] == expected, amount


@pytest.mark.parametrize("hit", ["first", "collect"])
def test_interval_index_is_exact_at_fractional_and_huge_points(hit: str) -> None:
    """Points with fractions, and integers beyond what a float holds exactly: values on, just
    below and just above each point, as ints and as floats, match as the reference says."""
    from tests.reference import decide

    huge = 2**53 + 1  # no float equals it
    cells = ["< 0.405", "> 0.705", "[0.1..0.3)", "(0.3..0.4]", "-0.25", f"> {huge}", f"{2**52}"]
    for chosen in (cells[:4], cells):  # the second holds points a float search cannot take
        rows = [[cell, k] for k, cell in enumerate(chosen)] + [["-", 99]]
        doc = _amount_table(hit, rows * 3)  # enough rows for the interval index
        compiled = compile_ruleset(doc)
        assert "_bisect" in compiled.source
        points = [0.405, 0.705, 0.1, 0.3, 0.4, -0.25, huge, 2**52, 0, 1]
        for point in points:
            for amount in {
                point,
                float(point),
                math.nextafter(point, -math.inf),
                math.nextafter(point, math.inf),
                int(point) - 1,
                int(point) + 1,
            }:
                context = {"interaction": {"amount": amount}}
                expected = decide(doc, context)["tables"]["t"]
                assert compiled.evaluate(context).tables["t"] == expected, amount


def test_nested_objects_read_before_their_parents_keep_their_own_names() -> None:
    """A field two levels deep read first must not shadow its parent object's other fields."""
    context = {"customer.address.city": "string", "customer.tier": "string"}
    compiled = compile_ruleset(
        {
            "ruleset": "t",
            "context": context,
            "eligibility": [
                {
                    "id": "r",
                    "when": 'customer.address.city == "Leeds" and customer.tier == "gold"',
                    "offer": "o",
                }
            ],
        }
    )
    customer = {"address": {"city": "Leeds"}, "tier": "gold"}
    assert compiled.evaluate({"customer": customer}).eligible_rules == ["r"]
    customer["tier"] = "silver"
    assert compiled.evaluate({"customer": customer}).eligible_rules == []


def test_buckets_and_presence_checks_agree_with_the_reference_on_missing_fields() -> None:
    """Rules inside index buckets run without the bucket's own test and, when every field they
    compare is present, without null checks; with fields missing, negated and in the trace,
    the fired rules are still those the reference interpreter finds."""
    from tests.reference import decide

    tiers = ["bronze", "silver", "gold", "platinum"]
    conditions = [
        "customer.tenure_months > {k}",
        "not (customer.tenure_months > {k})",
        "customer.churn_score >= 0.5 or history.contacts_7d < {k}",
        "not (customer.churn_score < 0.5) and customer.vip",
        'customer.tier != "gold" or history.contacts_7d >= 2',
        'not (customer.tier in ["gold", "silver"])',
    ]
    rules = [
        {
            "id": f"r{k}",
            "offer": "o",
            "when": f'customer.tier == "{tiers[k % 4]}" and '
            + conditions[k % len(conditions)].format(k=k % 7),
        }
        for k in range(36)
    ] + [
        {"id": f"s{k}", "offer": "o", "when": conditions[k % len(conditions)].format(k=k)}
        for k in range(12)
    ]
    doc = document(eligibility=rules)
    compiled = compile_ruleset(doc)
    assert "def _bucket" in compiled.source and "is not None:\n" in compiled.source
    values = {
        "tier": [*tiers, None],
        "tenure_months": [None, 0, 3, 9],
        "churn_score": [None, 0.2, 0.7],
        "vip": [None, True, False],
        "contacts_7d": [None, 1, 5],
    }
    for tier, tenure, churn, vip, contacts in itertools.product(*values.values()):
        context = {
            "customer": {
                "tier": tier,
                "tenure_months": tenure,
                "churn_score": churn,
                "vip": vip,
            },
            "history": {"contacts_7d": contacts},
        }
        expected = [e["rule"] for e in decide(doc, context)["eligible"]]
        assert compiled.evaluate(context).eligible_rules == expected, context
        assert compiled.evaluate(context, trace=True).eligible_rules == expected, context


def test_guarded_runs_and_absent_fields_agree_with_the_reference() -> None:
    """Too few rules for an index: rules in a row that test one field for equality share one
    membership test of it; contexts with fields absent (not only null) take the slower read.
    Every combination fires what the reference interpreter finds, plain and traced."""
    from tests.reference import decide

    rules = [
        ('customer.tier == "gold" and customer.tenure_months > 3'),
        ('customer.tier in ["silver", "gold"] and customer.churn_score >= 0.5'),
        ('customer.tier == "bronze" or customer.vip'),  # not a conjunction: ends the run
        ('customer.tier == "platinum"'),
        ('customer.tier == "bronze" and not (history.contacts_7d < 2)'),
        ('customer.vip and customer.tier in ["gold"]'),
        ("customer.tenure_months > 1"),
    ]
    doc = document(
        eligibility=[{"id": f"r{k}", "offer": "o", "when": when} for k, when in enumerate(rules)]
    )
    compiled = compile_ruleset(doc)
    assert re.search(r"^ +if s\d+ in _K\d+:$", compiled.source, re.MULTILINE)  # a guarded run
    absent = object()
    values = {
        "tier": ["bronze", "silver", "gold", "platinum", None, 7, absent],
        "tenure_months": [absent, 0, 5],
        "churn_score": [absent, 0.2, 0.7],
        "vip": [absent, True, False],
        "contacts_7d": [absent, 1, 5],
    }
    for combination in itertools.product(*values.values()):
        fields = {k: v for k, v in zip(values, combination, strict=True) if v is not absent}
        contacts = fields.pop("contacts_7d", absent)
        context: dict[str, Any] = {"customer": fields}
        if contacts is not absent:
            context["history"] = {"contacts_7d": contacts}
        expected = [e["rule"] for e in decide(doc, context)["eligible"]]
        assert compiled.evaluate(context).eligible_rules == expected, context
        assert compiled.evaluate(context, trace=True).eligible_rules == expected, context


def test_a_revision_knows_what_each_question_takes_and_what_each_field_is_called() -> None:
    """Worked out once, when the revision compiles: each tree question's answer field's type
    (and enum values, in document order), and each context field's label (its description,
    else its path)."""
    doc = document(
        trees=[
            {
                "id": "why",
                "start": "reason",
                "nodes": {
                    "reason": {
                        "ask": "Why?",
                        "answer": "answers.reason",
                        "next": [
                            {"when": 'answers.reason == "price"', "goto": "days"},
                            {"goto": "done"},
                        ],
                    },
                    "days": {
                        "ask": "Since when?",
                        "answer": "answers.days",
                        "next": [{"goto": "sure"}],
                    },
                    "sure": {"ask": "Sure?", "answer": "answers.sure", "next": [{"goto": "done"}]},
                    "done": {"outcome": "done"},
                },
            }
        ]
    )
    doc["context"] |= {
        "answers.reason": {"type": "string", "enum": ["price", "moving", "other"]},
        "answers.days": "integer",
        "answers.sure": {"type": "boolean", "description": "  Customer is sure  "},
    }
    compiled = compile_ruleset(doc)
    assert compiled.answer_shapes == {
        "answers.reason": {"answer_type": "string", "answer_enum": ["price", "moving", "other"]},
        "answers.days": {"answer_type": "integer"},
        "answers.sure": {"answer_type": "boolean"},
    }
    assert compiled.field_labels["answers.sure"] == "Customer is sure"
    assert compiled.field_labels["answers.days"] == "answers.days"

"""The durable_rules importer: conditions, regexes, field types, ids and what it refuses."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from engine import compile_ruleset
from engine.importers.durable import (
    DurableConversion,
    DurableImportError,
    convert_durable,
    dump_document,
    translate_pattern,
)
from engine.regexes import regex_matcher


def convert_one(condition: Any, name: str = "r") -> DurableConversion:
    """Convert a ruleset with one rule whose single pattern is ``condition``."""
    return convert_durable({"t": {name: {"all": [{"m": condition}], "run": "act"}}})


def only_when(conversion: DurableConversion) -> str:
    (rule,) = conversion.document["eligibility"]
    return str(rule["when"])


# -- every operator -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "when", "context"),
    [
        pytest.param({"amount": 5}, "m.amount == 5", {"m.amount": "number"}, id="implicit-eq"),
        pytest.param({"$eq": {"tier": "gold"}}, 'm.tier == "gold"', {"m.tier": "string"}, id="eq"),
        pytest.param({"vip": True}, "m.vip == true", {"m.vip": "boolean"}, id="eq-boolean"),
        pytest.param(
            {"$neq": {"vip": False}}, "m.vip != false", {"m.vip": "boolean"}, id="neq-boolean"
        ),
        pytest.param({"$neq": {"amount": 0}}, "m.amount != 0", {"m.amount": "number"}, id="neq"),
        pytest.param({"$lt": {"amount": 10}}, "m.amount < 10", {"m.amount": "number"}, id="lt"),
        pytest.param(
            {"$lte": {"tier": "silver"}}, 'm.tier <= "silver"', {"m.tier": "string"}, id="lte"
        ),
        pytest.param({"$gt": {"amount": 99.5}}, "m.amount > 99.5", {"m.amount": "number"}, id="gt"),
        pytest.param({"$gte": {"amount": -3}}, "m.amount >= -3", {"m.amount": "number"}, id="gte"),
        pytest.param(
            {"$ex": {"note": 1}}, "not missing(m.note)", {"m.note": "string"}, id="ex-untyped"
        ),
        pytest.param({"$nex": {"note": 1}}, "missing(m.note)", {"m.note": "string"}, id="nex"),
        pytest.param(
            {"$neq": {"note": None}}, "not missing(m.note)", {"m.note": "string"}, id="neq-null"
        ),
        pytest.param(
            {"$mt": {"name": "gold"}},
            r'matches(m.name, "\\Agold\\z")',
            {"m.name": "string"},
            id="mt",
        ),
        pytest.param(
            {"$imt": {"name": "go.*"}},
            r'matches(m.name, "(?s)\\A[gG][oO].*\\z")',
            {"m.name": "string"},
            id="imt",
        ),
        pytest.param(
            {"$iany": {"scores": {"$gt": {"$i": 5}}}},
            "any(item > 5 for item in m.scores)",
            {"m.scores": {"type": "list", "items": "number"}},
            id="iany-values",
        ),
        pytest.param(
            {"$iall": {"tags": {"$mt": {"$i": "%d+"}}}},
            r'len(m.tags) > 0 and all(matches(item, "\\A[0-9]+\\z") for item in m.tags)',
            {"m.tags": {"type": "list", "items": "string"}},
            id="iall-values",
        ),
        pytest.param(
            {
                "$iany": {
                    "orders": {
                        "$and": [
                            {"$or": [{"$lt": {"$i.total": 5}}, {"$gt": {"$i.total": 50}}]},
                            {"$i.status": "open"},
                        ]
                    }
                }
            },
            "any((item.total < 5 or item.total > 50) and "
            'item.status == "open" for item in m.orders)',
            {"m.orders": {"type": "list", "items": {"total": "number", "status": "string"}}},
            id="iany-objects",
        ),
        pytest.param(
            {"$iall": {"orders": {"$or": [{"$i.status": "open"}, {"$i.status": "held"}]}}},
            "len(m.orders) > 0 and "
            'all((item.status == "open" or item.status == "held") for item in m.orders)',
            {"m.orders": {"type": "list", "items": {"status": "string"}}},
            id="iall-or",
        ),
        pytest.param(
            {"$and": [{"a": 1}, {"$or": [{"b": "x"}, {"$and": [{"c": True}, {"d": 2}]}]}]},
            'm.a == 1 and (m.b == "x" or m.c == true and m.d == 2)',
            {"m.a": "number", "m.b": "string", "m.c": "boolean", "m.d": "number"},
            id="and-or-nesting",
        ),
        pytest.param(
            {"$and": [{"$and": [{"a": 1}, {"b": 2}]}, {"c": 3}]},
            "m.a == 1 and m.b == 2 and m.c == 3",
            {"m.a": "number", "m.b": "number", "m.c": "number"},
            id="and-flattens",
        ),
        pytest.param(
            {"$and": [{"$iall": {"xs": {"$gt": {"$i": 1}}}}, {"$or": [{"a": 1}, {"b": 2}]}]},
            "len(m.xs) > 0 and all(item > 1 for item in m.xs) and (m.a == 1 or m.b == 2)",
            {"m.xs": {"type": "list", "items": "number"}, "m.a": "number", "m.b": "number"},
            id="iall-inside-and",
        ),
        pytest.param(
            {"$gt": {"customer.profile.age": 17}},
            "m.customer.profile.age > 17",
            {"m.customer.profile.age": "number"},
            id="nested-attribute",
        ),
        pytest.param(
            {"$iany": {"customer.cards": {"$i": "visa"}}},
            'any(item == "visa" for item in m.customer.cards)',
            {"m.customer.cards": {"type": "list", "items": "string"}},
            id="nested-list",
        ),
        pytest.param(
            {"name": 'say "hi"\\ café'},
            'm.name == "say \\"hi\\"\\\\ café"',
            {"m.name": "string"},
            id="string-escapes",
        ),
    ],
)
def test_operator_converts(condition: Any, when: str, context: dict[str, Any]) -> None:
    """Each durable_rules operator becomes the expected `when` text and field types."""
    conversion = convert_one(condition)
    assert conversion.unsupported == []
    assert only_when(conversion) == when
    assert conversion.document["context"] == context


def test_any_of_several_patterns_is_an_or() -> None:
    """An `any` over one-message patterns fires on a message matching any of them."""
    conversion = convert_durable(
        {
            "t": {
                "either": {
                    "any": [
                        {"a": {"t": "x"}},
                        {"b$all": [{"c": {"$gt": {"amount": 5}}}]},
                        {"d$any": [{"e": {"t": "y"}}, {"f": {"t": "z"}}]},
                    ]
                }
            }
        }
    )
    assert conversion.unsupported == []
    assert only_when(conversion) == 'm.t == "x" or m.amount > 5 or m.t == "y" or m.t == "z"'


# -- durable_rules' pattern dialect ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "ignore_case", "regex", "matching", "not_matching"),
    [
        pytest.param("gold", False, r"\Agold\z", ["gold"], ["golden", "xgold", "Gold"], id="full"),
        pytest.param("gold", True, r"\A[gG][oO][lL][dD]\z", ["GoLd"], ["golden"], id="ignore-case"),
        pytest.param(
            "%u%l",
            True,
            r"\A[A-ZÀ-ÖØ-Þa-z][a-zß-öø-ÿA-Z]\z",
            ["ab", "AB", "Àb"],
            ["àb", "ÀÀ"],
            id="ignore-case-ascii-only",
        ),
        pytest.param("a.c", False, r"(?s)\Aa.c\z", ["abc", "a\nc"], ["ac", "abbc"], id="dot-any"),
        pytest.param(
            "silver|gold",
            False,
            r"\A(?:silver|gold)\z",
            ["gold"],
            ["silvergold"],
            id="alternation-anchored",
        ),
        pytest.param(
            "%d+%.%d", False, r"\A[0-9]+\.[0-9]\z", ["12.5"], ["12x5", "1.25"], id="escapes"
        ),
        pytest.param(
            "%a%w%x%s%g",
            False,
            r"\A[A-Za-zÀ-ÖØ-öø-ÿ][0-9A-Za-z][0-9A-Fa-f][\x{9}-\x{d} ][!-~]\z",
            ["é9f ~"],
            ["é9g ~"],
            id="classes",
        ),
        pytest.param(
            "%p", False, r"""\A[.,;:?!'"()¡¿\-]\z""", ["-", "¿", '"'], ["a"], id="punctuation"
        ),
        pytest.param("[^%d-]+", False, r"\A[^0-9\-]+\z", ["ab"], ["a1", "a-"], id="negated-class"),
        pytest.param("[]a]", False, r"\A\]a\]\z", ["]a]"], ["]", "a"], id="leading-bracket"),
        pytest.param("[a-c-e]", False, r"\A[a-ca-e]\z", ["d", "e"], ["-"], id="range-restart"),
        pytest.param("[z-a]", False, r"\A[a-z]\z", ["m"], ["A"], id="reversed-range"),
        pytest.param("^$\\a", False, r"\A\^\$\\a\z", ["^$\\a"], ["a"], id="anchors-are-literals"),
        pytest.param("(ab)+c?", False, r"\A(?:ab)+c?\z", ["abab", "abc"], ["ab c"], id="groups"),
        pytest.param(
            "x{2,3}y{2}z{1,}", False, r"\Ax{2,3}y{2}z{1,}\z", ["xxyyz"], ["xyyz"], id="intervals"
        ),
    ],
)
def test_pattern_translation(
    pattern: str, ignore_case: bool, regex: str, matching: list[str], not_matching: list[str]
) -> None:
    """A `$mt` pattern becomes an anchored RE2 regex with durable_rules' meaning."""
    assert translate_pattern(pattern, ignore_case=ignore_case) == regex
    found = regex_matcher(regex)
    assert all(found(s) for s in matching)
    assert not any(found(s) for s in not_matching)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        pytest.param("", "empty pattern", id="empty"),
        pytest.param("%c", "'%c'", id="control-class"),
        pytest.param("%q", "'%q' is not a durable_rules escape", id="unknown-escape"),
        pytest.param("ab%", "ends with '%'", id="trailing-percent"),
        pytest.param("*a", "nothing to repeat", id="leading-repeat"),
        pytest.param("a+*", "follows another repeat", id="stacked-repeat"),
        pytest.param("a|*", "nothing to repeat", id="repeat-after-bar"),
        pytest.param("(ab", "unbalanced '('", id="unclosed-group"),
        pytest.param("ab)cd", "unbalanced ')'", id="stray-paren"),
        pytest.param("a()", "empty group", id="empty-group"),
        pytest.param("[ab", "unclosed '['", id="unclosed-class"),
        pytest.param("[%d-x]", "has no start", id="range-from-escape"),
        pytest.param("a{0}", "as '*'", id="zero-repeat"),
        pytest.param("a{2,0}", "as '*'", id="zero-upper-bound"),
        pytest.param("a{,2}", "not {n}", id="no-lower-bound"),
        pytest.param("a{1,101}", "refuses the repeat", id="repeat-over-100"),
        pytest.param("a{3,2}", "refuses the repeat", id="bounds-reversed"),
    ],
)
def test_pattern_refused(pattern: str, reason: str) -> None:
    """Patterns durable_rules refuses or misreads are refused with the reason."""
    with pytest.raises(ValueError, match=re.escape(reason)):
        translate_pattern(pattern)


def test_pattern_frontline_refuses_is_reported() -> None:
    """A pattern Frontline's regex check refuses leaves the rule out with that reason."""
    pattern = "%a" * 12  # each %a is a class of 17 characters: 204 in all, over the limit
    conversion = convert_one({"$mt": {"name": pattern}})
    assert conversion.document["eligibility"] == []
    (sentence,) = conversion.unsupported
    assert sentence.startswith(f"rule 'r': the pattern '{pattern}' becomes ")
    assert "which Frontline refuses: pattern is 208 characters; the limit is 200" in sentence


def test_nested_repetition_is_converted() -> None:
    """Nested repetition, which backtracking engines can take exponential time over, runs in
    linear time under RE2 and is converted."""
    conversion = convert_one({"$mt": {"url": "(/[%w_.-]+/?)*"}})
    assert conversion.unsupported == []
    assert len(conversion.document["eligibility"]) == 1


# -- what cannot be converted ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        pytest.param(
            {"all": [{"first": {"t": "a"}}, {"second": {"t": "b"}}]},
            "sequences of several messages ('all' with 2 patterns) cannot be converted",
            id="sequence",
        ),
        pytest.param(
            {"any": [{"m_0$all": [{"first": {"t": "a"}}, {"second": {"t": "b"}}]}]},
            "sequences of several messages",
            id="nested-sequence",
        ),
        pytest.param({"all": [{"m$not": {"t": "balance"}}]}, "the absence of a message", id="not"),
        pytest.param(
            {"count": 3, "all": [{"m": {"t": "a"}}]}, "'count' (3: the rule fires once", id="count"
        ),
        pytest.param(
            {"cap": 5, "all": [{"m": {"t": "a"}}]}, "'cap' (5: the rule fires with", id="cap"
        ),
        pytest.param(
            {"all": [{"m": {"$gt": {"amount": {"first": "amount"}}}}]},
            "other messages' attributes cannot be converted",
            id="other-message",
        ),
        pytest.param(
            {"all": [{"m": {"$gt": {"debit": {"$mul": {"$l": {"$m": "credit"}, "$r": 2}}}}}]},
            "expressions or with other messages' attributes",
            id="arithmetic",
        ),
        pytest.param(
            {"all": [{"m": {"$and": [{"state": "start"}, {"$s": 1}]}}]},
            "session state ('$s')",
            id="state",
        ),
        pytest.param(
            {"all": [{"m": {"first-name": "x"}}]},
            "'first-name' is not a Frontline field",
            id="dash",
        ),
        pytest.param({"all": [{"m": {"class": "x"}}]}, "'class' is not a Frontline", id="keyword"),
        pytest.param({"all": [{"m": {"a.count": 2}}]}, "'a.count' is not", id="function-name"),
        pytest.param(
            {"all": [{"m": {"$and": [{"x": 1}, {"x": "one"}]}}]},
            "m.x is compared with both numbers and strings",
            id="conflicting-types",
        ),
        pytest.param(
            {"all": [{"m": {"$and": [{"x": 1}, {"$iany": {"x": {"$i": 1}}}]}}]},
            "m.x is used both as a list and as a single value",
            id="list-and-scalar",
        ),
        pytest.param(
            {"all": [{"m": {"$and": [{"$iany": {"x": {"$i": 1}}}, {"x": 1}]}}]},
            "m.x is used both as a list and as a single value",
            id="scalar-after-list",
        ),
        pytest.param(
            {"all": [{"m": {"$and": [{"$neq": {"x": None}}, {"$iany": {"x": {"$i": 1}}}]}}]},
            "m.x is used both as a list and as a single value",
            id="neq-null-on-list",
        ),
        pytest.param(
            {"all": [{"m": {"$and": [{"$iany": {"x": {"$i": 1}}}, {"$neq": {"x": None}}]}}]},
            "m.x is used both as a list and as a single value",
            id="list-then-neq-null",
        ),
        pytest.param(
            {"all": [{"m": {"$and": [{"c": 1}, {"c.tier": "gold"}]}}]},
            "m.c.tier and m.c cannot both be fields",
            id="field-inside-field",
        ),
        pytest.param(
            {"all": [{"m": {"$iany": {"xs": {"$iall": {"$i": {"$lt": {"$i": 1}}}}}}}]},
            "lists of lists",
            id="list-of-lists",
        ),
        pytest.param(
            {"all": [{"m": {"$iany": {"xs": {"$and": [{"$i": 1}, {"$i.a": 1}]}}}}]},
            "used both as values and as objects",
            id="items-values-and-objects",
        ),
        pytest.param(
            {"all": [{"m": {"$iany": {"xs": {"$ex": {"$i.a": 1}}}}}]},
            "'$ex' on list items",
            id="item-presence",
        ),
        pytest.param(
            {"all": [{"m": {"$iany": {"xs": {"a": 1}}}}]}, "must test '$i'", id="item-without-i"
        ),
        pytest.param(
            {"all": [{"m": {"$iany": {"xs": {"$i.a.b": 1}}}}]},
            "nested item attributes",
            id="nested-item-attribute",
        ),
        pytest.param({"all": [{"m": {"$i": 1}}]}, "only meaningful inside", id="i-outside-list"),
        pytest.param({"all": [{"m": {"x": None}}]}, "'$eq' with null", id="eq-null"),
        pytest.param({"all": [{"m": {"$lt": {"x": True}}}]}, "orders booleans", id="bool-order"),
        pytest.param({"all": [{"m": {"x": [1, 2]}}]}, "comparisons with a list", id="list-literal"),
        pytest.param({"all": [{"m": {"x": float("nan")}}]}, "not finite", id="nan"),
        pytest.param({"all": [{"m": {"$mt": {"x": 5}}}]}, "needs a string pattern", id="mt-number"),
        pytest.param(
            {"all": [{"m": {"a": 1, "b": 2}}]}, "exactly one key, not 2 ('a', 'b')", id="two-keys"
        ),
        pytest.param(
            {"all": [{"m": {"$gt": {"a": 1, "b": 2}}}]}, "exactly one attribute", id="two-attrs"
        ),
        pytest.param({"all": [{"m": {"$or": []}}]}, "non-empty list", id="empty-or"),
        pytest.param({"all": [{"m": "x"}]}, "not a string", id="condition-not-object"),
        pytest.param({"all": []}, "'all' must be a non-empty list", id="empty-all"),
        pytest.param({"all": [{"a": {"x": 1}, "b": {"x": 2}}]}, "one key", id="two-names"),
        pytest.param({"run": "act"}, "exactly one of 'all' and 'any'", id="no-pattern"),
        pytest.param(
            {"all": [{"m": {"x": 1}}], "any": [{"m": {"x": 1}}]}, "exactly one of", id="both"
        ),
        pytest.param({"all": [{"m": {"x": 1}}], "when": 1}, "unknown rule key 'when'", id="key"),
        pytest.param(["all"], "a rule must be a JSON object, not a list", id="rule-not-object"),
    ],
)
def test_unsupported_is_reported(rule: Any, reason: str) -> None:
    """A rule that cannot be converted is left out and named with the construct's reason."""
    conversion = convert_durable({"t": {"kept": {"all": [{"m": {"ok": 1}}]}, "bad": rule}})
    assert [r["id"] for r in conversion.document["eligibility"]] == ["kept"]
    (sentence,) = conversion.unsupported
    assert sentence.startswith("rule 'bad': ")
    assert reason in sentence
    compile_ruleset(conversion.document)


def test_statechart_is_reported() -> None:
    """A statechart ruleset converts to no rules and says why."""
    conversion = convert_durable(
        {"expense$state": {"input": {"t_0": {"all": [{"m": {"x": 1}}], "to": "done"}}}}
    )
    assert conversion.unsupported == [
        "ruleset 'expense$state' is a statechart; statecharts and flowcharts cannot be converted"
    ]
    assert conversion.document["ruleset"] == "expense"
    assert conversion.document["eligibility"] == []
    compile_ruleset(conversion.document)


def test_priority_is_reported_but_converted() -> None:
    """`pri` only orders durable_rules' actions: the rule converts and the loss is reported."""
    conversion = convert_durable({"t": {"p": {"pri": 3, "all": [{"m": {"x": 1}}]}}})
    assert only_when(conversion) == "m.x == 1"
    assert conversion.unsupported == [
        "rule 'p': its priority 'pri' (3) is not converted (the rule is); Frontline lists "
        "eligible rules in document order"
    ]


def test_distinct_is_ignored() -> None:
    """`dist` has no effect on one-message rules, so it converts silently."""
    conversion = convert_durable({"t": {"d": {"dist": 1, "all": [{"m": {"x": 1}}]}}})
    assert conversion.unsupported == []
    assert only_when(conversion) == "m.x == 1"


def test_refused_condition_is_reported() -> None:
    """A condition Frontline refuses (nested too deep) leaves the rule out with its reason."""
    condition: dict[str, Any] = {"x": 1}
    for depth in range(40):
        condition = {"$and" if depth % 2 else "$or": [{"y": depth}, condition]}
    conversion = convert_durable(
        {"t": {"deep": {"all": [{"m": condition}]}, "flat": {"all": [{"m": {"x": 2}}]}}}
    )
    assert [r["id"] for r in conversion.document["eligibility"]] == ["flat"]
    assert conversion.unsupported == [
        "rule 'deep': Frontline refuses the converted condition: "
        "expression nests more than 32 levels deep"
    ]


@pytest.mark.parametrize(
    ("ruleset", "message"),
    [
        pytest.param([], "expected a durable_rules ruleset (a JSON object), not a list", id="list"),
        pytest.param({}, "this one has 0 keys", id="empty"),
        pytest.param({"a": {}, "b": {}}, "this one has 2 keys", id="two-rulesets"),
        pytest.param({"a": ["r"]}, "ruleset 'a' must map rule names to rules", id="rules-list"),
    ],
)
def test_not_a_ruleset(ruleset: Any, message: str) -> None:
    """Input that is not one durable_rules ruleset raises DurableImportError."""
    with pytest.raises(DurableImportError, match=re.escape(message)):
        convert_durable(ruleset)


# -- field types across rules ---------------------------------------------------------------------


def test_presence_takes_the_type_of_other_uses() -> None:
    """A field tested only for presence in one rule takes its type from another rule."""
    conversion = convert_durable(
        {
            "t": {
                "has": {"all": [{"m": {"$ex": {"amount": 1}}}]},
                "big": {"all": [{"m": {"$gt": {"amount": 5}}}]},
                "tags": {"all": [{"m": {"$nex": {"tags": 1}}}]},
                "tag": {"all": [{"m": {"$iany": {"tags": {"$i": "a"}}}}]},
                "note": {"all": [{"m": {"$ex": {"note": 1}}}]},
            }
        }
    )
    assert conversion.unsupported == []
    assert conversion.document["context"] == {
        "m.amount": "number",
        "m.tags": {"type": "list", "items": "string"},
        "m.note": "string",
    }


def test_conflict_across_rules_keeps_the_first() -> None:
    """A rule whose types conflict with earlier rules is left out, with none of its fields."""
    conversion = convert_durable(
        {
            "t": {
                "first": {"all": [{"m": {"x": 1}}]},
                "second": {"all": [{"m": {"$and": [{"other": 1}, {"x": "one"}]}}]},
                "third": {"all": [{"m": {"$iany": {"os": {"$i.a": 1}}}}]},
                "fourth": {"all": [{"m": {"$iany": {"os": {"$i.a": "one"}}}}]},
            }
        }
    )
    assert [r["id"] for r in conversion.document["eligibility"]] == ["first", "third"]
    assert conversion.unsupported == [
        "rule 'second': m.x is compared with both numbers and strings",
        "rule 'fourth': item.a of m.os are compared with both numbers and strings",
    ]
    assert conversion.document["context"] == {
        "m.x": "number",
        "m.os": {"type": "list", "items": {"a": "number"}},
    }


def test_item_attributes_merge_across_rules() -> None:
    """Object items collect the attributes every rule reads."""
    conversion = convert_durable(
        {
            "t": {
                "a": {"all": [{"m": {"$iany": {"os": {"$i.total": 1}}}}]},
                "b": {"all": [{"m": {"$iall": {"os": {"$mt": {"$i.status": "o.*"}}}}}]},
            }
        }
    )
    assert conversion.document["context"] == {
        "m.os": {"type": "list", "items": {"total": "number", "status": "string"}}
    }


# -- ids and names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "ids"),
    [
        pytest.param(["r_0", "approve"], ["r-0", "approve"], id="plain"),
        pytest.param(["Approve Big!"], ["approve-big"], id="case-and-punctuation"),
        pytest.param(["0day", "!!!"], ["rule-0day", "rule"], id="no-leading-letter"),
        pytest.param(["a_b", "a-b", "A B"], ["a-b", "a-b-2", "a-b-3"], id="unique"),
        pytest.param(["x" * 70, "x" * 71], ["x" * 64, "x" * 62 + "-2"], id="length"),
    ],
)
def test_rule_ids(names: list[str], ids: list[str]) -> None:
    """Rule names become valid, unique ids; the offer is the id; `because` keeps the name."""
    conversion = convert_durable({"t": {name: {"all": [{"m": {"x": 1}}]} for name in names}})
    rules = conversion.document["eligibility"]
    assert [r["id"] for r in rules] == ids
    assert [r["offer"] for r in rules] == ids
    assert [r["because"] for r in rules] == [
        f"Imported from durable_rules rule {name!r}" for name in names
    ]
    compile_ruleset(conversion.document)


@pytest.mark.parametrize(
    ("durable_name", "name", "expected"),
    [
        pytest.param("Expense_Approval", None, "expense-approval", id="from-durable"),
        pytest.param("x", "Retention Desk", "retention-desk", id="override"),
        pytest.param("42", None, "ruleset-42", id="digits"),
    ],
)
def test_ruleset_name(durable_name: str, name: str | None, expected: str) -> None:
    """The document's name comes from `name` or the durable_rules name, made valid."""
    conversion = convert_durable({durable_name: {}}, name=name)
    assert conversion.document["ruleset"] == expected
    assert conversion.document["description"] == (
        f"Imported from durable_rules ruleset {durable_name!r}"
    )


# -- the document works ---------------------------------------------------------------------------

REFERENCE = {
    "risk": {
        "fraud1": {"all": [{"m": {"$iall": {"payments": {"$gt": {"$i": 2000}}}}}], "run": "a"},
        "fraud3": {
            "all": [
                {
                    "m": {
                        "$iall": {
                            "bills": {
                                "$or": [{"$lt": {"$i.amount": 250}}, {"$gte": {"$i.amount": 300}}]
                            }
                        }
                    }
                }
            ],
            "run": "a",
        },
        "fraud4": {"all": [{"m": {"$iany": {"cards": {"$mt": {"$i": "three.*"}}}}}], "run": "a"},
        "approve": {
            "all": [
                {
                    "m": {
                        "$and": [
                            {"subject": "approve"},
                            {"$lte": {"invoice.amount": 1000}},
                            {"$nex": {"flag": 1}},
                        ]
                    }
                }
            ],
            "run": "a",
        },
        "url": {"all": [{"m": {"$imt": {"url": "https?://[%w.]+%.com"}}}], "run": "a"},
    }
}


@pytest.mark.parametrize(
    ("message", "fired"),
    [
        pytest.param({"payments": [2500, 3000]}, ["fraud1"], id="iall"),
        pytest.param({"payments": []}, [], id="iall-empty"),
        pytest.param({"bills": [{"amount": 100}, {"amount": 300}]}, ["fraud3"], id="iall-or"),
        pytest.param({"bills": [{"amount": 260}]}, [], id="iall-or-fails"),
        pytest.param({"cards": ["one", "threeX"]}, ["fraud4"], id="iany-mt"),
        pytest.param(
            {"subject": "approve", "invoice": {"amount": 1000}}, ["approve"], id="and-nested"
        ),
        pytest.param(
            {"subject": "approve", "invoice": {"amount": 1000}, "flag": "on"},
            [],
            id="nex-present",
        ),
        pytest.param({"subject": "approve"}, [], id="absent-is-not-true"),
        pytest.param({"url": "HTTPS://Example.COM"}, ["url"], id="imt"),
        pytest.param({"url": "https://example.org"}, [], id="imt-fails"),
    ],
)
def test_document_compiles_and_evaluates(message: dict[str, Any], fired: list[str]) -> None:
    """The converted document, as a mapping and as YAML text, fires the expected rules."""
    conversion = convert_durable(REFERENCE)
    assert conversion.unsupported == []
    text = dump_document(conversion.document)
    assert yaml.safe_load(text) == conversion.document
    for source in (conversion.document, text):
        compiled = compile_ruleset(source)
        assert compiled.evaluate({"m": message}).eligible_rules == fired


def test_dump_document_is_readable_yaml() -> None:
    """dump_document writes block YAML in document order with each condition on one line."""
    conversion = convert_one({"$and": [{"a": "x" * 120}, {"$iany": {"xs": {"$gt": {"$i": 1}}}}]})
    text = dump_document(conversion.document)
    assert text.splitlines()[:10] == [
        "ruleset: t",
        "description: Imported from durable_rules ruleset 't'",
        "context:",
        "  m.a: string",
        "  m.xs:",
        "    type: list",
        "    items: number",
        "eligibility:",
        "- id: r",
        f'  when: m.a == "{"x" * 120}" and any(item > 1 for item in m.xs)',
    ]

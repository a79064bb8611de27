"""``matches()`` under RE2: hostile patterns run in linear time, values are bounded, patterns
RE2 cannot run are refused at deploy, and a document's own tests have a time budget."""

from __future__ import annotations

import time

import pytest

from engine import RulesetError, compile_ruleset
from engine.regexes import MAX_VALUE_LENGTH, regex_matcher

from .helpers import document, fires

# Each took seconds under a backtracking engine: (a?){n}a{n} is exponential in n, the other
# two are quadratic in the length of a value that almost matches.
HOSTILE = [
    pytest.param(r"(a?){27}a{27}", "a" * 27, True, id="exponential"),
    pytest.param(r"\s+$", " " * 9_999 + "x", False, id="trailing-space"),
    pytest.param(r"\d+x", "1" * 9_999 + "y", False, id="digits-then-x"),
    pytest.param(r"(x+x+)+y", "x" * 9_999, False, id="nested-repeat"),
]


@pytest.mark.parametrize(("pattern", "value", "expected"), HOSTILE)
def test_hostile_patterns_answer_at_once(pattern: str, value: str, expected: bool) -> None:
    """The answer is right, and comes in well under a second where backtracking took many."""
    found = regex_matcher(pattern)
    started = time.perf_counter()
    assert found(value) is expected
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(("pattern", "value", "expected"), HOSTILE)
def test_hostile_patterns_in_a_ruleset(pattern: str, value: str, expected: bool) -> None:
    """The same through the expression language: the rule fires exactly when it matches."""
    escaped = pattern.replace("\\", "\\\\")  # the expression's string literal escapes too
    context = {"customer": {"address": {"city": value}}}
    assert fires(f'matches(customer.address.city, "{escaped}")', context) is expected


def test_search_semantics() -> None:
    """A match anywhere counts, as re.search; anchors and classes behave as documented."""
    assert regex_matcher("old")("gold") is True
    assert regex_matcher("^old")("gold") is False
    assert regex_matcher("^g[a-z]+$")("gold") is True
    assert regex_matcher("(?i)GOLD")("gold") is True
    assert regex_matcher("a.c")("a\nc") is False  # '.' stops at a newline unless (?s)
    assert regex_matcher("(?s)a.c")("a\nc") is True
    assert regex_matcher(r"\d")("٣") is False  # \d, \w and \s are ASCII in RE2
    assert regex_matcher("é+")("café") is True  # patterns and values are Unicode


def test_a_value_over_the_limit_is_unknown() -> None:
    """matches() of a value longer than the limit is unknown: neither it nor its negation
    fires, and the decision goes on."""
    long = "a" * (MAX_VALUE_LENGTH + 1)
    context = {"customer": {"address": {"city": long}}}
    assert not fires('matches(customer.address.city, "a")', context)
    assert not fires('not matches(customer.address.city, "a")', context)
    at_limit = {"customer": {"address": {"city": long[:MAX_VALUE_LENGTH]}}}
    assert fires('matches(customer.address.city, "a$")', at_limit)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        pytest.param("a(?=b)", "invalid perl operator: (?=", id="look-ahead"),
        pytest.param("(?<!a)b", "invalid perl operator: (?<!", id="look-behind"),
        pytest.param(r"(a)\\1", r"invalid escape sequence: \1", id="back-reference"),
        pytest.param("a{1001}", "invalid repetition size: {1001}", id="repeat-over-1000"),
        pytest.param(r"(\\pL{1000})", "pattern too large", id="program-too-large"),
        pytest.param("a" * 201, "the limit is 200", id="too-long"),
    ],
)
def test_patterns_re2_cannot_run_are_refused(pattern: str, reason: str) -> None:
    """Refused at deploy with RE2's reason, located at the rule."""
    with pytest.raises(RulesetError) as caught:
        compile_ruleset(
            document(
                eligibility=[
                    {
                        "id": "r",
                        "when": f'matches(customer.address.city, "{pattern}")',
                        "offer": "o",
                    }
                ]
            )
        )
    (problem,) = caught.value.errors
    assert "bad regular expression" in problem.message
    assert reason in problem.message


def test_tests_share_a_time_budget() -> None:
    """Once the budget is spent the test that spent it and every later one fail, saying so."""
    tests = [
        {"name": f"t{k}", "context": {"customer": {"tier": "gold"}}, "expect": {"eligible": ["r"]}}
        for k in range(3)
    ]
    compiled = compile_ruleset(
        document(
            eligibility=[{"id": "r", "when": 'customer.tier == "gold"', "offer": "o"}],
            tests=tests,
        )
    )
    assert all(r.passed for r in compiled.run_tests())
    ticks = iter(range(100))  # a clock that moves one second each time it is read
    assert all(r.passed for r in compiled.run_tests(lambda: next(ticks), budget=10))
    spent = compiled.run_tests(lambda: next(ticks), budget=2)
    # read at 0 (deadline 2), 1 before t0, 2 after it: spent, so t0 fails and the rest do not run
    assert [r.passed for r in spent] == [False, False, False]
    assert spent[0].failures == ["took the document's tests past their 2 s budget"]
    assert spent[1].failures == ["not run: the document's tests took more than their 2 s budget"]

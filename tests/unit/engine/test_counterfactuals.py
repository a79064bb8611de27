"""Counterfactuals (engine/counterfactuals.py): candidates come from the literals each
condition compares an input with, each one changes ONE input, and only what an evaluation
confirms is reported, the smallest change first."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine import CompiledRuleset, compile_ruleset
from engine.counterfactuals import ABSENT, Exploration, Inputs, explore, rule_inputs, targets
from engine.times import format_time

from .helpers import document

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def offer_rule(condition: str, **extra: Any) -> CompiledRuleset:
    """One eligibility rule ``r`` giving offer ``o``."""
    return compile_ruleset(
        document(eligibility=[{"id": "r", "when": condition, "offer": "o"}], **extra)
    )


def explored(
    ruleset: CompiledRuleset, context: dict[str, Any], **kwargs: Any
) -> dict[str, Exploration]:
    """Each target's exploration, by the rule that fired or the offer not given; every
    counterfactual found is checked here again."""
    inputs = Inputs(
        context,
        now=kwargs.pop("now", NOW),
        counters=kwargs.pop("counters", None),
        answers=kwargs.pop("answers", None),
    )
    found = {}
    for e in explore(ruleset, inputs, **kwargs):
        found[e.target.rule or e.target.offer or ""] = e
        for c in e.found:
            if c.path.startswith("count("):  # count("payment_failed", within="7d")
                event, within = c.path.split('"')[1::2]
                changed = inputs.changed("", c.new, (event, within))
            else:
                changed = inputs.changed(c.path, c.new)
            assert e.target.reached(changed.evaluate(ruleset)), c
    return found


def only(found: dict[str, Exploration], key: str) -> tuple[str, Any, Any]:
    """The smallest change found for ``key``: (text, old, new)."""
    best = found[key].found[0]
    return best.text, best.old, best.new


# -- numbers: integer and number boundaries ------------------------------------------------


def test_an_integer_threshold_is_reached_at_its_boundary() -> None:
    found = explored(
        offer_rule("customer.tenure_months >= 24"), {"customer": {"tenure_months": 20}}
    )
    assert only(found, "o") == (
        "customer.tenure_months ≥ 24 would have made o eligible",
        20,
        24,
    )


def test_a_strict_integer_threshold_is_reached_one_past_it() -> None:
    found = explored(offer_rule("customer.tenure_months > 24"), {"customer": {"tenure_months": 20}})
    assert only(found, "o") == ("customer.tenure_months > 24 would have made o eligible", 20, 25)


def test_a_rule_that_fired_stops_one_below_an_integer_boundary() -> None:
    found = explored(
        offer_rule("customer.tenure_months >= 24"), {"customer": {"tenure_months": 30}}
    )
    assert only(found, "r") == (
        "customer.tenure_months < 24 would have made o not eligible",
        30,
        23,
    )


def test_an_integer_compared_with_a_fraction_takes_whole_values() -> None:
    found = explored(offer_rule("customer.tenure_months > 2.5"), {"customer": {"tenure_months": 1}})
    assert only(found, "o") == ("customer.tenure_months > 2.5 would have made o eligible", 1, 3)


@pytest.mark.parametrize(
    ("condition", "score", "text", "new"),
    [
        (
            "customer.churn_score > 0.8",
            0.9,
            "customer.churn_score ≤ 0.8 would have made o not eligible",
            0.8,
        ),
        (
            "customer.churn_score >= 0.5",
            0.62,
            "customer.churn_score < 0.5 would have made o not eligible",
            0.49,
        ),
        (
            "customer.churn_score > 0.7",
            0.6,
            "customer.churn_score > 0.7 would have made o eligible",
            0.71,
        ),
        (
            "customer.churn_score >= 0.75",
            0.6,
            "customer.churn_score ≥ 0.75 would have made o eligible",
            0.75,
        ),
        (
            "customer.churn_score < 0.25",
            0.3,
            "customer.churn_score < 0.25 would have made o eligible",
            0.249,
        ),
    ],
)
def test_a_number_boundary_steps_one_place_past_the_literal(
    condition: str, score: float, text: str, new: float
) -> None:
    """Numbers are not integers: the nearest value past 0.5 is 0.49, past 0.25 is 0.249."""
    found = explored(offer_rule(condition), {"customer": {"churn_score": score}})
    key = "r" if "not eligible" in text else "o"
    assert only(found, key) == (text, score, new)


def test_a_whole_number_literal_on_a_number_field_steps_by_a_hundredth() -> None:
    found = explored(offer_rule("interaction.amount >= 100"), {"interaction": {"amount": 150}})
    assert only(found, "r") == (
        "interaction.amount < 100 would have made o not eligible",
        150,
        99.99,
    )


def test_the_smallest_change_wins_among_several_inputs() -> None:
    """Both inputs can stop the rule; the smaller relative change is the counterfactual and
    the other is an alternative."""
    ruleset = offer_rule("customer.tenure_months >= 10 and history.contacts_7d >= 2")
    found = explored(ruleset, {"customer": {"tenure_months": 11}, "history": {"contacts_7d": 9}})
    best, other = found["r"].found
    assert best.path == "customer.tenure_months" and best.new == 9  # 2/11 apart
    assert other.path == "history.contacts_7d" and other.new == 1  # 8/9 apart


def test_a_field_compared_with_several_thresholds_is_phrased_as_the_value() -> None:
    """Two thresholds: no single bound describes the other side, so the value is given."""
    ruleset = offer_rule("customer.tenure_months >= 12 and customer.tenure_months < 60")
    found = explored(ruleset, {"customer": {"tenure_months": 6}})
    assert only(found, "o") == ("customer.tenure_months = 12 would have made o eligible", 6, 12)


# -- strings, enums, booleans, lists -------------------------------------------------------


def test_an_enum_in_a_list_is_entered_with_its_first_item() -> None:
    ruleset = offer_rule('customer.tier in ["gold", "platinum"]')
    found = explored(ruleset, {"customer": {"tier": "silver"}})
    assert only(found, "o") == (
        'customer.tier = "gold" would have made o eligible',
        "silver",
        "gold",
    )


def test_an_enum_leaves_a_list_for_its_first_value_outside_it() -> None:
    ruleset = offer_rule('customer.tier in ["gold", "platinum"]')
    found = explored(ruleset, {"customer": {"tier": "gold"}})
    # bronze comes first in the field's enum, and is not in the list
    assert only(found, "r") == (
        'customer.tier = "bronze" would have made o not eligible',
        "gold",
        "bronze",
    )


def test_a_string_without_an_enum_can_take_the_literal_but_not_leave_it() -> None:
    """channel == "voice" is reached by "voice"; leaving it needs a value the document never
    names, so the fired rule is reported with no counterfactual."""
    ruleset = offer_rule('interaction.channel == "voice"')
    assert only(explored(ruleset, {"interaction": {"channel": "chat"}}), "o")[2] == "voice"
    stuck = explored(ruleset, {"interaction": {"channel": "voice"}})["r"]
    assert stuck.found == () and stuck.candidates == 0


def test_another_literal_the_field_is_compared_with_is_a_candidate() -> None:
    ruleset = offer_rule('interaction.channel == "voice" and interaction.channel != "email"')
    found = explored(ruleset, {"interaction": {"channel": "voice"}})
    assert only(found, "r")[2] == "email"


def test_a_boolean_takes_the_other_value() -> None:
    found = explored(offer_rule("customer.vip"), {"customer": {"vip": False}})
    assert only(found, "o") == ("customer.vip = true would have made o eligible", False, True)
    found = explored(offer_rule("not customer.vip"), {"customer": {"vip": False}})
    assert only(found, "r") == ("customer.vip = true would have made o not eligible", False, True)
    found = explored(offer_rule("customer.vip == false"), {"customer": {"vip": True}})
    assert only(found, "o")[2] is False


def test_an_integer_in_a_list_steps_past_its_ends() -> None:
    ruleset = offer_rule("history.contacts_7d in [3, 4]")
    assert only(explored(ruleset, {"history": {"contacts_7d": 1}}), "o")[2] == 3
    assert only(explored(ruleset, {"history": {"contacts_7d": 3}}), "r")[2] == 2
    ruleset = offer_rule("history.contacts_7d not in [3, 4]")
    assert only(explored(ruleset, {"history": {"contacts_7d": 4}}), "o")[2] == 5


def test_an_item_is_added_to_or_removed_from_a_list() -> None:
    ruleset = offer_rule('not contains(customer.tags, "discount-active")')
    found = explored(ruleset, {"customer": {"tags": ["autopay", "discount-active"]}})
    assert only(found, "o") == (
        'customer.tags without "discount-active" would have made o eligible',
        ["autopay", "discount-active"],
        ["autopay"],
    )
    ruleset = offer_rule('"vip" in customer.tags')
    found = explored(ruleset, {"customer": {"tags": []}})
    assert only(found, "o") == ('customer.tags with "vip" would have made o eligible', [], ["vip"])


# -- missing fields ------------------------------------------------------------------------


def test_a_missing_field_is_given_the_value_that_flips_it() -> None:
    found = explored(offer_rule("customer.tenure_months >= 24"), {"customer": {}})
    assert only(found, "o") == ("customer.tenure_months ≥ 24 would have made o eligible", None, 24)


def test_a_field_tested_with_missing_is_removed() -> None:
    ruleset = offer_rule("missing(customer.address.city)")
    found = explored(ruleset, {"customer": {"address": {"city": "Leeds"}}})
    best = found["o"].found[0]
    assert best.new is ABSENT and best.old == "Leeds"
    assert best.text == "customer.address.city missing would have made o eligible"


def test_an_unknown_and_can_be_decided_by_the_known_side() -> None:
    """With tier missing, `tier == "gold" and vip` is unknown. When vip is false, giving
    tier a value cannot make it true (two inputs would have to change): none. When vip is
    true, tier "gold" alone does it."""
    ruleset = offer_rule('customer.tier == "gold" and customer.vip')
    assert explored(ruleset, {"customer": {"vip": False}})["o"].found == ()
    found = explored(ruleset, {"customer": {"vip": True}})
    assert only(found, "o") == ('customer.tier = "gold" would have made o eligible', None, "gold")


# -- what cannot flip with one input -------------------------------------------------------


def test_a_rule_needing_two_changes_reports_none() -> None:
    ruleset = offer_rule("customer.vip and history.contacts_7d >= 3")
    nothing = explored(ruleset, {"customer": {"vip": False}, "history": {"contacts_7d": 1}})["o"]
    assert nothing.found == () and nothing.evaluations > 0 and not nothing.exhausted


def test_an_or_held_by_two_inputs_reports_none() -> None:
    ruleset = offer_rule("customer.vip or history.contacts_7d >= 3")
    held = explored(ruleset, {"customer": {"vip": True}, "history": {"contacts_7d": 5}})["r"]
    assert held.found == ()


def test_inputs_read_through_arithmetic_or_functions_are_not_explored() -> None:
    ruleset = offer_rule('customer.tenure_months % 12 == 0 and matches(interaction.channel, "^v")')
    nothing = explored(ruleset, {"customer": {"tenure_months": 5}, "interaction": {"channel": "x"}})
    assert nothing["o"].found == ()
    assert nothing["o"].not_explored == {
        "customer.tenure_months": "read through arithmetic",
        "interaction.channel": "read through matches()",
    }


def test_fixed_inputs_are_not_changed_and_say_why() -> None:
    """A masked input (pii) is left as it is: the rule that needs it to change stays put."""
    ruleset = offer_rule("missing(customer.email) and customer.vip")
    context = {"customer": {"email": "hmac-sha256:ab", "vip": True}}
    kept = explored(ruleset, context, fixed={"customer.email": "masked"})["o"]
    assert kept.found == ()
    assert kept.not_explored == {"customer.email": "masked"}
    free = explored(ruleset, context)["o"]
    assert free.found[0].new is ABSENT


def test_the_budget_bounds_the_evaluations() -> None:
    ruleset = offer_rule(
        "customer.vip and history.contacts_7d in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] "
        "and customer.tenure_months >= 24"
    )
    context = {"customer": {"vip": False, "tenure_months": 1}, "history": {"contacts_7d": 0}}
    bounded = explored(ruleset, context, budget=3)["o"]
    assert bounded.evaluations == 3 and bounded.exhausted and bounded.candidates > 3
    full = explored(ruleset, context)["o"]
    assert full.evaluations == full.candidates and not full.exhausted


def test_targets_are_bounded_too() -> None:
    ruleset = compile_ruleset(
        document(
            eligibility=[
                {"id": f"r{k}", "when": "customer.vip", "offer": f"o{k}"} for k in range(9)
            ]
        )
    )
    inputs = Inputs({"customer": {"vip": False}})
    assert len(targets(inputs.evaluate(ruleset))) == 9
    assert len(explore(ruleset, inputs, max_targets=4)) == 4


# -- times, counters, answers, tables, escalation, alerts ----------------------------------


def test_days_since_is_turned_into_a_boundary_instant() -> None:
    ruleset = offer_rule("days_since(customer.last_payment_at) >= 30")
    paid = format_time(NOW - timedelta(days=10))
    found = explored(ruleset, {"customer": {"last_payment_at": paid}})
    best = found["o"].found[0]
    boundary = format_time(NOW - timedelta(days=30))
    assert best.new == boundary
    assert best.text == f"customer.last_payment_at ≤ {boundary} would have made o eligible"


def test_a_time_compared_with_now_moves_to_now() -> None:
    ruleset = offer_rule("customer.last_payment_at <= now()")
    found = explored(ruleset, {"customer": {"last_payment_at": "2027-01-01T00:00:00Z"}})
    assert only(found, "o")[2] == format_time(NOW)
    # Without a now there is nothing to compare with: not explored.
    ruleset_inputs = Inputs({"customer": {"last_payment_at": "2027-01-01T00:00:00Z"}})
    (nothing,) = explore(ruleset, ruleset_inputs)
    assert nothing.found == () and "customer.last_payment_at" in nothing.not_explored


def test_a_counter_is_an_input_too() -> None:
    ruleset = offer_rule('count("payment_failed", within="7d") >= 3')
    found = explored(ruleset, {}, counters={"payment_failed": {"7d": 1}})
    assert only(found, "o") == (
        'count("payment_failed", within="7d") ≥ 3 would have made o eligible',
        1,
        3,
    )


def test_an_answer_is_an_input_too() -> None:
    ruleset = offer_rule("answers.charge_age_days > 60")
    found = explored(ruleset, {}, answers={"charge_age_days": 12})
    assert only(found, "o") == ("answers.charge_age_days > 60 would have made o eligible", 12, 61)


def test_a_tables_input_cells_give_the_candidates() -> None:
    ruleset = compile_ruleset(
        document(
            tables=[
                {
                    "id": "limit",
                    "hit": "first",
                    "inputs": ["customer.tier", "customer.tenure_months"],
                    "outputs": ["pct"],
                    "rows": [
                        ['"platinum"', ">= 36", 30],
                        ['"gold"', "[24..48]", 20],
                        ["-", "-", 5],
                    ],
                }
            ],
            eligibility=[{"id": "r", "when": "tables.limit.pct >= 20", "offer": "o"}],
        )
    )
    found = explored(ruleset, {"customer": {"tier": "gold", "tenure_months": 12}})
    assert only(found, "o") == ("customer.tenure_months = 24 would have made o eligible", 12, 24)
    assert rule_inputs(ruleset, "eligibility", 0) == ["customer.tenure_months", "customer.tier"]


def test_an_escalation_says_where_it_would_have_gone() -> None:
    ruleset = compile_ruleset(
        document(
            escalation=[
                {
                    "id": "vip",
                    "when": "customer.churn_score > 0.8",
                    "queue": "retention",
                    "priority": 1,
                },
                {
                    "id": "repeat",
                    "when": "history.contacts_7d >= 4",
                    "queue": "seniors",
                    "priority": 2,
                },
            ]
        )
    )
    found = explored(ruleset, {"customer": {"churn_score": 0.9}, "history": {"contacts_7d": 5}})
    assert only(found, "vip") == (
        "customer.churn_score ≤ 0.8 would have escalated to seniors instead of retention",
        0.9,
        0.8,
    )
    found = explored(ruleset, {"customer": {"churn_score": 0.9}, "history": {"contacts_7d": 1}})
    assert (
        only(found, "vip")[0] == "customer.churn_score ≤ 0.8 would not have escalated to retention"
    )


def test_an_alert_would_not_have_been_raised() -> None:
    ruleset = compile_ruleset(
        document(
            alerts=[
                {
                    "id": "churn",
                    "when": "customer.churn_score > 0.7",
                    "severity": "warning",
                    "message": "risk",
                }
            ]
        )
    )
    found = explored(ruleset, {"customer": {"churn_score": 0.95}})
    assert only(found, "churn") == (
        "customer.churn_score ≤ 0.7 would not have raised churn",
        0.95,
        0.7,
    )


def test_a_rule_stopped_while_its_offer_stays_says_so() -> None:
    ruleset = compile_ruleset(
        document(
            eligibility=[
                {"id": "a", "when": "customer.vip", "offer": "waive"},
                {"id": "b", "when": "history.contacts_7d >= 2", "offer": "waive"},
            ]
        )
    )
    found = explored(ruleset, {"customer": {"vip": True}, "history": {"contacts_7d": 3}})
    assert only(found, "a")[0] == (
        "customer.vip = false would have stopped rule a (waive still eligible through b)"
    )


def test_changing_an_input_leaves_the_callers_inputs_as_they_were() -> None:
    context = {"customer": {"tenure_months": 20, "tier": "gold"}, "answers": {"x": 1}}
    snapshot = copy.deepcopy(context)
    inputs = Inputs(context, counters={"e": {"7d": 1}})
    changed = inputs.changed("customer.tenure_months", 24)
    assert changed.context["customer"] == {"tenure_months": 24, "tier": "gold"}
    removed = inputs.changed("customer.tier", ABSENT)
    assert removed.context["customer"] == {"tenure_months": 20}
    answered = inputs.changed("answers.x", 2)
    assert answered.answers == {"x": 2}
    counted = inputs.changed("", 5, ("e", "7d"))
    assert counted.counters == {"e": {"7d": 5}}
    explore(offer_rule("customer.tenure_months >= 24"), inputs)
    assert context == snapshot and inputs.counters == {"e": {"7d": 1}}


def test_the_starter_retention_desk_explains_a_decision() -> None:
    """On the starter document: every counterfactual found is confirmed, within budget."""
    text = (Path(__file__).resolve().parents[3] / "rulesets" / "retention-desk.yaml").read_text()
    ruleset = compile_ruleset(text)
    context = {
        "customer": {
            "tier": "gold",
            "churn_score": 0.9,
            "tenure_months": 20,
            "tags": [],
            "monthly_spend": 150,
        },
        "history": {"contacts_7d": 3},
        "interaction": {"intent": "cancel", "channel": "voice"},
    }
    found = explored(ruleset, context, fixed={"customer.email": "masked"})
    assert only(found, "loyalty-discount")[0] == (
        "customer.tenure_months ≥ 24 would have made loyalty-discount eligible"
    )
    assert only(found, "high-value-cancel")[0] == (
        "customer.monthly_spend < 100 would not have escalated to high-value-retention"
    )
    assert all(e.evaluations <= 32 for e in found.values())

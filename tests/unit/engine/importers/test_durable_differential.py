"""durable_rules itself and the converted Frontline document fire the same rules.

Seeded random durable_rules rulesets use every operator the importer converts, over a fixed
message schema (numbers, strings, booleans, nested attributes, lists of values and of
objects). Hundreds of messages per ruleset put each attribute present or absent and its value
on, just below and just above the literals the rules compare with. durable_rules runs each
message as a fact (facts fire every matching rule; an event would be consumed by the first)
and the converted document evaluates ``{"m": message}``; the sets of rules that fire must be
equal for every message.

We drive durable_rules' C engine directly instead of its Python host: the host's action loop
re-asserts the session state after every action, which loops forever once a rule matches
the state fact (any rule of only ``$nex``), and its timer threads race with the test. Each
message gets its own session (durable_rules caps a ruleset at 1024 sessions, so one ruleset
never sees that many messages), and only the actions whose frame holds the message itself
count: durable_rules also matches each new session's state fact against the rules.

The generator stays inside what the importer documents as equal: values of the inferred
types, ``$mt`` patterns that durable_rules' approximate regex automaton gets right (checked
here on every message), strings without the characters JSON escapes, a string value for an
attribute the rules only test for presence (the importer declares it a string), ``$or`` inside
list items only over one item attribute (durable_rules lets a later attribute of the item
reset an earlier match there), and no connective nested in another (or inside ``$iall``/
``$iany``) in the second pattern of an ``any`` rule (durable_rules never fires such a
pattern).
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("durable")
import durable_rules_engine

from engine import compile_ruleset
from engine.importers.durable import convert_durable

SEEDS = range(6)
RULES_PER_RULESET = 14
MESSAGES_PER_RULESET = 300  # well under durable_rules' 1024 sessions per ruleset

NUMBER_LITERALS = {"amount": [-3, 0, 10, 99.5, 1000], "customer.age": [18, 65]}
TIERS = ["bronze", "gold", "silver"]
# Patterns durable_rules' automaton matches exactly on NAMES (it is wrong on others, such as
# "%l*c|%d", which it lets match "a1"): the test asserts agreement on every message anyway.
PATTERNS = [
    "gold",
    "go.*",
    ".*ld",
    "%u%l+",
    "[gs]%l*",
    "g(ol|ra)d",
    "%d+",
    "silver|gold",
    "[^b]%l*",
    "x?gold",
    "[a-f]+%d*",
    "%a+",
    "%w{2,6}",
    "s%l+%d?",
    "(gold)+",
    "[^%d]+",
    "[b-g]o%l{2}",
    "g%l*d|%d+",
]
NAMES = ["gold", "Gold", "GOLD", "golden", "gol", "silver", "Silver9", "bronze", "b0b", "12"]
NAMES += ["x-ray", "ab12cd", "", "goldgold", "sgold", "G0ld", "graD", "a"]
STATUSES = ["open", "held", "closed"]
COMPARISONS = ["$eq", "$neq", "$lt", "$lte", "$gt", "$gte"]
OPERATORS = {*COMPARISONS, "$and", "$or", "$ex", "$nex", "$mt", "$imt", "$iall", "$iany"}


# -- rulesets ------------------------------------------------------------------------------------


class RulesetMaker:
    """Random durable_rules conditions over the message schema; records the operators used."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.used: set[str] = set()

    def ruleset(self, name: str) -> dict[str, Any]:
        rules: dict[str, Any] = {}
        for n in range(RULES_PER_RULESET):
            if self.rng.random() < 0.2:
                # A later pattern of an 'any' with nested connectives never fires in
                # durable_rules (see the module docstring), so the second pattern is flat.
                patterns = [{"m_0": self.condition()}, {"m_1": self.condition(nested=False)}]
                rules[f"r{n}"] = {"any": patterns, "run": "act"}
            else:
                rules[f"r{n}"] = {"all": [{"m": self.condition()}], "run": "act"}
        return {name: rules}

    def condition(self, depth: int = 0, *, nested: bool = True) -> Any:
        """A condition; ``nested=False`` allows one '$and'/'$or' at the top and no deeper."""
        rng = self.rng
        if (depth == 0 or (nested and depth < 2)) and rng.random() < 0.35:
            op = self.use(rng.choice(["$and", "$or"]))
            parts = [self.condition(depth + 1, nested=nested) for _ in range(rng.randint(2, 3))]
            return {op: parts}
        kind = rng.choice(["number", "tier", "name", "vip", "presence", "list", "list"])
        if kind == "number":
            attribute = rng.choice(list(NUMBER_LITERALS))
            return self.comparison(attribute, rng.choice(NUMBER_LITERALS[attribute]))
        if kind == "tier":
            return self.comparison("tier", rng.choice(TIERS))
        if kind == "name":
            return self.text_test("customer.name")
        if kind == "vip":
            return self.comparison("vip", rng.choice([True, False]))
        if kind == "presence":
            attribute = rng.choice(["note", "amount", "customer.name", "tags"])
            # '$neq' null is false on a list in durable_rules; the importer refuses it there.
            if attribute != "tags" and rng.random() < 0.15:
                return {self.use("$neq"): {attribute: None}}
            return {self.use(rng.choice(["$ex", "$nex"])): {attribute: 1}}
        return self.list_test(connectives=nested and depth < 2)

    def list_test(self, *, connectives: bool) -> Any:
        op = self.use(self.rng.choice(["$iall", "$iany"]))
        field = self.rng.choice(["scores", "tags", "orders"])
        if field == "scores":
            return {op: {field: self.item_test(lambda: self.number_test("$i"), connectives)}}
        if field == "tags":
            return {op: {field: self.item_test(lambda: self.text_test("$i"), connectives)}}
        total = self.item_test(lambda: self.number_test("$i.total"), connectives)
        status = self.item_test(
            lambda: self.comparison("$i.status", self.rng.choice(STATUSES)), connectives
        )
        if connectives and self.rng.random() < 0.4:
            return {op: {field: {self.use("$and"): self.rng.sample([total, status], 2)}}}
        return {op: {field: self.rng.choice([total, status])}}

    def item_test(self, one: Callable[[], Any], connectives: bool) -> Any:
        """A test of one item attribute, maybe an '$or' of two (always over that attribute:
        durable_rules lets another attribute of the item reset a match)."""
        if connectives and self.rng.random() < 0.3:
            return {self.use("$or"): [one(), one()]}
        return one()

    def number_test(self, attribute: str) -> Any:
        return self.comparison(attribute, self.rng.choice([0, 10, 99.5]))

    def text_test(self, attribute: str) -> Any:
        op = self.rng.choice(["$mt", "$imt", "$eq", "$neq"])
        if op in ("$mt", "$imt"):
            return {self.use(op): {attribute: self.rng.choice(PATTERNS)}}
        return self.comparison(attribute, self.rng.choice(NAMES))

    def comparison(self, attribute: str, literal: Any) -> Any:
        """``attribute`` compared with ``literal``; equality in either of its spellings."""
        ops = ["$eq", "$neq"] if isinstance(literal, bool) else COMPARISONS
        op = self.use(self.rng.choice(ops))
        if op == "$eq" and self.rng.random() < 0.5:
            return {attribute: literal}
        return {op: {attribute: literal}}

    def use(self, op: str) -> str:
        self.used.add(op)
        return op


def ruleset(seed: int) -> tuple[dict[str, Any], set[str]]:
    """A durable_rules ruleset named after the seed, and the operators it uses."""
    maker = RulesetMaker(seed)
    return maker.ruleset(f"differential_{seed}"), maker.used


# -- messages ------------------------------------------------------------------------------------


def around(literals: list[Any]) -> list[Any]:
    """Each literal, the integers and halves either side of it, and the literal as a float."""
    return [v for x in literals for v in (x, x - 1, x + 1, x - 0.5, x + 0.5, float(x))]


def message(rng: random.Random) -> dict[str, Any]:
    def maybe() -> bool:
        return rng.random() < 0.7

    msg: dict[str, Any] = {}
    customer: dict[str, Any] = {}
    if maybe():
        msg["amount"] = rng.choice(around(NUMBER_LITERALS["amount"]))
    if maybe():
        customer["age"] = rng.choice(around(NUMBER_LITERALS["customer.age"]))
    if maybe():
        customer["name"] = rng.choice(NAMES)
    if customer or maybe():
        msg["customer"] = customer
    if maybe():
        msg["tier"] = rng.choice([*TIERS, "gol", "golden", "Gold", "", "silverx", "a", "zinc"])
    if maybe():
        msg["vip"] = rng.choice([True, False])
    if rng.random() < 0.5:
        msg["note"] = rng.choice(["", "call back"])
    if maybe():
        msg["scores"] = [rng.choice(around([0, 10, 99.5])) for _ in range(rng.randint(0, 3))]
    if maybe():
        msg["tags"] = rng.sample(NAMES, rng.randint(0, 3))
    if maybe():
        msg["orders"] = [order(rng) for _ in range(rng.randint(0, 3))]
    return msg


def as_declared(msg: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """``msg`` with a string for each attribute the rules only test for presence.

    The importer declares such an attribute a string, and values of another type are where
    Frontline and durable_rules are documented to differ.
    """
    for path, declared in context.items():
        *parents, leaf = path.removeprefix("m.").split(".")
        holder = msg
        for parent in parents:
            holder = holder.get(parent, {})
        if declared == "string" and leaf in holder and not isinstance(holder[leaf], str):
            holder[leaf] = "present"
    return msg


def order(rng: random.Random) -> dict[str, Any]:
    fields = {"total": rng.choice(around([0, 10, 99.5])), "status": rng.choice(STATUSES)}
    # Keys in either order: durable_rules reads an item's attributes in order.
    return {k: v for k, v in rng.sample(list(fields.items()), 2) if rng.random() < 0.85}


# -- running durable_rules -----------------------------------------------------------------------


class DurableRules:
    """One durable_rules ruleset in the C engine; each message is a fact in a fresh session."""

    _names = itertools.count()

    def __init__(self, definition: dict[str, Any]) -> None:
        ((name, rules),) = definition.items()
        unique = f"{name}_{next(self._names)}"
        # The C engine refuses "run": the Python host strips it to look the action up.
        conditions = {
            rule: {k: v for k, v in body.items() if k != "run"} for rule, body in rules.items()
        }
        self.handle = durable_rules_engine.create_ruleset(unique, json.dumps(conditions))
        self.sessions = itertools.count()

    def fired(self, msg: dict[str, Any]) -> set[str]:
        session = f"s{next(self.sessions)}"
        assert int(session[1:]) < 1024, "durable_rules allows 1024 sessions per ruleset"
        fact = {**msg, "id": session, "sid": session}
        _, state = durable_rules_engine.assert_fact(self.handle, json.dumps(fact))
        fired: set[str] = set()
        for actions in self._actions(state):
            for rule, frame in actions.items():
                if any(m["id"] == session for m in frame.values()):
                    fired.add(rule)
        return fired

    def _actions(self, state: int) -> Iterator[dict[str, Any]]:
        """Start and complete, without running them, the actions queued for the session."""
        started = durable_rules_engine.start_action_for_state(self.handle, state)
        actions = started[1] if started else None
        while actions:
            yield json.loads(actions)
            actions = durable_rules_engine.complete_and_start_action(self.handle, state)


# -- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_same_rules_fire(seed: int) -> None:
    """On every generated message, durable_rules and the converted document fire the same rules."""
    definition, _ = ruleset(seed)
    conversion = convert_durable(definition)
    assert conversion.unsupported == []
    compiled = compile_ruleset(conversion.document)
    durable = DurableRules(definition)
    rng = random.Random(1000 + seed)
    fired_somewhere: set[str] = set()
    quiet_somewhere: set[str] = set()
    for _ in range(MESSAGES_PER_RULESET):
        msg = as_declared(message(rng), conversion.document["context"])
        expected = durable.fired(msg)
        got = set(compiled.evaluate({"m": msg}).eligible_rules)
        assert got == expected, (
            f"message {json.dumps(msg)}: durable_rules fired {sorted(expected)}, Frontline "
            f"{sorted(got)}; rules: "
            + json.dumps({r: definition[f"differential_{seed}"][r] for r in got ^ expected})
        )
        fired_somewhere |= got
        quiet_somewhere |= set(definition[f"differential_{seed}"]) - got
    # Not vacuous: most rules fire on some messages and stay quiet on others.
    assert len(fired_somewhere & quiet_somewhere) >= RULES_PER_RULESET * 2 // 3


def test_every_operator_is_generated() -> None:
    """The generated rulesets use every operator the importer converts, and `any`."""
    used = set().union(*(ruleset(seed)[1] for seed in SEEDS))
    assert used == OPERATORS
    gates = {
        gate
        for seed in SEEDS
        for rule in ruleset(seed)[0].popitem()[1].values()
        for gate in rule
        if gate in ("all", "any")
    }
    assert gates == {"all", "any"}


@pytest.mark.parametrize(
    ("rule", "messages"),
    [
        pytest.param(
            {"$iall": {"xs": {"$gt": {"$i": 1}}}},
            [{"xs": []}, {"xs": [2]}, {"xs": [2, 1]}, {}],
            id="iall-empty-list-is-false",
        ),
        pytest.param(
            {"$nex": {"x": 1}},
            [{}, {"x": "a"}, {"y": "a"}],
            id="nex-only-also-matches-state-fact",
        ),
        pytest.param(
            {"$neq": {"x": "a"}}, [{}, {"x": "a"}, {"x": "b"}], id="neq-on-absent-is-false"
        ),
        pytest.param({"$neq": {"x": None}}, [{}, {"x": "a"}], id="neq-null-is-presence"),
        pytest.param(
            {"$lt": {"s": "gold"}},
            [{"s": "gol"}, {"s": "gold"}, {"s": ""}, {"s": "Gold"}, {"s": "golf"}],
            id="string-order",
        ),
        pytest.param(
            {"$gte": {"n": 10}},
            [{"n": 10}, {"n": 10.0}, {"n": 9.999}, {"n": -10}, {"n": 123456.5}],
            id="int-and-float",
        ),
        pytest.param(
            {"$imt": {"s": "G(ol|ra)D"}},
            [{"s": "gold"}, {"s": "GRAD"}, {"s": "golds"}, {"s": "xgold"}],
            id="imt-full-match",
        ),
    ],
)
def test_edge_cases_agree(rule: Any, messages: list[dict[str, Any]]) -> None:
    """Semantics the conversion had to get right agree with durable_rules on chosen messages."""
    definition = {"edges": {"r": {"all": [{"m": rule}], "run": "act"}}}
    conversion = convert_durable(definition)
    assert conversion.unsupported == []
    compiled = compile_ruleset(conversion.document)
    durable = DurableRules(definition)
    outcomes = []
    for msg in messages:
        expected = durable.fired(msg)
        assert set(compiled.evaluate({"m": msg}).eligible_rules) == expected, msg
        outcomes.append(bool(expected))
    assert any(outcomes) and not all(outcomes)

"""Counterfactuals: the smallest change of one input that would have flipped a decision.

For a decision and the inputs it was evaluated on, each *target* is something that could
have gone the other way:

- a rule that fired (an eligibility rule, the escalation rule that won, an alert) stops
  firing, or no longer wins;
- an offer the customer did not get is given (by any eligibility rule that names it).

For each target, candidate changes are read from the compiled conditions of the rules that
decide it (``RulesetParts.logic``), never guessed from the values:

    field <op> literal        the boundary value and the nearest value on each side of it
                              (integers step by 1; numbers by one unit past the literal's own
                              last decimal place: 0.5 → 0.49, 0.5, 0.51; 100 → 99.99 …)
    field == / != literal     the literal, and (strings) the other values of its enum
    field in [a, b, ...]      each item; for an enum, its values outside the list; for
                              numbers, one step past the smallest and the largest item
    boolean field             the other boolean (true and false when it was missing)
    contains(list, x), x in list
                              the list with x added, or without it
    missing(field)            the field removed
    days_since(field) op n    the instant n days before ``now`` (hours_since: hours), and one
    hours_since(field) op n   second either side
    field op now()            ``now``, and one second either side
    table output              the unary tests of each input column of the table (``>= 36``,
                              ``[0..250]``, ``"gold"``) read as the comparisons above
    count("e", within="7d")   an input too: the counter's boundary values (never below 0)

A field read any other way (through arithmetic, ``matches``, ``lower``, inside ``any``) gives
no candidates, and is reported as not explored with why. So are the fields the caller says
cannot be changed meaningfully (values stored masked).

Each candidate changes ONE input and is **checked by evaluating the ruleset again** with that
change: only a change the evaluation confirms is reported. Candidates are tried smallest
first: for numbers and times the relative distance ``|new - old| / max(|new|, |old|)`` (for
times, measured from ``now``); any other change (another category, the other boolean, a value
where there was none, an item added or removed) counts 1. The first confirmed change of a
field is that field's smallest; the first confirmed change overall is the target's
counterfactual, and the next fields' smallest are its alternatives.

A change is phrased as a bound (``customer.tenure_months ≥ 24``) when the field is compared
with one threshold only in what decides the target, so that every value on that side gives
the same result; otherwise as the value checked (``customer.tier = "silver"``).

The work is bounded: at most ``budget`` evaluations per target (32 by default), at most
``max_targets`` targets (the rules that fired first, then the offers not given in document
order); a target whose candidates ran past its budget says so.

Pure: no I/O, no clock; ``now`` is the decision's.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, TypeGuard

from engine.decision import Decision
from engine.errors import EvaluationError
from engine.expr import BoolOp, Call, Compare, Const, ListConst, Missing, Node, Not, Slot
from engine.model import SEVERITIES
from engine.ruleset import CompiledRuleset
from engine.runtime import format_value
from engine.tables import AnyTest, CmpTest, EqTest, InTest, NotTest, OrTest, RangeTest, Test
from engine.times import format_time, parse_time

BUDGET = 32  # evaluations per target, at most
MAX_TARGETS = 24  # targets explored per decision, at most
ALTERNATIVES = 2  # confirmed changes of other fields kept beside the smallest
MAX_VALUES = 12  # candidate values of one field, at most

_SECTIONS = ("eligibility", "escalation", "alerts")
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_NEGATE = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}
_SYMBOL = {"<": "<", "<=": "≤", ">": ">", ">=": "≥", "==": "=", "!=": "≠"}
_ORDER = frozenset(("<", "<=", ">", ">="))
_SINCE = {"days_since": 86_400.0, "hours_since": 3_600.0}
_SECOND = timedelta(seconds=1)


class _Absent:
    """A field removed from the inputs (``missing(field)`` made true)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


# -- the inputs of one evaluation, and one of them changed -----------------------------------


@dataclass(slots=True)
class Inputs:
    """What an evaluation was asked: the arguments of ``CompiledRuleset.evaluate``. Treat it
    as immutable: ``changed`` gives a new one. (Not a frozen dataclass: a replay builds one
    per recorded decision, and a frozen one costs a microsecond more to build.)"""

    context: Mapping[str, Any]
    answers: Mapping[str, Any] | None = None
    now: datetime | None = None
    counters: Mapping[str, Mapping[str, Any]] | None = None
    as_of: Mapping[str, Any] | None = None
    tree: str | None = None
    trigger: str = "decision"

    def evaluate(self, ruleset: CompiledRuleset, trace: bool = False) -> Decision:
        return ruleset.evaluate(
            self.context,
            answers=self.answers,
            now=self.now,
            counters=self.counters,
            trace=trace,
            as_of=self.as_of,
            tree=self.tree,
            trigger=self.trigger,
        )

    def value(self, path: str, counter: tuple[str, str] | None = None) -> Any:
        """The input at ``path`` (a field, or the counter ``counter`` names); None when
        absent. An absent or unusable counter entry counts 0, as the engine counts it."""
        if counter is not None:
            event, within = counter
            count = ((self.counters or {}).get(event) or {}).get(within)
            return count if count.__class__ is int and count >= 0 else 0
        steps = path.split(".")
        if steps[0] == "answers":
            value: Any = self.answers if self.answers is not None else self.context.get("answers")
            steps = steps[1:]
        else:
            value = self.context
        for step in steps:
            if not isinstance(value, Mapping):
                return None
            value = value.get(step)
        return value

    def changed(self, path: str, value: Any, counter: tuple[str, str] | None = None) -> Inputs:
        """These inputs with one of them changed (``ABSENT`` removes a field); nothing the
        caller passed is modified."""
        if counter is not None:
            event, within = counter
            counters = {k: dict(v) for k, v in (self.counters or {}).items()}
            counters.setdefault(event, {})[within] = value
            return dataclasses.replace(self, counters=counters)
        steps = tuple(path.split("."))
        if steps[0] == "answers":
            answers = self.answers if self.answers is not None else self.context.get("answers")
            base = answers if isinstance(answers, Mapping) else {}
            return dataclasses.replace(self, answers=_set(base, steps[1:], value))
        return dataclasses.replace(self, context=_set(self.context, steps, value))


def _set(tree: Mapping[str, Any], steps: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of ``tree`` (copied only along ``steps``) with ``value`` at ``steps``."""
    out = dict(tree)
    head = steps[0]
    if len(steps) == 1:
        if value is ABSENT:
            out.pop(head, None)
        else:
            out[head] = value
        return out
    child = out.get(head)
    out[head] = _set(child if isinstance(child, Mapping) else {}, steps[1:], value)
    return out


# -- what could have gone the other way -------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A rule that fired and would stop (``fired``), or an offer not given that would be
    given (``not_given``)."""

    kind: Literal["fired", "not_given"]
    section: str  # eligibility | escalation | alerts
    rule: str | None  # the rule that fired; None for an offer not given
    offer: str | None = None  # an eligibility rule's offer, or the offer not given
    queue: str | None = None  # the escalation rule's queue

    @property
    def label(self) -> str:
        if self.kind == "not_given":
            return f"offer {self.offer} not given"
        return f"{self.section} rule {self.rule}"

    def reached(self, decision: Decision) -> bool:
        """Whether ``decision`` is the other way."""
        if self.kind == "not_given":
            offers = decision.ruleset.eligible_out
            return any(offers[r]["offer"] == self.offer for r in decision.eligible_rules)
        if self.section == "eligibility":
            return self.rule not in decision.eligible_rules
        if self.section == "escalation":
            return decision.escalation_rule != self.rule
        return self.rule not in decision.alert_rules


def targets(decision: Decision) -> list[Target]:
    """What could have gone the other way in ``decision``, in the order an explanation ranks
    it: its escalation, its eligibility rules that fired (document order), its alerts (most
    severe first), then each offer its ruleset names that it did not give (in the order of
    the first rule naming it)."""
    rs = decision.ruleset
    out = []
    escalation = decision.escalation_rule
    if escalation is not None:
        queue = next(r.queue for r in rs.model.escalation if r.id == escalation)
        out.append(Target("fired", "escalation", escalation, queue=queue))
    fired = set(decision.eligible_rules)
    for rule in rs.model.eligibility:
        if rule.id in fired:
            out.append(Target("fired", "eligibility", rule.id, offer=rule.offer))
    raised = set(decision.alert_rules)
    alerts = [(k, r) for k, r in enumerate(rs.model.alerts) if r.id in raised]
    alerts.sort(key=lambda kr: (-SEVERITIES.index(kr[1].severity), kr[0]))
    out.extend(Target("fired", "alerts", r.id) for _, r in alerts)
    given = {rs.eligible_out[r]["offer"] for r in fired}
    seen: set[str] = set()
    for rule in rs.model.eligibility:
        if rule.offer not in given and rule.offer not in seen:
            seen.add(rule.offer)
            out.append(Target("not_given", "eligibility", None, offer=rule.offer))
    return out


# -- what the conditions compare each input with ---------------------------------------------


@dataclass(frozen=True)
class _Atom:
    """One comparison of an input with literals: ``order`` (op, literal: <, <=, >, >=),
    ``eq`` (== or !=, literal), ``in`` (items), ``bool`` (a boolean field used as a
    condition), ``contains`` (an item of a list field), ``missing``."""

    path: str
    kind: str
    op: str = ""
    values: tuple[Any, ...] = ()


class _Reader:
    """Collects the atoms of conditions, and the inputs read in ways that give none."""

    def __init__(
        self,
        ruleset: CompiledRuleset,
        counters: Mapping[str, tuple[str, str]],
        now: datetime | None,
    ) -> None:
        self.ruleset = ruleset
        self.counters = counters
        self.now = now
        self.atoms: list[_Atom] = []
        self.opaque: dict[str, str] = {}  # path → how it is read
        self._tables: set[str] = set()

    def is_input(self, node: Node) -> TypeGuard[Slot]:
        return isinstance(node, Slot) and (
            node.path in self.ruleset.fields or node.path in self.counters
        )

    def condition(self, node: Node) -> None:
        if isinstance(node, BoolOp):
            for operand in node.operands:
                self.condition(operand)
        elif isinstance(node, Not):
            self.condition(node.operand)
        elif isinstance(node, Compare):
            self.compare(node)
        elif isinstance(node, Missing):
            if node.slot.path in self.ruleset.fields:
                self.atoms.append(_Atom(node.slot.path, "missing"))
        elif isinstance(node, Slot):
            if self.is_input(node) and node.type.kind == "boolean":
                self.atoms.append(_Atom(node.path, "bool"))
            else:
                self.value(node, "")
        elif (
            isinstance(node, Call)
            and node.name == "contains"
            and self.is_input(node.args[0])
            and node.args[0].type.kind == "list"
            and isinstance(node.args[1], Const)
        ):
            path = node.args[0].path
            self.atoms.append(_Atom(path, "contains", values=(node.args[1].value,)))
        else:
            self.value(node, _how(node))

    def compare(self, node: Compare) -> None:
        op, left, right = node.op, node.left, node.right
        if isinstance(left, Const) and not isinstance(right, Const) and op not in ("in", "not in"):
            op, left, right = _FLIP[op], right, left
        if self.is_input(left):
            path = left.path
            kind = left.type.kind
            if isinstance(right, Const) and op in _ORDER:
                self.atoms.append(_Atom(path, "order", op, (right.value,)))
                return
            if isinstance(right, Const) and op in ("==", "!="):
                self.atoms.append(
                    _Atom(path, "bool" if kind == "boolean" else "eq", op, (right.value,))
                )
                return
            if isinstance(right, ListConst) and op in ("in", "not in"):
                self.atoms.append(_Atom(path, "in", op, right.values))
                return
            if isinstance(right, Slot) and right.path == "now()" and op in _ORDER:
                if self.now is not None:
                    self.atoms.append(_Atom(path, "order", op, (self.now,)))
                    return
                self.opaque.setdefault(path, "compared with now(), which was unknown")
                return
        if (
            isinstance(left, Const)
            and op in ("in", "not in")
            and self.is_input(right)
            and right.type.kind == "list"
        ):
            self.atoms.append(_Atom(right.path, "contains", values=(left.value,)))
            return
        since = _since(left)
        if since is not None and isinstance(right, Const) and op in _ORDER:
            path, unit = since
            if self.now is None:
                self.opaque.setdefault(path, "read through days_since/hours_since without now")
                return
            try:
                boundary = self.now - timedelta(seconds=float(right.value) * unit)
            except (OverflowError, ValueError):
                self.opaque.setdefault(path, "compared with a time out of range")
                return
            # days_since(f) >= n  ⇔  f <= now - n days: the comparison turns round.
            self.atoms.append(_Atom(path, "order", _FLIP[op], (boundary,)))
            return
        self.value(left, _how(left))
        self.value(right, _how(right))

    def value(self, node: Node, how: str) -> None:
        """Inputs read by a value expression: table outputs lead to their tables' cells;
        anything else gives no atoms."""
        for slot in _slots(node):
            if slot.path.startswith("tables."):
                self.table(slot.path.split(".")[1])
            elif how and (slot.path in self.ruleset.fields or slot.path in self.counters):
                self.opaque.setdefault(slot.path, how)

    def table(self, table_id: str) -> None:
        if table_id in self._tables:
            return
        self._tables.add(table_id)
        for node, tests in self.ruleset.logic.table_inputs.get(table_id, ()):
            if self.is_input(node):
                path = node.path
                for test in tests:
                    self.cell(path, test)
            else:
                self.value(node, f"an input of table {table_id} computed from it")
        for node in self.ruleset.logic.table_cells.get(table_id, ()):
            self.value(node, f"read by a computed output of table {table_id}")

    def cell(self, path: str, test: Test) -> None:
        if isinstance(test, EqTest):
            self.atoms.append(_Atom(path, "eq", "==", (test.value,)))
        elif isinstance(test, CmpTest):
            self.atoms.append(_Atom(path, "order", test.op, (test.value,)))
        elif isinstance(test, RangeTest):
            self.atoms.append(
                _Atom(path, "order", ">=" if test.low_inclusive else ">", (test.low,))
            )
            self.atoms.append(
                _Atom(path, "order", "<=" if test.high_inclusive else "<", (test.high,))
            )
        elif isinstance(test, InTest):
            self.atoms.append(_Atom(path, "in", "in", test.values))
        elif isinstance(test, OrTest | NotTest):
            for inner in test.tests:
                self.cell(path, inner)
        else:
            assert isinstance(test, AnyTest)


def _since(node: Node) -> tuple[str, float] | None:
    """``days_since(field)`` or ``hours_since(field)``: the field and the seconds per unit."""
    if isinstance(node, Call) and node.name in _SINCE and isinstance(node.args[0], Slot):
        return node.args[0].path, _SINCE[node.name]
    return None


def _how(node: Node) -> str:
    if isinstance(node, Call):
        return f"read through {node.name.removesuffix('_list')}()"
    kind = type(node).__name__
    if kind in ("Arith", "Neg"):
        return "read through arithmetic"
    if kind == "Quantifier":
        return "read inside any()/all()"
    return "compared with another value, not a literal"


def _slots(node: Node) -> Iterator[Slot]:
    if isinstance(node, Slot):
        yield node
        return
    for name in getattr(node, "__slots__", ()):
        child = getattr(node, name, None)
        if isinstance(child, Node):
            yield from _slots(child)
        elif isinstance(child, tuple):
            for item in child:
                if isinstance(item, Node):
                    yield from _slots(item)


def rule_inputs(ruleset: CompiledRuleset, section: str, index: int) -> list[str]:
    """The inputs (fields, and counters as written) rule ``index`` of ``section`` reads,
    directly or through the tables it reads, sorted."""
    counters = counter_paths(ruleset)
    found: set[str] = set()
    tables: set[str] = set()
    pending = [ruleset.logic.conditions[section][index]]
    while pending:
        for slot in _slots(pending.pop()):
            if slot.path.startswith("tables."):
                table_id = slot.path.split(".")[1]
                if table_id not in tables:
                    tables.add(table_id)
                    pending.extend(n for n, _ in ruleset.logic.table_inputs.get(table_id, ()))
                    pending.extend(ruleset.logic.table_cells.get(table_id, ()))
            elif slot.path in ruleset.fields:
                found.add(slot.path)
            elif slot.path in counters:
                found.add(_name(slot.path, counters[slot.path]))
    return sorted(found)


# -- candidates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One input changed to one value; ``phrase`` says it as a reader reads it."""

    path: str  # the field's path, or the counter as written: count("e", within="7d")
    old: Any
    new: Any  # ABSENT when removed
    distance: float
    phrase: str
    counter: tuple[str, str] | None = None


def counter_paths(ruleset: CompiledRuleset) -> dict[str, tuple[str, str]]:
    """The slot path of each counter the ruleset reads → (event type, window)."""
    return {f"count({e!r}, within={w!r})": (e, w) for e, w in ruleset.counters_needed}


def _name(path: str, counter: tuple[str, str] | None) -> str:
    return f'count("{counter[0]}", within="{counter[1]}")' if counter else path


def _kind(ruleset: CompiledRuleset, path: str) -> str:
    meta = ruleset.fields.get(path)
    return meta.type.kind if meta is not None else "integer"  # a counter


def _enum(ruleset: CompiledRuleset, path: str) -> list[str]:
    """A string field's enum, in the order the document lists it (empty without one)."""
    spec = ruleset.model.context.get(path)
    return list(spec.enum or ()) if spec is not None and not isinstance(spec, str) else []


def _number(value: Any) -> bool:
    return value.__class__ in (int, float)


def _steps(literal: Any, kind: str) -> list[Any]:
    """The boundary ``literal`` and the nearest value on each side of it (the boundary
    first: among changes equally far, it is tried first)."""
    if not _number(literal):
        return [literal]
    if kind == "integer":
        if float(literal).is_integer():
            whole = int(literal)
            return [whole, whole - 1, whole + 1]
        return [math.floor(literal), math.ceil(literal)]
    exact = Decimal(repr(literal)) if isinstance(literal, float) else Decimal(literal)
    exponent = exact.normalize().as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    step = Decimal(1).scaleb(-(max(decimals, 1) + 1))
    return [literal, float(exact - step), float(exact + step)]


def _values(atom: _Atom, kind: str, old: Any, enum: list[str], others: list[Any]) -> list[Any]:
    """The values an atom suggests for its input (``old`` is the input's value)."""
    if atom.kind == "missing":
        return [ABSENT] if old is not None else []
    if atom.kind == "bool" or kind == "boolean":
        return [not old] if isinstance(old, bool) else [True, False]
    if atom.kind == "contains":
        items = list(old) if isinstance(old, list) else []
        item = atom.values[0]
        return [[x for x in items if x != item] if item in items else [*items, item]]
    if atom.kind == "order" and isinstance(atom.values[0], datetime):
        moment = atom.values[0]
        return [moment, moment - _SECOND, moment + _SECOND]
    if atom.kind in ("order", "eq"):
        literal = atom.values[0]
        if kind == "string" and atom.kind == "eq":
            # Equal to the literal, or (when it is that now) another value it may take.
            return [literal, *[v for v in enum if v != literal], *others]
        return _steps(literal, kind)
    # in / not in: each item, and what lies outside the list
    items = [v for v in atom.values if kind != "integer" or float(v).is_integer()]
    if kind == "string":
        return [*items, *[v for v in enum if v not in items], *others]
    numbers = [v for v in items if _number(v)]
    if not numbers:
        return items
    low, high = min(_steps(min(numbers), kind)), max(_steps(max(numbers), kind))
    return [*items, low, high]


def _distance(old: Any, new: Any, kind: str, now: datetime | None) -> float:
    """How far ``new`` is from ``old``: relative for numbers and times, 1 for the rest."""
    if new is ABSENT or old is None:
        return 1.0
    if kind in ("integer", "number") and _number(old) and _number(new):
        largest = max(abs(old), abs(new))
        return abs(new - old) / largest if largest else 0.0
    if kind == "datetime" and now is not None:
        before, after = parse_time(old), parse_time(new)
        if before is not None and after is not None:
            largest = max(abs(now - before), abs(now - after)).total_seconds()
            return abs(after - before).total_seconds() / largest if largest else 0.0
    return 1.0


def _shown(value: Any) -> str:
    if value is ABSENT:
        return "missing"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return format_value(value)


def _instant(moment: datetime) -> str:
    """A time as a context value: RFC 3339 in UTC, to the millisecond unless it needs more."""
    return format_time(moment, "milliseconds" if moment.microsecond % 1000 == 0 else "microseconds")


def _holds(value: Any, op: str, literal: Any) -> bool:
    if isinstance(literal, datetime):
        value = parse_time(value)
    if op == "<":
        return bool(value < literal)
    if op == "<=":
        return bool(value <= literal)
    if op == ">":
        return bool(value > literal)
    return bool(value >= literal)


def _phrase(name: str, new: Any, old: Any, atom: _Atom, threshold: _Atom | None, kind: str) -> str:
    """The change as a reader reads it: a bound when the input has one threshold only."""
    if new is ABSENT:
        return f"{name} missing"
    if atom.kind == "contains":
        item = _shown(atom.values[0])
        had = isinstance(old, list) and atom.values[0] in old
        return f"{name} without {item}" if had else f"{name} with {item}"
    if threshold is not None and kind in ("integer", "number", "datetime"):
        op, literal = threshold.op, threshold.values[0]
        if not _holds(new, op, literal):
            op = _NEGATE[op]
        shown = _instant(literal) if isinstance(literal, datetime) else _shown(literal)
        return f"{name} {_SYMBOL[op]} {shown}"
    return f"{name} = {_shown(new)}"


def candidates(
    ruleset: CompiledRuleset,
    conditions: list[Node],
    inputs: Inputs,
    *,
    scope: list[Node] | None = None,
    fixed: Mapping[str, str] | None = None,
) -> tuple[list[Candidate], dict[str, str]]:
    """The one-input changes ``conditions`` suggest, smallest first, and the inputs they read
    that give none (as written → why). ``scope`` (by default ``conditions``) is all that
    decides the target: a bound is phrased only for an input compared with one threshold in
    all of it. ``fixed`` names inputs not to change (path → why: ``masked``)."""
    counters = counter_paths(ruleset)
    reader = _Reader(ruleset, counters, inputs.now)
    for node in conditions:
        reader.condition(node)
    wider = _Reader(ruleset, counters, inputs.now)
    for node in scope if scope is not None else conditions:
        wider.condition(node)
    fixed = fixed or {}
    by_path: dict[str, list[_Atom]] = {}
    for atom in reader.atoms:
        by_path.setdefault(atom.path, []).append(atom)
    why = {p: how for p, how in reader.opaque.items() if p not in by_path}
    why.update({p: fixed[p] for p in [*by_path, *why] if p in fixed})
    found: list[Candidate] = []
    for path, atoms in by_path.items():
        if path not in fixed:
            found.extend(_field(ruleset, path, atoms, inputs, _threshold(path, wider)))
    # Sorted by distance; among equals, in the order the conditions suggested them.
    found = sorted(found, key=lambda c: c.distance)
    return found, {_name(p, counters.get(p)): how for p, how in why.items()}


def _field(
    ruleset: CompiledRuleset,
    path: str,
    atoms: list[_Atom],
    inputs: Inputs,
    threshold: _Atom | None,
) -> list[Candidate]:
    """The candidate values of one input, from its atoms, without repeats or its own value."""
    counter = counter_paths(ruleset).get(path)
    name = _name(path, counter)
    kind = _kind(ruleset, path)
    old = inputs.value(path, counter)
    others = [a.values[0] for a in atoms if a.kind == "eq" and isinstance(a.values[0], str)]
    enum = _enum(ruleset, path) if kind == "string" else []
    out: list[Candidate] = []
    for atom in atoms:
        for suggested in _values(atom, kind, old, enum, others):
            value = _instant(suggested) if isinstance(suggested, datetime) else suggested
            if _same(value, old) or any(_same(value, c.new) for c in out):
                continue
            if counter is not None and (value.__class__ is not int or value < 0):
                continue
            if len(out) >= MAX_VALUES:
                return out
            phrase = _phrase(name, value, old, atom, threshold, kind)
            distance = _distance(old, value, kind, inputs.now)
            out.append(Candidate(path, old, value, distance, phrase, counter))
    return out


def _threshold(path: str, reader: _Reader) -> _Atom | None:
    """The one ordering comparison ``path`` has in what ``reader`` read, if it has only one
    and is read no other way."""
    if path in reader.opaque:
        return None
    atoms = {(a.kind, a.op, a.values) for a in reader.atoms if a.path == path}
    if len(atoms) != 1:
        return None
    kind, op, values = atoms.pop()
    return _Atom(path, kind, op, values) if kind == "order" else None


def _same(a: Any, b: Any) -> bool:
    """Whether two input values are the same value (1 and 1.0 are; true and 1 are not)."""
    if a is ABSENT or b is ABSENT:
        return a is b
    if _number(a) and _number(b):
        return bool(a == b)
    return a.__class__ is b.__class__ and bool(a == b)


# -- exploring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counterfactual:
    """A change of one input that the evaluation confirmed flips ``target``."""

    target: Target
    path: str  # the field, or the counter as written
    old: Any  # None when it was missing
    new: Any  # ABSENT when removed
    change: str  # "customer.tenure_months ≥ 24"
    effect: str  # "would have made loyalty-discount eligible"
    distance: float
    offers: tuple[str, ...]  # the offers the changed evaluation gives
    queue: str | None  # where it escalates

    @property
    def text(self) -> str:
        return f"{self.change} {self.effect}"


@dataclass(frozen=True)
class Exploration:
    """What was tried for one target: the confirmed changes, smallest first (one per
    input), how many evaluations it took, and the inputs not explored and why."""

    target: Target
    found: tuple[Counterfactual, ...]
    evaluations: int
    candidates: int
    exhausted: bool  # the budget ran out before every input's candidates were tried
    not_explored: dict[str, str] = field(default_factory=dict)


def explore(
    ruleset: CompiledRuleset,
    inputs: Inputs,
    *,
    fixed: Mapping[str, str] | None = None,
    budget: int = BUDGET,
    max_targets: int = MAX_TARGETS,
    alternatives: int = ALTERNATIVES,
    decision: Decision | None = None,
) -> list[Exploration]:
    """Explore the targets of ``inputs``' decision on ``ruleset`` (``decision``, when the
    caller has evaluated it already): for each, the smallest confirmed change of one input,
    and up to ``alternatives`` more of other inputs."""
    baseline = decision if decision is not None else inputs.evaluate(ruleset)
    conditions = ruleset.logic.conditions
    index = {
        section: {rule.id: k for k, rule in enumerate(getattr(ruleset.model, section))}
        for section in _SECTIONS
    }
    explored = []
    for target in targets(baseline)[:max_targets]:
        if target.kind == "not_given":
            mine = [
                conditions["eligibility"][k]
                for k, rule in enumerate(ruleset.model.eligibility)
                if rule.offer == target.offer
            ]
            scope = mine
        else:
            assert target.rule is not None
            mine = [conditions[target.section][index[target.section][target.rule]]]
            # Who wins an escalation depends on every escalation rule of its trigger.
            scope = (
                [
                    conditions["escalation"][k]
                    for k, rule in enumerate(ruleset.model.escalation)
                    if inputs.trigger in rule.on
                ]
                if target.section == "escalation"
                else mine
            )
        found, not_explored = candidates(ruleset, mine, inputs, scope=scope, fixed=fixed)
        explored.append(
            _check(ruleset, inputs, target, found, not_explored, budget, alternatives, baseline)
        )
    return explored


def _check(
    ruleset: CompiledRuleset,
    inputs: Inputs,
    target: Target,
    found: list[Candidate],
    not_explored: dict[str, str],
    budget: int,
    alternatives: int,
    baseline: Decision,
) -> Exploration:
    confirmed: list[Counterfactual] = []
    done: set[str] = set()
    evaluations = 0
    exhausted = False
    for candidate in found:
        if candidate.path in done:
            continue
        if len(confirmed) > alternatives:
            break
        if evaluations >= budget:
            exhausted = True
            break
        evaluations += 1
        try:
            decision = inputs.changed(candidate.path, candidate.new, candidate.counter).evaluate(
                ruleset
            )
        except (EvaluationError, ValueError, TypeError):
            continue
        if not target.reached(decision):
            continue
        done.add(candidate.path)
        confirmed.append(_confirmed(ruleset, target, candidate, decision, baseline))
    return Exploration(target, tuple(confirmed), evaluations, len(found), exhausted, not_explored)


def _confirmed(
    ruleset: CompiledRuleset,
    target: Target,
    candidate: Candidate,
    decision: Decision,
    baseline: Decision,
) -> Counterfactual:
    offers_of = ruleset.eligible_out
    offers = tuple(dict.fromkeys(offers_of[r]["offer"] for r in decision.eligible_rules))
    queue = _queue(ruleset, decision.escalation_rule)
    effect = _effect(target, decision, offers, queue, offers_of)
    return Counterfactual(
        target=target,
        path=_name(candidate.path, candidate.counter),
        old=candidate.old,
        new=candidate.new,
        change=candidate.phrase,
        effect=effect,
        distance=candidate.distance,
        offers=offers,
        queue=queue,
    )


def _queue(ruleset: CompiledRuleset, rule: str | None) -> str | None:
    if rule is None:
        return None
    return next(str(o["queue"]) for o in ruleset.escalation_out if o["rule"] == rule)


def _effect(
    target: Target,
    decision: Decision,
    offers: tuple[str, ...],
    queue: str | None,
    offers_of: Mapping[str, Mapping[str, Any]],
) -> str:
    if target.kind == "not_given":
        return f"would have made {target.offer} eligible"
    if target.section == "eligibility":
        if target.offer not in offers:
            return f"would have made {target.offer} not eligible"
        through = [r for r in decision.eligible_rules if offers_of[r]["offer"] == target.offer]
        return (
            f"would have stopped rule {target.rule} ({target.offer} still eligible through "
            f"{', '.join(through)})"
        )
    if target.section == "escalation":
        if queue is None:
            return f"would not have escalated to {target.queue}"
        if queue == target.queue:
            return (
                f"would have escalated to {queue} through {decision.escalation_rule} "
                f"instead of {target.rule}"
            )
        return f"would have escalated to {queue} instead of {target.queue}"
    return f"would not have raised {target.rule}"

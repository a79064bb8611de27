"""Arithmetic errors: which failed operation left an evaluated expression unknown.

Arithmetic never fails a decision. Division or ``%`` by zero, and a result that is not a
finite number (a float beyond ±1.8e308, NaN, an integer too large for a float), make the
operation unknown (``engine.codegen``, ``runtime._finite``), and the decision says so in its
``errors`` when that is what left one of these *sites* unknown:

    a rule's condition            {"rule": id,  "error": "division by zero in `b / a`"}
    a fired alert's message part  {"rule": id,  "error": "... in `x * y` in the message"}
    a table's input               {"table": id, "error": "the result of `x * y` is not a
                                                          finite number"}
    a collect table's sum         {"table": id, "error": "the sum of credit is not a finite
                                                          number"}
    a tree branch, an outcome's   {"tree": id,  "error": "... in a branch of node 'n'" or
    say part                                             "... in the say of node 'n'"}

The generated decide functions do none of this work; it is done when a decision's JSON is
built (``Decision.to_dict``), and only for rulesets with an operation that can fail
(``fallible``); the others have no ``Diagnosis`` and pay nothing.

    compile time   the sites that hold fallible operations, and a generated check per trigger
                   and per tree node: is one of its sites unknown while an operation in it
                   failed on known operands?
    to_dict        the check, which in the usual case computes the arithmetic once more and
                   finds nothing; only when it says yes is each site the evaluation ran
                   explained (``_Site.run``): recomputed node by node, each unknown blamed on
                   the failed operations whose unknown reached it. The value functions that
                   takes are generated with the checks, compiled only then (most revisions
                   never need them).

A failed operation is blamed only where its unknown reached the site: in ``a > 0 and b / a >
2`` with ``a`` = 0 the condition is false, and nothing is reported; inside ``any``/``all`` an
item whose body is decided otherwise is not blamed either. An unknown operand (a missing
field) is not an error: it is reported in ``missing_fields``. A table input's failure is
reported on the table, not again on the rules that read the table's outputs.
"""

from __future__ import annotations

import math
import operator
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from engine.codegen import FINITE_HELPERS, Emitter, FunctionWriter, Namespace
from engine.expr import (
    Arith,
    BoolOp,
    Call,
    Compare,
    Const,
    Missing,
    Neg,
    Node,
    Not,
    Quantifier,
)
from engine.generated import RAW_MATCHES
from engine.model import TRIGGERS
from engine.runtime import HELPERS, finite_sum, power

if TYPE_CHECKING:
    from engine.decision import Asked, NextStep
    from engine.model import Document, Table, Tree

# What generated code catches around an evaluation: a site that raises one is not explained.
_EVALUATION_ERRORS = (ArithmeticError, ValueError, RecursionError, TypeError)
# A sum of floats whose absolute values add up to no more than this cannot overflow.
_SAFE_SUM = 1e308
_TRIGGER_DECISION = "decision"


# -- what the compiler hands over (engine.compiler's _Build and its plans) ---------------------


class CheckedLike(Protocol):
    @property
    def node(self) -> Node: ...


class TablePlanLike(Protocol):
    @property
    def model(self) -> Table: ...
    @property
    def position(self) -> int: ...
    @property
    def inputs(self) -> Sequence[CheckedLike]: ...
    @property
    def outputs(self) -> Sequence[tuple[Any, ...]]: ...
    @property
    def output_names(self) -> Sequence[str]: ...
    @property
    def computed(self) -> Mapping[tuple[int, int], Any]: ...  # (row, output) → its cell


class TreePlanLike(Protocol):
    @property
    def model(self) -> Tree: ...
    @property
    def branches(self) -> Mapping[str, Sequence[CheckedLike | None]]: ...
    @property
    def says(self) -> Mapping[str, Sequence[str | CheckedLike]]: ...


class BuildLike(Protocol):
    """The checked document, as the compiler's stages leave it."""

    @property
    def doc(self) -> Document | None: ...
    @property
    def tables(self) -> Sequence[TablePlanLike]: ...
    @property
    def eligibility(self) -> Sequence[CheckedLike]: ...
    @property
    def escalation(self) -> Sequence[CheckedLike]: ...
    @property
    def alerts(self) -> Sequence[CheckedLike]: ...
    @property
    def messages(self) -> Sequence[Sequence[str | CheckedLike]]: ...
    @property
    def trees(self) -> Sequence[TreePlanLike]: ...


# -- which operations can fail -----------------------------------------------------------------


def fallible(n: Node) -> bool:
    """Whether ``n`` is an arithmetic operation that can fail on some values.

    Division and ``%`` by zero; any operation whose result is a number (a float can come out:
    overflow, NaN, an int too large for a float). ``+``, ``-``, ``*`` on integers are exact,
    and so is an integer ``%`` by a literal other than zero.
    """
    if not isinstance(n, Arith):
        return False
    if n.type.kind == "number":
        return True
    if n.op == "%":
        return not (isinstance(n.right, Const) and n.right.value != 0)
    return n.op == "/"  # always a number: the test above has answered already


def _children(n: Node) -> tuple[Node, ...]:
    if isinstance(n, Not | Neg):
        return (n.operand,)
    if isinstance(n, BoolOp):
        return n.operands
    if isinstance(n, Compare | Arith):
        return (n.left, n.right)
    if isinstance(n, Call):
        return n.args
    if isinstance(n, Quantifier):
        return (n.source, n.body)
    if isinstance(n, Missing):
        return (n.slot,)
    return ()


def _fails_inside(n: Node) -> bool:
    return fallible(n) or any(_fails_inside(c) for c in _children(n))


def _sum_can_fail(column: Sequence[Any]) -> bool:
    """Whether some rows of a ``sum`` column can add up to something that is not a finite
    number: never for integers (exact), never when all the values together stay in range."""
    values = [v for v in column if v is not None]
    if all(v.__class__ is int for v in values):
        return False
    try:
        total = math.fsum(abs(float(v)) for v in values)
    except OverflowError:
        return True
    return not total <= _SAFE_SUM


# -- explaining a site --------------------------------------------------------------------------

Values = tuple[Any, ...]
# A node's value (None: unknown) and, when unknown, the failed operations whose unknown reached
# it, in order (one failing on several items of an any() is there once per item).
Blamed = tuple[Any, list[str]]

_PLAIN_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "%": operator.mod,
}
# What generated code calls where a float can come out (None where it is not finite).
_FINITE_OPS = {op: HELPERS[name] for op, name in FINITE_HELPERS.items()} | {"**": power}


@dataclass(frozen=True, slots=True)
class _Plan:
    """How to recompute one node of a site, blaming the failed operations for its unknown.

    ``blame`` is the function for the node's kind; ``value`` names the generated function
    giving the node's own value, of the evaluation's values and the items of the
    ``any``/``all`` it is in (for a node nothing in which can fail, a comparison, a negation
    or a call), or for ``any``/``all`` its list.
    """

    blame: Callable[[_Plan, Values, Values, Mapping[str, Any]], Blamed]
    node: Node
    children: tuple[_Plan, ...] = ()
    value: str = ""


def _blame_leaf(plan: _Plan, values: Values, items: Values, fns: Mapping[str, Any]) -> Blamed:
    return fns[plan.value](values, *items), []


def _blame_arith(plan: _Plan, values: Values, items: Values, fns: Mapping[str, Any]) -> Blamed:
    n = plan.node
    assert isinstance(n, Arith)
    (a, why_a), (b, why_b) = (c.blame(c, values, items, fns) for c in plan.children)
    if a is None or b is None:
        return None, why_a + why_b
    if n.op in ("/", "%") and b == 0:
        return None, [f"{'division' if n.op == '/' else 'modulo'} by zero in `{n.text}`"]
    result = (_FINITE_OPS if n.type.kind == "number" else _PLAIN_OPS)[n.op](a, b)
    if result is None:
        return None, [f"the result of `{n.text}` is not a finite number"]
    return result, []


def _blame_bool(plan: _Plan, values: Values, items: Values, fns: Mapping[str, Any]) -> Blamed:
    n = plan.node
    assert isinstance(n, BoolOp)
    decisive = n.op == "or"  # a true operand decides an or, a false one an and
    results = [c.blame(c, values, items, fns) for c in plan.children]
    if any(v is decisive for v, _ in results):
        return decisive, []
    if any(v is None for v, _ in results):
        return None, [w for v, why in results if v is None for w in why]
    return not decisive, []


def _blame_not(plan: _Plan, values: Values, items: Values, fns: Mapping[str, Any]) -> Blamed:
    operand = plan.children[0]
    v, why = operand.blame(operand, values, items, fns)
    return (None, why) if v is None else (not v, [])


def _blame_quantifier(plan: _Plan, values: Values, items: Values, fns: Mapping[str, Any]) -> Blamed:
    n = plan.node
    assert isinstance(n, Quantifier)
    source = fns[plan.value](values, *items)
    if source is None:
        return None, []
    decisive = n.kind == "any"  # a true item decides any(), a false one all()
    body = plan.children[0]
    unknown: list[str] | None = None
    for item in source:
        v, why = body.blame(body, values, (*items, item), fns)
        if v is decisive:
            return decisive, []
        if v is None:
            unknown = [*(unknown or ()), *why]
    return (not decisive, []) if unknown is None else (None, unknown)


def _blame_strict(plan: _Plan, values: Values, items: Values, fns: Mapping[str, Any]) -> Blamed:
    """A comparison, a negation or a call: unknown when an operand is (or for its own reason:
    the max of an empty list), owing it to what its operands owe theirs to."""
    value = fns[plan.value](values, *items)
    if value is not None:
        return value, []
    return None, [w for c in plan.children for w in c.blame(c, values, items, fns)[1]]


@dataclass(frozen=True, slots=True)
class _Site:
    """An expression whose unknown, when a failed operation caused it, is an entry."""

    key: str  # rule | table | tree
    id: str
    where: str  # appended to the error: "", " in the message", " in a branch of node 'n'"
    plan: _Plan

    def run(self, values: Values, fns: Mapping[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
        """The site's value and its entries: one per distinct failure, if it is unknown."""
        plan = self.plan
        try:
            value, why = plan.blame(plan, values, (), fns)
        except _EVALUATION_ERRORS:  # pragma: no cover - the evaluation would have failed
            return None, []
        if value is not None:
            return value, []
        return None, [{self.key: self.id, "error": w + self.where} for w in dict.fromkeys(why)]

    def entries(self, values: Values, fns: Mapping[str, Any]) -> list[dict[str, Any]]:
        return self.run(values, fns)[1]


@dataclass(frozen=True, slots=True)
class _TreeNode:
    check: str  # the generated check of this node's sites
    branches: tuple[_Site | None, ...]  # a routing node's in order; None: no condition
    says: tuple[_Site, ...]  # an outcome's say parts that can fail


@dataclass(frozen=True, slots=True)
class _Sum:
    """A collect table's ``sum`` output that some rows can take beyond the floats."""

    position: int
    column: int
    table: str
    output: str
    cells: tuple[Any, ...]  # the output's cell in each row


@dataclass(eq=False)
class Diagnosis:
    """What a ruleset's decisions need to report their failed arithmetic: the entries of a
    decision's ``errors`` (``errors``, which ``Decision._errors`` calls). Made by
    ``plan_diagnosis``; ``bind`` gives it the checks compiled with the ruleset."""

    namespace: Namespace  # the ruleset's: the value functions are compiled into it
    filename: str
    source: str  # the checks, compiled with the ruleset's module
    value_source: str  # the value functions, compiled when a site is first explained
    checks: dict[str, str]  # trigger → its check, over the sites it evaluates but trees
    tables: list[tuple[int, _Site]]  # (table position, one of its inputs)
    sums: list[_Sum]
    rules: list[dict[int, _Site]]  # per section (eligibility, escalation, alerts): k → site
    messages: dict[int, list[_Site]]  # alert rule k → its message's parts
    escalation_on: dict[str, tuple[int, ...]]  # trigger → its escalation rules, as tried
    alerts_on: dict[str, tuple[int, ...]]  # trigger → the alert rules it evaluates
    tree_nodes: dict[tuple[str, str], _TreeNode]  # (tree id, node id) → its sites
    # The compiled checks: by trigger, and by tree id and node id.
    check_of: dict[str, Callable[[Values, Any], bool]] = field(default_factory=dict, init=False)
    tree_checks: dict[str, dict[str, Callable[[Values], bool]]] = field(
        default_factory=dict, init=False
    )
    _fns: Mapping[str, Any] | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def bind(self, ns: Mapping[str, Any]) -> None:
        """Take the checks from the ruleset's compiled module."""
        self.check_of.update({trigger: ns[name] for trigger, name in self.checks.items()})
        for (tree_id, node_id), node in self.tree_nodes.items():
            self.tree_checks.setdefault(tree_id, {})[node_id] = ns[node.check]

    def _functions(self) -> Mapping[str, Any]:
        """The value functions, compiled on first use."""
        fns = self._fns
        if fns is None:
            with self._lock:
                if self._fns is None:
                    self._fns = self.namespace.compile(self.value_source, self.filename)
                fns = self._fns
        return fns

    def errors(self, raw: tuple[Any, ...], asked: Asked) -> list[dict[str, Any]]:
        """The entries for arithmetic that failed where it left an evaluated site unknown, in
        order: tables (by position), rules (eligibility, escalation, alerts), the tree.

        The usual case, nothing failed, costs the trigger's check and a node's per tree node
        walked that holds a fallible operation. It never raises: ``to_dict()`` must not.
        """
        try:
            values = raw[0]
            check = self.check_of.get(asked.trigger)
            failed = check is not None and check(values, raw[2])
            step = asked.step
            walked = False
            if step is not None:
                checks = self.tree_checks.get(step.tree.id)
                if checks is not None:
                    for node_id in step.path:  # a loop: a generator would cost more than the checks
                        node_check = checks.get(node_id)
                        if node_check is not None and node_check(values):
                            walked = True
                            break
            if not (failed or walked or self.sums):
                return []
            tables: list[tuple[int, dict[str, Any]]] = []
            rules: list[dict[str, Any]] = []
            if failed:
                fns = self._functions()
                for position, site in self.tables:
                    tables.extend((position, entry) for entry in site.entries(values, fns))
                rules = self._rules(raw, asked.trigger, fns)
            for s in self.sums:
                present = [
                    v for r in raw[RAW_MATCHES + s.position] if (v := s.cells[r]) is not None
                ]
                if present and finite_sum(present) is None:
                    error = f"the sum of {s.output} is not a finite number"
                    tables.append((s.position, {"table": s.table, "error": error}))
            tables.sort(key=lambda entry: entry[0])
            found = [entry for _, entry in tables] + rules
            if walked:
                assert step is not None
                found += self._tree(step, values)
            return found
        except _EVALUATION_ERRORS:  # pragma: no cover - the evaluation computed as much
            return []  # what failed to be diagnosed is not an error of the decision

    def _rules(
        self, raw: tuple[Any, ...], trigger: str, fns: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """The evaluated rules': the rules that held are known, and report nothing."""
        values = raw[0]
        found: list[dict[str, Any]] = []
        eligibility, escalation, alerts = self.rules
        if trigger == _TRIGGER_DECISION:
            held = set(raw[1])  # the eligible rules' ids
            for site in eligibility.values():
                if site.id not in held:
                    found += site.entries(values, fns)
        for k in self.escalation_on.get(trigger, ()):
            if k == raw[3]:
                break  # it held: those after it were not evaluated
            if k in escalation:
                found += escalation[k].entries(values, fns)
        raised = set(raw[2])
        for k in self.alerts_on.get(trigger, ()):
            if k in raised:
                for site in self.messages.get(k, ()):
                    found += site.entries(values, fns)
            elif k in alerts:
                found += alerts[k].entries(values, fns)
        return found

    def _tree(self, step: NextStep, values: Values) -> list[dict[str, Any]]:
        """The walk's: each node's branches in order up to the one taken (all of them where
        none held), and the say of the outcome reached."""
        found: list[dict[str, Any]] = []
        last = len(step.path) - 1
        for i, node_id in enumerate(step.path):
            node = self.tree_nodes.get((step.tree.id, node_id))
            if node is None or (i == last and not node.says and step.error is None):
                continue  # nothing can fail here, or a question not yet answered
            if not self.tree_checks[step.tree.id][node_id](values):
                continue
            fns = self._functions()
            for part in node.says:
                found += part.entries(values, fns)
            for branch in node.branches:
                if branch is None:
                    break  # no condition: taken
                value, entries = branch.run(values, fns)
                found += entries
                if value is True:
                    break
        return found


# -- generating the checks and the value functions ---------------------------------------------


class _Planner:
    """Generates the checks and the value functions of one ruleset's diagnosis."""

    def __init__(self, ns: Namespace) -> None:
        self.ns = ns
        self.checks: list[str] = []
        self.values: list[str] = []

    def site(self, key: str, id_: str, where: str, node: Node) -> _Site | None:
        """The site of an expression, or None when nothing in it can fail."""
        return _Site(key, id_, where, self.plan(node, ())) if _fails_inside(node) else None

    def check(
        self, name: str, sites: Sequence[_Site], raised: Mapping[int, int] | None = None
    ) -> str | None:
        """A generated function of the values: whether one of ``sites`` is unknown while a
        fallible operation in it has known operands and fails (None without sites). The
        operations are tested first: they seldom fail, and cost less than a site.

        With ``raised`` (site index → alert rule k, for message parts) the function takes the
        alert rules raised too (``al``), and a message's parts count only if its alert was.
        """
        if not sites:
            return None
        em = Emitter(self.ns)
        conditions = []
        for i, site in enumerate(sites):
            root = site.plan.node
            fails = " or ".join(dict.fromkeys(self._conditions(em, root, set())))
            alert = f"{raised[i]} in al and " if raised and i in raised else ""
            conditions.append(f"({alert}({fails}) and {em.val(root)} is None)")
        w = FunctionWriter(f"def {name}(V{', al' if raised is not None else ''}):")
        for index in sorted(em.used):
            w.line(f"s{index} = V[{index}]")
        w.line(f"return {' or '.join(conditions)}")
        self.checks.append(w.source())
        return name

    def _conditions(self, em: Emitter, n: Node, seen: set[int]) -> list[str]:
        """Tests that together tell whether a fallible operation in ``n`` has known operands
        and fails.

        Arithmetic is unknown when an operand is, so a nest of operations (``a * b / c``) in
        which one failed is unknown at its top: its operations are tested one by one only when
        the top is unknown. In the usual case the test costs what computing the nest costs.
        """
        if id(n) in seen:  # a chained comparison shares its middle operand
            return []
        seen.add(id(n))
        if isinstance(n, Quantifier):
            inner = self._conditions(em, n.body, seen)
            if not inner:
                return []
            body = " or ".join(inner)
            source = em.val(n.source)
            if em.simple(n.source) is None:  # pragma: no cover - lists are read from slots
                t = em.tmp()
                return [f"(({t} := {source}) is not None and any({body} for _i_{n.var} in {t}))"]
            guard = f"{source} is not None and " if em.nullable(n.source) else ""
            return [f"({guard}any({body} for _i_{n.var} in {source}))"]
        if not isinstance(n, Arith):
            return [c for child in _children(n) for c in self._conditions(em, child, seen)]
        nest: list[Arith] = [n]
        operands: list[Node] = []
        for node in nest:  # grows as it goes
            for o in (node.left, node.right):
                if isinstance(o, Arith):
                    nest.append(o)
                else:
                    operands.append(o)
        found = [c for o in operands for c in self._conditions(em, o, seen)]
        failing = [self._failed(em, node) for node in nest if fallible(node)]
        if len(failing) == 1 and fallible(n):
            found.append(failing[0])
        elif failing:
            found.append(f"({em.val(n)} is None and ({' or '.join(failing)}))")
        return found

    @staticmethod
    def _failed(em: Emitter, n: Arith) -> str:
        """Whether ``n`` has known operands and fails."""
        known = [f"{em.val(o)} is not None" for o in (n.left, n.right) if em.nullable(o)]
        return f"({' and '.join([f'{em.val(n)} is None', *known])})"

    def plan(self, n: Node, scope: tuple[str, ...]) -> _Plan:
        """How to explain ``n``; ``scope`` names the ``any``/``all`` items it is in."""
        if not _fails_inside(n):
            return _Plan(_blame_leaf, n, value=self._value(n, scope))
        if isinstance(n, Arith):
            return _Plan(_blame_arith, n, (self.plan(n.left, scope), self.plan(n.right, scope)))
        if isinstance(n, BoolOp):
            return _Plan(_blame_bool, n, tuple(self.plan(o, scope) for o in n.operands))
        if isinstance(n, Not):
            return _Plan(_blame_not, n, (self.plan(n.operand, scope),))
        if isinstance(n, Quantifier):
            body = self.plan(n.body, (*scope, n.var))
            return _Plan(_blame_quantifier, n, (body,), self._value(n.source, scope))
        children = tuple(self.plan(c, scope) for c in _children(n) if _fails_inside(c))
        return _Plan(_blame_strict, n, children, self._value(n, scope))

    def _value(self, n: Node, scope: tuple[str, ...]) -> str:
        """A generated function giving ``n``'s value, as the evaluation computed it."""
        name = f"_arith_value{len(self.values)}"
        em = Emitter(self.ns)
        value = em.val(n)
        w = FunctionWriter(f"def {name}(V{''.join(f', _i_{var}' for var in scope)}):")
        for index in sorted(em.used):
            w.line(f"s{index} = V[{index}]")
        w.line(f"return {value}")
        self.values.append(w.source())
        return name

    def tree_nodes(self, trees: Sequence[TreePlanLike]) -> dict[tuple[str, str], _TreeNode]:
        """The tree nodes with a branch or a say part that can fail, and their checks."""
        found: dict[tuple[str, str], _TreeNode] = {}
        for plan in trees:
            tree_id = plan.model.id
            for node_id in plan.model.nodes:
                conditions = plan.branches.get(node_id, ())
                where = f" in a branch of node {node_id!r}"
                branches = tuple(
                    None if c is None else self.site("tree", tree_id, where, c.node)
                    for c in conditions
                )
                where = f" in the say of node {node_id!r}"
                says = tuple(
                    s
                    for part in plan.says.get(node_id, ())
                    if not isinstance(part, str)
                    and (s := self.site("tree", tree_id, where, part.node)) is not None
                )
                sites = [*(s for s in branches if s is not None), *says]
                check = self.check(f"_arith_check_tree{len(found)}", sites)
                if check is None:
                    continue
                # A branch that cannot fail is evaluated too, to find the one taken.
                branches = tuple(
                    site
                    or (None if c is None else _Site("tree", tree_id, "", self.plan(c.node, ())))
                    for c, site in zip(conditions, branches, strict=True)
                )
                found[(tree_id, node_id)] = _TreeNode(check, branches, says)
        return found


def plan_diagnosis(b: BuildLike, ns: Namespace, filename: str) -> Diagnosis | None:
    """The diagnosis of a checked document, or None when none of its arithmetic can fail.

    Its ``source`` (the checks) is to be compiled with the ruleset's module, which is then
    given to ``bind``; the generated names start with ``_arith_``.
    """
    doc = b.doc
    assert doc is not None
    p = _Planner(ns)
    tables = [
        (plan.position, site)
        for plan in b.tables
        for checked in plan.inputs
        if (site := p.site("table", plan.model.id, "", checked.node)) is not None
    ]
    sums = [
        _Sum(plan.position, c, plan.model.id, name, tuple(row[c] for row in plan.outputs))
        for plan in b.tables
        if plan.model.aggregate == "sum"  # only a collect table takes one
        for c, name in enumerate(plan.output_names)
        # A column with computed cells: its sum is not explained (docs/language.md).
        if not any(column == c for _, column in plan.computed)
        and _sum_can_fail([row[c] for row in plan.outputs])
    ]
    rules: list[dict[int, _Site]] = []
    for ids, checked_rules in (
        ([r.id for r in doc.eligibility], b.eligibility),
        ([r.id for r in doc.escalation], b.escalation),
        ([r.id for r in doc.alerts], b.alerts),
    ):
        found = {k: p.site("rule", ids[k], "", c.node) for k, c in enumerate(checked_rules)}
        rules.append({k: site for k, site in found.items() if site is not None})
    messages: dict[int, list[_Site]] = {}
    for k, parts in enumerate(b.messages):
        for part in parts:
            if not isinstance(part, str):
                site = p.site("rule", doc.alerts[k].id, " in the message", part.node)
                if site is not None:
                    messages.setdefault(k, []).append(site)
    alerts_on: dict[str, tuple[int, ...]] = {
        trigger: tuple(k for k, a in enumerate(doc.alerts) if trigger in a.on)
        for trigger in TRIGGERS
    }
    escalation = doc.escalation
    # trigger → the escalation rules it evaluates, in the order they are tried
    escalation_on: dict[str, tuple[int, ...]] = {
        trigger: tuple(
            sorted(
                (k for k, r in enumerate(escalation) if trigger in r.on),
                key=lambda k: (escalation[k].priority, k),
            )
        )
        for trigger in TRIGGERS
    }
    checks: dict[str, str] = {}
    for trigger in TRIGGERS:
        sites = [site for _, site in tables]
        if trigger == _TRIGGER_DECISION:
            sites += rules[0].values()
        sites += [rules[1][k] for k in escalation_on[trigger] if k in rules[1]]
        raised: dict[int, int] = {}  # a message part's site → its alert rule
        for k in alerts_on[trigger]:
            if k in rules[2]:
                sites.append(rules[2][k])
            for message_part in messages.get(k, ()):
                raised[len(sites)] = k
                sites.append(message_part)
        check = p.check(f"_arith_check_{trigger}", sites, raised)
        if check is not None:
            checks[trigger] = check
    tree_nodes = p.tree_nodes(b.trees)
    if not checks and not sums and not tree_nodes:
        return None
    return Diagnosis(
        namespace=ns,
        filename=f"{filename} diagnosis",
        source="\n".join(p.checks),
        value_source="\n".join(p.values),
        checks=checks,
        tables=tables,
        sums=sums,
        rules=rules,
        messages=messages,
        escalation_on=escalation_on,
        alerts_on=alerts_on,
        tree_nodes=tree_nodes,
    )

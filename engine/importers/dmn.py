"""Convert DMN decision models (DMN 1.1 to 1.5 XML) into Frontline ruleset documents.

``frontline import-dmn MODEL.dmn`` reads a model's decisions and writes a Frontline document;
``frontline eval-dmn`` converts a model the same way and evaluates it::

    conversion = convert_dmn(xml_text)
    print(dump_document(conversion.document))
    compiled = compile_ruleset(conversion.document)
    decision = compiled.evaluate(conversion.context({"Age": 17, "Risk Category": "High"}))
    print(conversion.results(decision.tables))    # {"Approval Status": "Declined"}

Pure: the XML text in, the document and the names out; no file is read here.

What converts (docs/dmn.md has the table):

- ``inputData`` → a context field under ``input.``: ``Risk Category`` → ``input.risk_category``,
  typed from its ``typeRef``: ``string``, ``number``, ``boolean``, and ``date`` (held as its
  ``YYYY-MM-DD`` text, which orders as the dates do). Allowed values of a string type
  (``itemDefinition``/``allowedValues``), or else the union of the ``inputValues`` of the
  table inputs that read it (when each of them declares some), become its ``enum``. A
  structure (``itemComponent``\\ s) becomes one field per component (``Applicant.Age`` →
  ``input.applicant.age``). An input data with no type takes the type its table inputs
  declare, or that their cells' literals show.
- ``decision`` with a ``decisionTable`` → a table whose id is made from the decision's name;
  each output a table output. ``hitPolicy``: UNIQUE → ``unique``, ANY → ``any``, FIRST →
  ``first``, PRIORITY → ``priority``, COLLECT → ``collect`` (``aggregation`` SUM, MIN, MAX,
  COUNT → ``aggregate``), RULE ORDER → ``rule_order``, OUTPUT ORDER → ``output_order``;
  ``outputValues`` (or the allowed values of the output's type) become the output's
  ``values``, the order PRIORITY and OUTPUT ORDER rank by.
- ``decision`` with a FEEL ``literalExpression`` → a table of one output, named as the
  decision, computed from the expression: one row whose one input, ``true``, matches
  anything; ``if c then a else b`` (and ``else if``) a row per branch under ``first``, each
  reading its condition, the ``else`` last. A literal expression that is null whatever its
  inputs (``10 + null``) is a row that never matches, with a literal of the decision's type.
- input expressions: names of input data and decisions (spaces and other characters included),
  paths into structures and multi-output decisions (``Approval.Status``), literals,
  ``+ - * / **``, comparisons, ``and``/``or``/``not()``, and ``abs``, ``min``, ``max``,
  ``string length``, ``upper case``, ``lower case``, ``contains``, ``starts with``,
  ``ends with``. A required decision is read as ``tables.<id>.<output>``.
- input entries: S-FEEL unary tests: ``-``, literals (numbers, strings, booleans,
  ``date("2024-01-31")``), ``< <= > >= = !=`` with a literal, ranges ``[a..b]``, ``(a..b]``,
  ``]a..b[`` and the like, disjunctions with commas, ``not(...)``.
- output entries: literals, ``null`` included, as literal cells; expressions in the forms of
  input expressions (``Age * 2``, ``"Hello " + Name``) as computed cells (``{...}``), where
  FEEL's ``null`` makes arithmetic null. ``defaultOutputEntry`` (a literal) → a last row that
  matches only when no other row does (for FIRST simply a last catch-all row; otherwise the
  row also reads a helper ``collect``/``count`` table of the same rows, and matches when that
  count is 0).

What is refused, as one sentence naming the element (``DmnImportError``): decisions whose
logic is neither a decision table nor a FEEL literal expression (contexts, invocations,
relations, lists, functions and other boxed expressions), business knowledge models,
decision services, imports, FEEL beyond the forms above (other functions, names inside unary
tests, ``null`` tests and comparisons, ``if`` inside an expression, ``for``/``some``/
``every``, lists, ranges over names, ...), default outputs that compute, types Frontline
cannot hold (date and time, time, durations, lists, contexts) where a table reads them,
COLLECT aggregations over several outputs, and a DOCTYPE or entity declaration in the XML
(refused before parsing, as are texts over 4 MiB).

Semantics. The converted document agrees with DMN on values of the declared types, with
these differences: a ``null`` (or absent) input matches only ``-`` (in DMN ``not("x")``
matches null too); a value of the wrong type, or a string outside an ``enum``, reads as
null rather than failing the decision; a number allowed-values constraint (``[0..100]``) is
not enforced; DMN numbers are decimals, Frontline's integers or binary floats (a SUM of
``0.1`` and ``0.2`` is ``0.30000000000000004``; ``**`` computes in floats).
"""

from __future__ import annotations

import json
import keyword
import math
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import yaml

from engine.compiler import compile_ruleset
from engine.errors import RulesetError
from engine.expr import RESERVED_NAMES
from engine.source import MAX_TEXT_BYTES, load_document, resolve_plain

__all__ = [
    "DmnConversion",
    "DmnDecision",
    "DmnImportError",
    "DmnInput",
    "convert_dmn",
    "dump_document",
]

ROOT = "input"  # the context root every input data is declared under
MAX_MODEL_BYTES = MAX_TEXT_BYTES
_MAX_ID = 64
_MAX_SEGMENT = 60
_NO_FOLDING = 1 << 20
_DMN_NAMESPACE = re.compile(
    r"^(?:https?://www\.omg\.org/spec/DMN/\d{8}/MODEL/?|http://www\.omg\.org/spec/DMN/20151101/dmn\.xsd)$"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

HIT_POLICIES = {
    "UNIQUE": "unique",
    "ANY": "any",
    "FIRST": "first",
    "PRIORITY": "priority",
    "COLLECT": "collect",
    "RULE ORDER": "rule_order",
    "OUTPUT ORDER": "output_order",
}
AGGREGATIONS = {"SUM": "sum", "MIN": "min", "MAX": "max", "COUNT": "count"}
_LISTED = ("collect", "rule_order", "output_order")

# Types: the built-in FEEL types Frontline holds, and the ones it refuses by name.
_TYPES = {"string": "string", "number": "number", "boolean": "boolean", "date": "date"}
# The names some modelers write for numbers (Camunda's integer, long and double; XML Schema's).
_TYPES.update(dict.fromkeys(("integer", "long", "double", "decimal", "int"), "number"))
_FIELD_TYPES = {"string": "string", "number": "number", "boolean": "boolean", "date": "string"}
_UNHELD_TYPES = {
    "dateTime": "date and time",
    "date and time": "date and time",
    "time": "time",
    "dayTimeDuration": "days and time duration",
    "days and time duration": "days and time duration",
    "yearMonthDuration": "years and months duration",
    "years and months duration": "years and months duration",
    "duration": "duration",
    "context": "context",
    "list": "list",
    "function": "function",
    "range": "range",
}

# The elements of a decision that say nothing about its logic.
_DECISION_METADATA = {
    "description",
    "extensionElements",
    "question",
    "allowedAnswers",
    "variable",
    "informationRequirement",
    "authorityRequirement",
    "supportedObjective",
    "impactedPerformanceIndicator",
    "decisionMaker",
    "decisionOwner",
    "usingProcess",
    "usingTask",
}
# Top-level elements with no part in evaluation.
_IGNORED = {
    "description",
    "extensionElements",
    "knowledgeSource",
    "textAnnotation",
    "association",
    "group",
    "elementCollection",
    "performanceIndicator",
    "organizationUnit",
    "DMNDI",
}


class DmnImportError(ValueError):
    """The model cannot be converted; the message is one sentence naming the element."""


# -- what the conversion returns --------------------------------------------------------------


@dataclass(frozen=True)
class DmnInput:
    """An input data (or a component of one) and where its value goes in the context."""

    name: str  # as written in the model
    kind: str  # "string", "number", "boolean", "date" or "structure"
    field: str | None = None  # the context field of a scalar
    components: tuple[DmnInput, ...] = ()


@dataclass(frozen=True)
class DmnDecision:
    """A decision and the table that computes it."""

    name: str  # as written in the model
    table: str  # the table's id
    outputs: tuple[tuple[str, str], ...]  # (output name in the model, table output)
    listed: bool  # every matching row: a list (COLLECT without aggregation, RULE/OUTPUT ORDER)

    @property
    def compound(self) -> bool:
        """Whether the decision's value is an object of output name → value."""
        return len(self.outputs) > 1


@dataclass(frozen=True)
class DmnConversion:
    """A Frontline document and the model's names for what it holds."""

    document: dict[str, Any]
    inputs: tuple[DmnInput, ...]
    decisions: tuple[DmnDecision, ...]

    def context(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The evaluation context for input values named as in the model
        (``{"Risk Category": "High"}`` → ``{"input": {"risk_category": "High"}}``). A date
        that is not ``YYYY-MM-DD`` text of a real date is left out (unknown)."""
        context: dict[str, Any] = {}
        for item in self.inputs:
            if item.name in values:
                _place(context, item, values[item.name])
        return context

    def unknown_inputs(self, values: Mapping[str, Any]) -> list[str]:
        """The names in ``values`` that are no input data of the model."""
        known = {item.name for item in self.inputs}
        return [name for name in values if name not in known]

    def results(self, tables: Mapping[str, Any]) -> dict[str, Any]:
        """Each decision's value by its name in the model, from a decision's ``tables``:
        one output → its value; several → an object of output name → value; every matching
        row (COLLECT without aggregation, RULE ORDER, OUTPUT ORDER) → a list (of objects for
        several outputs); no match → None."""
        results: dict[str, Any] = {}
        for decision in self.decisions:
            outputs = tables.get(decision.table)
            if outputs is None:
                results[decision.name] = None
                continue
            values = [outputs[output] for _, output in decision.outputs]
            names = [name for name, _ in decision.outputs]
            if decision.listed:
                rows = list(zip(*values, strict=True))
                if decision.compound:
                    results[decision.name] = [dict(zip(names, row, strict=True)) for row in rows]
                else:
                    results[decision.name] = list(values[0])
            elif decision.compound:
                results[decision.name] = dict(zip(names, values, strict=True))
            else:
                results[decision.name] = values[0]
        return results


def _place(context: dict[str, Any], item: DmnInput, value: Any) -> None:
    if item.kind == "structure":
        if isinstance(value, Mapping):
            for component in item.components:
                if component.name in value:
                    _place(context, component, value[component.name])
        return
    if item.field is None:
        return
    if item.kind == "date" and not _is_date(value):
        return
    node = context
    *parents, last = item.field.split(".")
    for segment in parents:
        node = node.setdefault(segment, {})
    node[last] = value


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or not _DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


# -- the model --------------------------------------------------------------------------------


def convert_dmn(text: str | bytes) -> DmnConversion:
    """Convert a DMN model's XML text; raise DmnImportError, one sentence naming the element,
    for a model that is not DMN or holds what Frontline cannot express."""
    root = _parse_xml(text)
    return _Converter(root).convert()


def _parse_xml(text: str | bytes) -> ET.Element:
    if isinstance(text, bytes):
        if len(text) > MAX_MODEL_BYTES:
            raise DmnImportError(f"the model is larger than {MAX_MODEL_BYTES} bytes")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DmnImportError(f"the model is not valid UTF-8 (byte {exc.start})") from None
    if len(text) > MAX_MODEL_BYTES:
        raise DmnImportError(f"the model is larger than {MAX_MODEL_BYTES} bytes")
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        raise DmnImportError("the model contains a NUL character")
    # A document type declaration is how entities are declared: internal ones expand (a
    # billion laughs), external ones name files or URLs. DMN needs neither.
    if re.search(r"<!\s*(?:DOCTYPE|ENTITY)", text, re.IGNORECASE):
        raise DmnImportError(
            "the model declares a DOCTYPE or entities, which are refused (DMN needs neither)"
        )
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise DmnImportError(f"the model is not well-formed XML: {exc}") from None


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


@dataclass
class _Type:
    """A resolved ``typeRef``."""

    kind: str  # string, number, boolean, date, structure, unheld (a type Frontline lacks), any
    name: str  # as written, for messages
    allowed: tuple[Any, ...] | None = None  # literal allowed values
    components: dict[str, _Type] = field(default_factory=dict)


_ANY = _Type("any", "")


@dataclass
class _Input:
    """An input data, or a component of one, while the model is converted."""

    name: str
    type: _Type
    path: str  # "input.applicant.age"; for a structure, the prefix of its components
    components: dict[str, _Input] = field(default_factory=dict)
    read: bool = False  # read by some table input
    evidence: list[str] = field(default_factory=list)  # types seen where untyped
    input_values: list[tuple[Any, ...] | None] = field(default_factory=list)  # per bare read


@dataclass
class _TableInput:
    expression: str  # the Frontline expression
    label: str  # as the model shows it, for messages
    bare: _Input | None  # the input data it reads, when it is just that


@dataclass
class _TableOutput:
    name: str  # the Frontline output name
    values: list[Any] | None  # in priority order
    default: Any = None
    has_default: bool = False


@dataclass
class _Decision:
    """A decision's name, table id and outputs, known before any table is converted. Its
    logic is a decision table (``table``) or a literal expression (``literal``)."""

    name: str
    element: ET.Element
    table: ET.Element | None
    literal: ET.Element | None = None
    id: str = ""
    outputs: list[tuple[str, str]] = field(default_factory=list)
    listed: bool = False


class _Converter:
    def __init__(self, root: ET.Element) -> None:
        if _local(root.tag) != "definitions" or not _DMN_NAMESPACE.match(_namespace(root.tag)):
            raise DmnImportError(
                "expected a DMN model: a <definitions> element in a DMN namespace, "
                f"not <{_local(root.tag) or root.tag}>"
            )
        self.root = root
        self.ns = _namespace(root.tag)
        self.item_definitions: dict[str, ET.Element] = {}
        self.inputs: dict[str, _Input] = {}
        self.decisions: dict[str, _Decision] = {}
        self.table_ids = _UniqueIds(prefix="decision", separator="-", pattern=r"[^a-z0-9]+")
        self.tables: list[dict[str, Any]] = []
        self.owners: list[str] = []  # each table's decision name, for messages
        self.literals: set[int] = set()  # the tables that are literal expressions
        self._scope: _Scope | None = None  # the names input expressions read, made once

    # -- reading the model --

    def children(self, element: ET.Element, name: str | None = None) -> list[ET.Element]:
        return [
            child
            for child in element
            if _namespace(str(child.tag)) == self.ns and (name is None or _local(child.tag) == name)
        ]

    def child(self, element: ET.Element, name: str) -> ET.Element | None:
        found = self.children(element, name)
        return found[0] if found else None

    def text(self, element: ET.Element | None) -> str | None:
        """The ``<text>`` of an element, or None when there is none."""
        if element is None:
            return None
        found = self.child(element, "text")
        return None if found is None else (found.text or "")

    def convert(self) -> DmnConversion:
        model_name = self.root.get("name") or "dmn-model"
        self.read_definitions()
        for decision in self.decisions.values():
            self.plan(decision)
        for decision in self.decisions.values():
            if decision.table is not None:
                self.convert_table(decision, decision.table)
            else:
                assert decision.literal is not None
                self.convert_literal(decision, decision.literal)
        document: dict[str, Any] = {
            "ruleset": _identifier(model_name, "dmn", "-", r"[^a-z0-9]+"),
            "description": f"Imported from the DMN model {model_name!r}"[:10_000],
            "context": self.context(),
            "tables": self.tables,
        }
        self.check(document)
        return DmnConversion(
            document=document,
            inputs=tuple(self.public_input(i) for i in self.inputs.values() if self.declared(i)),
            decisions=tuple(
                DmnDecision(d.name, d.id, tuple(d.outputs), d.listed)
                for d in self.decisions.values()
            ),
        )

    def read_definitions(self) -> None:
        elements = self.children(self.root)
        for element in elements:
            if _local(element.tag) == "itemDefinition" and element.get("name"):
                self.item_definitions[element.get("name", "")] = element
        segments = _UniqueIds(prefix="x", separator="_", pattern=r"[^a-z0-9]+", snake=True)
        for element in elements:
            kind = _local(element.tag)
            name = element.get("name") or element.get("id") or "(unnamed)"
            if kind in ("itemDefinition", *_IGNORED):
                continue
            if kind == "inputData":
                variable = self.child(element, "variable")
                typed = self.resolve_type(variable.get("typeRef") if variable is not None else None)
                self.inputs[name] = self.make_input(name, typed, f"{ROOT}.{segments.take(name)}")
            elif kind == "decision":
                self.decisions[name] = self.read_decision(name, element)
            elif kind == "businessKnowledgeModel":
                raise DmnImportError(
                    f"business knowledge model {name!r} is not supported; only decisions "
                    "with decision tables or literal expressions are converted"
                )
            elif kind == "decisionService":
                raise DmnImportError(
                    f"decision service {name!r} is not supported; only decisions with "
                    "decision tables or literal expressions are converted"
                )
            elif kind == "import":
                source = element.get("namespace") or element.get("locationURI") or name
                raise DmnImportError(
                    f"the model imports {source!r}; imports are not supported, the model "
                    "must stand alone"
                )
            else:
                raise DmnImportError(f"the model's element <{kind}> {name!r} is not supported")
        if not self.decisions:
            raise DmnImportError("the model has no decisions")

    def read_decision(self, name: str, element: ET.Element) -> _Decision:
        logic: ET.Element | None = None
        for child in self.children(element):
            kind = _local(child.tag)
            if kind in _DECISION_METADATA:
                continue
            if kind == "knowledgeRequirement":
                raise DmnImportError(
                    f"decision {name!r} invokes a business knowledge model; only decision "
                    "tables and literal expressions are supported"
                )
            if logic is not None:
                raise DmnImportError(f"decision {name!r} has more than one decision logic")
            logic = child
        if logic is None:
            raise DmnImportError(f"decision {name!r} has no decision logic")
        if _local(logic.tag) == "literalExpression":
            return _Decision(name, element, None, literal=logic)
        if _local(logic.tag) != "decisionTable":
            raise DmnImportError(
                f"decision {name!r} uses {_article(_local(logic.tag))} {_local(logic.tag)}; "
                "only decision tables and literal expressions are supported"
            )
        return _Decision(name, element, logic)

    def resolve_type(self, type_ref: str | None, depth: int = 0) -> _Type:
        if type_ref is None or not type_ref.strip():
            return _ANY
        name = type_ref.strip()
        if depth > 32:
            raise DmnImportError(f"type {name!r} refers to itself")
        if name in self.item_definitions:
            return self.item_type(self.item_definitions[name], depth)
        bare = name.split(":", 1)[1] if ":" in name and " " not in name else name
        if bare in _TYPES:
            return _Type(_TYPES[bare], name)
        if bare == "Any":  # as good as no type: the tables that read it tell
            return _ANY
        if bare in self.item_definitions:
            return self.item_type(self.item_definitions[bare], depth)
        if bare in _UNHELD_TYPES:
            return _Type("unheld", _UNHELD_TYPES[bare])
        return _Type("unheld", name)

    def item_type(self, element: ET.Element, depth: int) -> _Type:
        name = element.get("name") or "(unnamed)"
        if element.get("isCollection") == "true":
            return _Type("unheld", f"{name} (a collection)")
        components = self.children(element, "itemComponent")
        if components:
            structure = _Type("structure", name)
            for component in components:
                structure.components[component.get("name") or "(unnamed)"] = self.item_type(
                    component, depth + 1
                )
            return structure
        type_ref = self.child(element, "typeRef")
        base = self.resolve_type(type_ref.text if type_ref is not None else None, depth + 1)
        allowed_text = self.text(self.child(element, "allowedValues"))
        if allowed_text is None:
            allowed_text = self.text(self.child(element, "typeConstraint"))
        allowed = _literal_list(allowed_text) if allowed_text is not None else None
        return _Type(base.kind, name, allowed if allowed is not None else base.allowed)

    def make_input(self, name: str, typed: _Type, path: str) -> _Input:
        made = _Input(name, typed, path)
        if typed.kind == "structure":
            segments = _UniqueIds(prefix="x", separator="_", pattern=r"[^a-z0-9]+", snake=True)
            for component, component_type in typed.components.items():
                made.components[component] = self.make_input(
                    component, component_type, f"{path}.{segments.take(component)}"
                )
        return made

    # -- names: what a table reads --

    def plan(self, decision: _Decision) -> None:
        """Give the decision its table id and output names, before any table reads them."""
        decision.id = self.table_ids.take(decision.name)
        table = decision.table
        if table is None:  # a literal expression: one value, named as the decision
            names = _UniqueIds(prefix="x", separator="_", pattern=r"[^a-z0-9]+", snake=True)
            decision.outputs.append((decision.name, names.take(decision.name)))
            return
        outputs = self.children(table, "output")
        if not outputs:
            raise DmnImportError(f"decision {decision.name!r} has a decision table with no output")
        names = _UniqueIds(prefix="x", separator="_", pattern=r"[^a-z0-9]+", snake=True)
        for output in outputs:
            shown = output.get("name") or (
                decision.name if len(outputs) == 1 else output.get("label") or "output"
            )
            decision.outputs.append((shown, names.take(shown)))
        hit = self.hit_policy(decision)
        aggregation = table.get("aggregation")
        decision.listed = hit in _LISTED and not aggregation

    def hit_policy(self, decision: _Decision) -> str:
        assert decision.table is not None
        written = decision.table.get("hitPolicy") or "UNIQUE"
        hit = HIT_POLICIES.get(" ".join(written.replace("_", " ").split()).upper())
        if hit is None:
            raise DmnImportError(
                f"decision {decision.name!r} has the unknown hit policy {written!r}"
            )
        return hit

    def scope(self) -> _Scope:
        if self._scope is None:
            self._scope = _Scope(self.inputs, self.decisions)
        return self._scope

    # -- tables --

    def convert_table(self, decision: _Decision, table: ET.Element) -> None:
        name = decision.name
        hit = self.hit_policy(decision)
        aggregate = self.aggregate(decision, hit)
        inputs = self.table_inputs(decision, table)
        outputs = self.table_outputs(decision, table)
        if hit in ("priority", "output_order") and all(o.values is None for o in outputs):
            raise DmnImportError(
                f"decision {name!r} has hit policy {table.get('hitPolicy')} but no output "
                "lists its output values (outputValues) in priority order"
            )
        rows = self.table_rows(decision, table, inputs, len(outputs))
        expressions = [i.expression for i in inputs]
        if not expressions:  # a Frontline table reads at least one input
            expressions.append("true")
            rows = [["-", *row] for row in rows]
        defaults = [o.default for o in outputs]
        if any(o.has_default for o in outputs):
            for output in outputs:
                if output.values is not None and output.default not in output.values:
                    output.values.append(output.default)
            rows = self.add_default(decision, hit, expressions, rows, defaults)
        described = f"DMN decision {name!r} (hit policy {table.get('hitPolicy') or 'UNIQUE'})"
        converted: dict[str, Any] = {
            "id": decision.id,
            "description": described[:2000],
            "hit": hit,
            "inputs": expressions,
            "outputs": [
                o.name
                if o.values is None
                else {"name": o.name, "values": [_output_cell(v) for v in o.values]}
                for o in outputs
            ],
            "rows": rows,
        }
        if aggregate is not None:
            converted["aggregate"] = aggregate
        self.tables.append(converted)
        self.owners.append(name)

    def convert_literal(self, decision: _Decision, literal: ET.Element) -> None:
        """A literal expression → a table of one output computed from it: one row, whose
        one input is ``true`` (a table reads at least one) and matches anything; for
        ``if c then a else b`` (and ``else if``), a row per branch, the first whose
        condition is true winning, as FEEL takes the ``else`` branch when a condition is
        false or null."""
        name = decision.name
        where = f"decision {name!r}"
        language = literal.get("expressionLanguage")
        if language and "feel" not in language.lower():
            raise DmnImportError(
                f"{where} has a literal expression in {language!r}; only FEEL is supported"
            )
        text = self.text(literal)
        if text is None or not text.strip():
            raise DmnImportError(f"{where} has an empty literal expression")
        branches = _Expression(text, self.scope(), where, value=True).branches()
        conditions = [condition for condition, _ in branches if condition is not None]
        inputs = conditions or ["true"]
        rows: list[list[Any]] = []
        for k, (condition, value) in enumerate(branches):
            tests: list[Any] = ["-"] * len(inputs)
            if condition is not None:
                tests[k] = True
            rows.append([*tests, _computed_cell(value)])
        described = f"DMN decision {name!r} (a literal expression)"
        if all(row[-1] is None for row in rows):
            # Null whatever the inputs: a row that never matches gives the output its type.
            rows = [["not(-)"] * len(inputs) + [self.null_placeholder(decision)]]
            described = f"DMN decision {name!r} (a literal expression that is always null)"
        ((_, output),) = decision.outputs
        self.literals.add(len(self.tables))
        self.tables.append(
            {
                "id": decision.id,
                "description": described[:2000],
                "hit": "first",
                "inputs": inputs,
                "outputs": [output],
                "rows": rows,
            }
        )
        self.owners.append(name)

    def null_placeholder(self, decision: _Decision) -> Any:
        """A value of the decision's type, for a row that never matches: what types the
        output of a decision that is always null."""
        variable = self.child(decision.element, "variable")
        kind = self.resolve_type(variable.get("typeRef") if variable is not None else None).kind
        placeholders = {"number": 0, "string": "", "date": "", "boolean": False}
        if kind not in placeholders:
            raise DmnImportError(
                f"decision {decision.name!r} is null whatever its inputs, and gives no type "
                "(typeRef of string, number, boolean or date) for its output"
            )
        return placeholders[kind]

    def aggregate(self, decision: _Decision, hit: str) -> str | None:
        assert decision.table is not None
        written = decision.table.get("aggregation")
        if not written:
            return None
        name = decision.name
        aggregate = AGGREGATIONS.get(written.strip().upper())
        if aggregate is None:
            raise DmnImportError(f"decision {name!r} has the unknown aggregation {written!r}")
        if hit != "collect":
            raise DmnImportError(
                f"decision {name!r} has an aggregation ({written}) but hit policy "
                f"{decision.table.get('hitPolicy')}; aggregations go with COLLECT"
            )
        if len(decision.outputs) > 1:
            raise DmnImportError(
                f"decision {name!r} aggregates ({written}) several outputs; DMN aggregates a "
                "single output only"
            )
        return aggregate

    def table_inputs(self, decision: _Decision, table: ET.Element) -> list[_TableInput]:
        scope = self.scope()
        inputs = []
        for k, element in enumerate(self.children(table, "input"), 1):
            expression = self.child(element, "inputExpression")
            text = self.text(expression)
            label = element.get("label") or (text or "").strip() or f"input {k}"
            where = f"decision {decision.name!r} input {label!r}"
            if text is None or not text.strip():
                raise DmnImportError(f"{where} has no input expression")
            converted, bare = _Expression(text, scope, where).convert()
            inputs.append(_TableInput(converted, label, bare))
            if bare is not None:
                declared = expression.get("typeRef") if expression is not None else None
                kind = self.resolve_type(declared).kind
                if kind in _TYPES:
                    bare.evidence.append(kind)
                values_text = self.text(self.child(element, "inputValues"))
                bare.input_values.append(
                    _literal_list(values_text) if values_text is not None else None
                )
        return inputs

    def table_outputs(self, decision: _Decision, table: ET.Element) -> list[_TableOutput]:
        outputs = []
        elements = self.children(table, "output")
        for (shown, frontline), element in zip(decision.outputs, elements, strict=True):
            values_text = self.text(self.child(element, "outputValues"))
            listed = _literal_list(values_text) if values_text is not None else None
            if listed is None:
                listed = self.output_allowed(decision, element)
            output = _TableOutput(frontline, list(listed) if listed is not None else None)
            default_text = self.text(self.child(element, "defaultOutputEntry"))
            if default_text is not None and default_text.strip():
                where = f"decision {decision.name!r} output {shown!r} default"
                output.default = _output_literal(default_text, where)
                output.has_default = True
            outputs.append(output)
        return outputs

    def table_rows(
        self, decision: _Decision, table: ET.Element, inputs: list[_TableInput], width: int
    ) -> list[list[Any]]:
        name = decision.name
        rows: list[list[Any]] = []
        for r, rule in enumerate(self.children(table, "rule"), 1):
            entries = self.children(rule, "inputEntry")
            results = self.children(rule, "outputEntry")
            if len(entries) != len(inputs) or len(results) != width:
                raise DmnImportError(
                    f"decision {name!r} rule {r} has {len(entries)} input and "
                    f"{len(results)} output entries; the table has {len(inputs)} inputs and "
                    f"{width} outputs"
                )
            row: list[Any] = []
            for entry, table_input in zip(entries, inputs, strict=True):
                where = f"decision {name!r} rule {r} input {table_input.label!r}"
                cell, kinds = _unary_tests(self.text(entry) or "", where)
                if table_input.bare is not None:
                    table_input.bare.evidence.extend(kinds)
                row.append(cell)
            for (shown, _), result in zip(decision.outputs, results, strict=True):
                where = f"decision {name!r} rule {r} output {shown!r}"
                row.append(self.output_entry(self.text(result) or "", where))
            rows.append(row)
        if not rows:
            raise DmnImportError(f"decision {name!r} has a decision table with no rules")
        return rows

    def output_entry(self, text: str, where: str) -> Any:
        """An output entry as a cell: a literal as itself; an expression that computes
        (``Age * 2``, ``"Hello " + Name``) as a computed cell, ``{...}``."""
        found = _literal_entry(text, where)
        if found is not _COMPUTES:
            return _output_cell(found)
        (branch,) = _Expression(text, self.scope(), where, value=True).branches(conditional=False)
        return _computed_cell(branch[1])

    def output_allowed(self, decision: _Decision, output: ET.Element) -> tuple[Any, ...] | None:
        """The allowed values of an output's type (or the decision's, for one output)."""
        type_ref = output.get("typeRef")
        if type_ref is None and len(decision.outputs) == 1:
            variable = self.child(decision.element, "variable")
            type_ref = variable.get("typeRef") if variable is not None else None
            if type_ref in self.item_definitions:
                element = self.item_definitions[type_ref]
                if element.get("isCollection") == "true":
                    # A list of the rows' values: the allowed values of its items.
                    return self.item_type_allowed(element)
        return self.resolve_type(type_ref).allowed

    def item_type_allowed(self, element: ET.Element) -> tuple[Any, ...] | None:
        allowed_text = self.text(self.child(element, "allowedValues"))
        if allowed_text is not None:
            return _literal_list(allowed_text)
        type_ref = self.child(element, "typeRef")
        return self.resolve_type(type_ref.text if type_ref is not None else None).allowed

    def add_default(
        self,
        decision: _Decision,
        hit: str,
        inputs: list[str],
        rows: list[list[Any]],
        defaults: list[Any],
    ) -> list[list[Any]]:
        """The rows with a last one giving the default outputs when no other row matches."""
        catch_all = ["-"] * len(inputs) + [_output_cell(v) for v in defaults]
        if hit == "first":
            return [*rows, catch_all]
        # The default row reads how many rows match, from a table of the same rows.
        helper = self.table_ids.take(f"{decision.id}-matches")
        self.tables.append(
            {
                "id": helper,
                "description": f"How many rules of DMN decision {decision.name!r} match "
                "(for its default outputs)"[:2000],
                "hit": "collect",
                "aggregate": "count",
                "inputs": list(inputs),
                "outputs": ["rows"],
                "rows": [[*row[: len(inputs)], 1] for row in rows],
            }
        )
        self.owners.append(decision.name)
        width = len(inputs)
        inputs.append(f"tables.{helper}.rows")
        return [[*row[:width], "-", *row[width:]] for row in rows] + [
            [*catch_all[:width], 0, *catch_all[width:]]
        ]

    # -- the context --

    def declared(self, item: _Input) -> bool:
        return self.kind_of(item) is not None

    def kind_of(self, item: _Input) -> str | None:
        """The input's kind, or None when it is left out (untyped and unread)."""
        if item.type.kind == "structure":
            return "structure"
        if item.type.kind in _TYPES:
            return item.type.kind
        if item.type.kind == "unheld":
            if item.read:
                raise DmnImportError(
                    f"input data {item.name!r} is of type {item.type.name!r}, which Frontline "
                    "cannot hold; supported are string, number, boolean, date and structures "
                    "of them"
                )
            return None
        seen = sorted(set(item.evidence))
        if not item.read:
            return None
        if len(seen) != 1:
            shown = " and ".join(seen) if seen else "nothing"
            raise DmnImportError(
                f"input data {item.name!r} has no type (typeRef), and the tables that read "
                f"it show {shown}; give it a typeRef"
            )
        return seen[0]

    def context(self) -> dict[str, Any]:
        context: dict[str, Any] = {}
        for item in self.inputs.values():
            self.declare(context, item, item.name)
        return context

    def declare(self, context: dict[str, Any], item: _Input, shown: str) -> None:
        kind = self.kind_of(item)
        if kind is None:
            return
        if kind == "structure":
            for component in item.components.values():
                self.declare(context, component, f"{shown}.{component.name}")
            return
        spec: dict[str, Any] = {"type": _FIELD_TYPES[kind]}
        enum = self.enum(item) if kind == "string" else None
        if enum is not None:
            spec["enum"] = enum
        described = f"DMN input data {shown!r}"
        if kind == "date":
            described += " (a date: YYYY-MM-DD)"
        spec["description"] = described[:2000]
        context[item.path] = spec

    def enum(self, item: _Input) -> list[str] | None:
        allowed = item.type.allowed
        if allowed is None and item.input_values and all(v is not None for v in item.input_values):
            union: dict[Any, None] = {}
            for listed in item.input_values:
                assert listed is not None
                union.update(dict.fromkeys(listed))
            allowed = tuple(union)
        if not allowed or not all(isinstance(v, str) for v in allowed):
            return None
        return list(dict.fromkeys(allowed))

    def public_input(self, item: _Input) -> DmnInput:
        kind = self.kind_of(item)
        assert kind is not None
        if kind == "structure":
            return DmnInput(
                item.name,
                kind,
                None,
                tuple(self.public_input(c) for c in item.components.values() if self.declared(c)),
            )
        return DmnInput(item.name, kind, item.path)

    # -- the document compiles --

    def check(self, document: dict[str, Any]) -> None:
        """Compile the document; a problem becomes one sentence naming the DMN element."""
        try:
            # Overlapping rules of a UNIQUE table are the model's error, which DMN reports
            # when they match: kept as warnings here (``import-dmn`` prints them).
            compile_ruleset(document, strict=False)
        except RulesetError as exc:
            problem = exc.errors[0]
            match = re.match(r"tables\[(\d+)\](?:\.rows\[(\d+)\])?", problem.path)
            if match is None:
                raise DmnImportError(
                    f"the converted document does not compile: {problem.message}"
                ) from None
            position = int(match.group(1))
            owner = self.owners[position]
            rule = ""
            if match.group(2) is not None and position not in self.literals:
                rule = f" rule {int(match.group(2)) + 1}"
            message = re.sub(r"^row \d+, column \d+: ", "", problem.message)
            for shown, output in self.decisions[owner].outputs:
                message = message.replace(f"output {output!r}", f"output {shown!r}")
            raise DmnImportError(f"decision {owner!r}{rule}: {message}") from None


# -- names ------------------------------------------------------------------------------------


def _identifier(name: str, prefix: str, separator: str, pattern: str, snake: bool = False) -> str:
    """A Frontline id (``approval-status``) or identifier (``approval_status``) from a name."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    if snake:
        text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
        text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    text = re.sub(pattern, separator, text.lower()).strip(separator)
    limit = _MAX_SEGMENT if snake else _MAX_ID
    if not text[:1].isalpha():
        text = f"{prefix}{separator}{text}".rstrip(separator)
    text = text[:limit].rstrip(separator)
    if snake and (keyword.iskeyword(text) or text in RESERVED_NAMES or text.startswith("__")):
        text += "_"
    return text


class _UniqueIds:
    def __init__(self, *, prefix: str, separator: str, pattern: str, snake: bool = False) -> None:
        self.prefix, self.separator, self.pattern, self.snake = prefix, separator, pattern, snake
        self.taken: set[str] = set()

    def take(self, name: str) -> str:
        base = candidate = _identifier(name, self.prefix, self.separator, self.pattern, self.snake)
        n = 1
        while candidate in self.taken:
            n += 1
            suffix = f"{self.separator}{n}"
            limit = (_MAX_SEGMENT if self.snake else _MAX_ID) - len(suffix)
            candidate = base[:limit].rstrip(self.separator) + suffix
        self.taken.add(candidate)
        return candidate


# -- FEEL: literals and unary tests -----------------------------------------------------------

_NUMBER = re.compile(r"(?:\d+(?:\.\d+)?|\.\d+)")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "'": "'", "\\": "\\", "b": "\b", "f": "\f"}
_UNHELD_LITERALS = ("date and time", "time", "duration", "years and months duration")


class _Unconvertible(Exception):
    """Raised inside the FEEL readers; the caller adds where."""


class _Reader:
    """A cursor over FEEL text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at_end(self) -> bool:
        self.skip()
        return self.pos >= len(self.text)

    def peek(self, token: str) -> bool:
        self.skip()
        return self.text.startswith(token, self.pos)

    def take(self, token: str) -> bool:
        if self.peek(token):
            self.pos += len(token)
            return True
        return False

    def take_word(self, word: str) -> bool:
        """Take ``word`` when it stands alone (not the start of a longer name)."""
        self.skip()
        end = self.pos + len(word)
        if self.text.startswith(word, self.pos) and not _name_char(self.text[end : end + 1]):
            self.pos = end
            return True
        return False

    def expect(self, token: str) -> None:
        if not self.take(token):
            raise _Unconvertible(f"expected {token!r} at {self.rest()!r}")

    def rest(self) -> str:
        self.skip()
        return self.text[self.pos :] or "the end"

    def literal(self) -> tuple[Any, str] | None:
        """A FEEL literal at the cursor and its kind, or None when there is none."""
        self.skip()
        text, start = self.text, self.pos
        negative = False
        if text.startswith("-", start) and _NUMBER.match(text, start + 1):
            negative = True
            self.pos += 1
        number = _NUMBER.match(text, self.pos)
        if number is not None and not _name_char(text[number.end() : number.end() + 1]):
            self.pos = number.end()
            return _number(("-" if negative else "") + number.group()), "number"
        self.pos = start
        string = _STRING.match(text, self.pos)
        if string is not None:
            self.pos = string.end()
            return _unescape(string.group(1)), "string"
        for word, value in (("true", True), ("false", False)):
            if self.take_word(word):
                return value, "boolean"
        if self.take("@"):
            at = _STRING.match(text, self.pos)
            if at is None:
                raise _Unconvertible(f"expected a string after '@' at {self.rest()!r}")
            self.pos = at.end()
            return _date(_unescape(at.group(1)), f"@{at.group()}"), "date"
        for function in _UNHELD_LITERALS:
            if self.take_word(function) and self.peek("("):
                raise _Unconvertible(
                    f"{function}() values are not supported; only dates among the temporal types"
                )
            self.pos = start
        if self.take_word("date") and self.take("("):
            self.skip()
            inner = _STRING.match(text, self.pos)
            if inner is None:
                raise _Unconvertible("date() is supported with a string literal only")
            self.pos = inner.end()
            self.expect(")")
            return _date(_unescape(inner.group(1)), f"date({inner.group()})"), "date"
        self.pos = start
        return None


def _name_char(ch: str) -> bool:
    return bool(ch) and (ch.isalnum() or ch == "_")


def _number(text: str) -> int | float:
    if "." not in text:
        return int(text)
    value = float(text)
    if not math.isfinite(value):
        raise _Unconvertible(f"{text} is too large a number")
    if value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _unescape(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\" or i + 1 >= len(body):
            out.append(ch)
            i += 1
            continue
        code = body[i + 1]
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            i += 2
        elif code in "uU":
            width = 4 if code == "u" else 6
            digits = body[i + 2 : i + 2 + width]
            if (
                len(digits) != width
                or not re.fullmatch(r"[0-9a-fA-F]+", digits)
                or int(digits, 16) > 0x10FFFF
            ):
                raise _Unconvertible(f"bad escape {body[i : i + 2 + width]!r} in a string")
            out.append(chr(int(digits, 16)))
            i += 2 + width
        else:
            out.append(code)
            i += 2
    text = "".join(out)
    # \ud83d\ude00 written as two escapes is one character.
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _date(text: str, written: str) -> str:
    if not _is_date(text):
        raise _Unconvertible(f"{written} is not a date (YYYY-MM-DD); only dates are supported")
    return text


def _literal_list(text: str) -> tuple[Any, ...] | None:
    """The literals of an ``inputValues``/``outputValues``/``allowedValues`` list, or None
    when it is more than literals (a range, a comparison, ``not(...)``)."""
    reader = _Reader(text)
    if reader.at_end():
        return None
    values: list[Any] = []
    try:
        while True:
            found = reader.literal()
            if found is None:
                return None
            values.append(found[0])
            if reader.at_end():
                return tuple(values)
            if not reader.take(","):
                return None
    except _Unconvertible:
        return None


def _unary_tests(text: str, where: str) -> tuple[Any, list[str]]:
    """An input entry → a Frontline cell, and the kinds of the literals it holds."""
    reader = _Reader(text)
    kinds: list[str] = []
    if reader.at_end() or text.strip() == "-":
        return "-", kinds
    try:
        if reader.take_word("not"):
            reader.expect("(")
            tests = _positive_tests(reader, kinds)
            reader.expect(")")
            cell = f"not({', '.join(tests)})"
        else:
            cell = ", ".join(_positive_tests(reader, kinds))
        if not reader.at_end():
            raise _Unconvertible(f"unexpected {reader.rest()!r}")
    except _Unconvertible as exc:
        raise DmnImportError(
            f"{where}: {text.strip()!r} is not an S-FEEL unary test Frontline can convert ({exc})"
        ) from None
    return _cell(cell), kinds


def _positive_tests(reader: _Reader, kinds: list[str]) -> list[str]:
    tests = [_positive_test(reader, kinds)]
    while reader.take(","):
        tests.append(_positive_test(reader, kinds))
    return tests


def _positive_test(reader: _Reader, kinds: list[str]) -> str:
    reader.skip()
    if reader.take_word("null"):
        raise _Unconvertible("a null test cannot be expressed: an unknown input matches only '-'")
    for op in ("<=", ">=", "!=", "<", ">", "="):
        if reader.take(op):
            value, kind = _endpoint(reader)
            kinds.append(kind)
            if op == "=":
                return _cell_literal(value)
            if op == "!=":
                return f"not({_cell_literal(value)})"
            return f"{op} {_cell_literal(value)}"
    for opener in ("[", "(", "]"):
        if reader.take(opener):
            low, low_kind = _endpoint(reader)
            reader.expect("..")
            high, high_kind = _endpoint(reader)
            closer = next((c for c in ("]", ")", "[") if reader.take(c)), None)
            if closer is None:
                raise _Unconvertible(
                    f"expected ']', ')' or '[' to close the range at {reader.rest()!r}"
                )
            kinds.extend((low_kind, high_kind))
            if _comparable_kind(low_kind) != _comparable_kind(high_kind):
                raise _Unconvertible("a range's ends must be of one type")
            if low_kind == "boolean":
                raise _Unconvertible("a range of booleans")
            low_in, high_in = opener == "[", closer == "]"
            if low > high or (low == high and not (low_in and high_in)):
                return "not(-)"  # an empty range matches nothing
            return (
                f"{'[' if low_in else '('}{_cell_literal(low)}.."
                f"{_cell_literal(high)}{']' if high_in else ')'}"
            )
    value, kind = _endpoint(reader)
    kinds.append(kind)
    return _cell_literal(value)


def _endpoint(reader: _Reader) -> tuple[Any, str]:
    found = reader.literal()
    if found is None:
        raise _Unconvertible(
            f"expected a literal at {reader.rest()!r}; unary tests may compare with literals only"
        )
    return found


def _comparable_kind(kind: str) -> str:
    return "string" if kind == "date" else kind


def _cell(text: str) -> Any:
    """A cell as the document writes it: a lone number or boolean as itself, else the text."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value if isinstance(value, bool | int | float) else text


def _cell_literal(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


_COMPUTES = object()  # what ``_literal_entry`` gives for an entry that is an expression


def _literal_entry(text: str, where: str) -> Any:
    """An output entry's value when it is a literal (``null`` included; empty text is null),
    else ``_COMPUTES``."""
    reader = _Reader(text)
    if reader.at_end() or (reader.take_word("null") and reader.at_end()):
        return None
    reader.pos = 0
    try:
        found = reader.literal()
    except _Unconvertible as exc:
        raise DmnImportError(f"{where}: {text.strip()!r} cannot be converted ({exc})") from None
    if found is None or not reader.at_end():
        return _COMPUTES
    return found[0]


def _output_literal(text: str, where: str) -> Any:
    """A default output entry's value: a literal only."""
    found = _literal_entry(text, where)
    if found is _COMPUTES:
        raise DmnImportError(
            f"{where}: {text.strip()!r} is an expression; a default output is a literal value"
        )
    return found


def _output_cell(value: Any) -> Any:
    """A value as an output cell: a string that Frontline would read otherwise (``"x"`` in
    double quotes, or text with ``{`` or ``}``, a computed cell's) is written as a JSON
    string, so it stays itself."""
    if isinstance(value, str):
        stripped = value.strip()
        quoted = len(stripped) >= 2 and stripped[0] == '"' and stripped[-1] == '"'
        if quoted or "{" in value or "}" in value:
            return json.dumps(value, ensure_ascii=False)
    return value


def _computed_cell(expression: str) -> Any:
    """A converted expression as an output cell: computed (``{...}``); a literal as itself
    (a literal expression ``"high"`` or ``.872``); null for FEEL that is null whatever the
    inputs (``10 + null``)."""
    if expression == _NULL:
        return None
    try:
        value = json.loads(expression)
    except json.JSONDecodeError:
        return "{" + expression + "}"
    if isinstance(value, str | int | float | bool):
        return _output_cell(value)
    return "{" + expression + "}"  # pragma: no cover - the converter writes no other JSON


# -- FEEL: input expressions ------------------------------------------------------------------


class _Scope:
    """The names an input expression may read: input data and decisions, longest first."""

    def __init__(self, inputs: Mapping[str, _Input], decisions: Mapping[str, _Decision]) -> None:
        self.inputs = inputs
        self.decisions = decisions
        self.patterns = [
            (name, _name_pattern(name))
            for name in sorted([*inputs, *decisions], key=len, reverse=True)
        ]

    def match(self, text: str, pos: int) -> tuple[str, int] | None:
        for name, pattern in self.patterns:
            found = pattern.match(text, pos)
            if found is not None:
                return name, found.end()
        return None


def _name_pattern(name: str) -> re.Pattern[str]:
    words = name.split()
    body = r"\s+".join(re.escape(w) for w in words) if words else re.escape(name)
    tail = r"(?![\w])" if _name_char(name[-1:]) else ""
    return re.compile(body + tail)


# FEEL functions with a Frontline counterpart of the same meaning, by FEEL name.
_FUNCTIONS = {
    "abs": "abs",
    "min": "min",
    "max": "max",
    "not": "not",
    "string length": "len",
    "upper case": "upper",
    "lower case": "lower",
    "contains": "contains",
    "starts with": "startswith",
    "ends with": "endswith",
}
_NULL = "null"  # FEEL's null in a value: no Frontline expression is this text
_KEYWORDS = ("if", "then", "else", "for", "some", "every", "function", "in", "return")


class _Expression:
    """S-FEEL → a Frontline expression: an input expression, or with ``value`` an output
    entry or literal expression, where FEEL's ``null`` makes arithmetic null (``_NULL``)
    and a literal expression may be ``if ... then ... else ...`` (``branches``)."""

    def __init__(self, text: str, scope: _Scope, where: str, *, value: bool = False) -> None:
        self.reader = _Reader(text)
        self.scope = scope
        self.where = where
        self.text = text
        self.value = value

    def convert(self) -> tuple[str, _Input | None]:
        """The Frontline expression, and the input it is when it is just one input."""
        try:
            expression, bare = self.disjunction()
            if not self.reader.at_end():
                raise _Unconvertible(f"unexpected {self.reader.rest()!r}")
        except _Unconvertible as exc:
            raise self.refused(exc) from None
        return expression, bare

    def branches(self, *, conditional: bool = True) -> list[tuple[str | None, str]]:
        """A value as (condition, value) branches: one with no condition, or for ``if c
        then a else b`` (with ``conditional``) one per ``if`` and the ``else`` last. A value
        that is null whatever the inputs is ``_NULL``."""
        reader = self.reader
        found: list[tuple[str | None, str]] = []
        try:
            while conditional and reader.take_word("if"):
                condition, _ = self.disjunction()
                if condition == _NULL:
                    raise _Unconvertible("a condition that is null")
                self.keyword("then")
                then, _ = self.disjunction()
                self.keyword("else")
                found.append((condition, then))
            value, _ = self.disjunction()
            if not reader.at_end():
                raise _Unconvertible(f"unexpected {reader.rest()!r}")
        except _Unconvertible as exc:
            raise self.refused(exc) from None
        found.append((None, value))
        return found

    def refused(self, exc: _Unconvertible) -> DmnImportError:
        kind = "a FEEL expression" if self.value else "an S-FEEL expression"
        return DmnImportError(
            f"{self.where}: {self.text.strip()!r} is not {kind} Frontline can convert ({exc})"
        )

    def keyword(self, word: str) -> None:
        if not self.reader.take_word(word):
            raise _Unconvertible(f"expected '{word}' at {self.reader.rest()!r}")

    def no_null(self, operands: tuple[str, ...], where: str) -> None:
        if _NULL in operands:
            raise _Unconvertible(
                f"null in {where}: Frontline has no null to compare or to combine with "
                "'and', 'or' and 'not'"
            )

    def disjunction(self) -> tuple[str, _Input | None]:
        left, bare = self.conjunction()
        while self.reader.take_word("or"):
            right, _ = self.conjunction()
            self.no_null((left, right), "'or'")
            left, bare = f"({left} or {right})", None
        return left, bare

    def conjunction(self) -> tuple[str, _Input | None]:
        left, bare = self.comparison()
        while self.reader.take_word("and"):
            right, _ = self.comparison()
            self.no_null((left, right), "'and'")
            left, bare = f"({left} and {right})", None
        return left, bare

    def comparison(self) -> tuple[str, _Input | None]:
        left, bare = self.additive()
        for op, python in (
            ("<=", "<="),
            (">=", ">="),
            ("!=", "!="),
            ("<", "<"),
            (">", ">"),
            ("=", "=="),
        ):
            if self.reader.take(op):
                right, _ = self.additive()
                self.no_null((left, right), "a comparison")
                return f"({left} {python} {right})", None
        for word in ("between", "in", "instance"):
            if self.reader.take_word(word):
                raise _Unconvertible(f"'{word}' is not supported")
        return left, bare

    def additive(self) -> tuple[str, _Input | None]:
        left, bare = self.multiplicative()
        while True:
            op = next((o for o in ("+", "-") if self.reader.take(o)), None)
            if op is None:
                return left, bare
            right, _ = self.multiplicative()
            left, bare = _arithmetic(left, op, right), None

    def multiplicative(self) -> tuple[str, _Input | None]:
        left, bare = self.power()
        while True:
            reader = self.reader
            op = next((o for o in ("*", "/") if reader.peek(o) and not reader.peek("**")), None)
            if op is None:
                return left, bare
            reader.take(op)
            right, _ = self.power()
            left, bare = _arithmetic(left, op, right), None

    def power(self) -> tuple[str, _Input | None]:
        left, bare = self.unary()
        while self.reader.take("**"):
            right, _ = self.unary()
            left, bare = _arithmetic(left, "**", right), None
        return left, bare

    def unary(self) -> tuple[str, _Input | None]:
        reader = self.reader
        reader.skip()
        if reader.peek("-") and not _NUMBER.match(reader.text, reader.pos + 1):
            reader.pos += 1
            operand, _ = self.unary()
            return (_NULL if operand == _NULL else f"(-{operand})"), None
        return self.primary()

    def primary(self) -> tuple[str, _Input | None]:
        reader = self.reader
        reader.skip()
        found = self.scope.match(reader.text, reader.pos)
        if found is not None:
            name, end = found
            reader.pos = end
            return self.reference(name)
        if reader.take("("):
            inner, _ = self.disjunction()
            reader.expect(")")
            return inner, None
        literal = reader.literal()
        if literal is not None:
            text = json.dumps(literal[0], ensure_ascii=False)
            if self.value:  # a computed cell is a template: braces inside it as escapes
                text = text.replace("{", "\\u007b").replace("}", "\\u007d")
            return text, None
        if reader.take_word("null"):
            if self.value:
                return _NULL, None
            raise _Unconvertible("null cannot be compared; an unknown value is never equal")
        for reserved in _KEYWORDS:
            if reader.take_word(reserved):
                if reserved == "if":
                    raise _Unconvertible(
                        "'if' inside an expression; Frontline converts if ... then ... else "
                        "only as a whole literal expression"
                    )
                raise _Unconvertible(f"'{reserved}' is not supported")
        call = re.compile(r"([A-Za-z_][\w ]*?)\s*\(").match(reader.text, reader.pos)
        if call is not None:
            return self.call(" ".join(call.group(1).split()), call.end())
        word = re.compile(r"[^\s()+\-*/<>=!,]+(?:\s+[^\s()+\-*/<>=!,]+)*").match(
            reader.text, reader.pos
        )
        shown = word.group() if word else reader.rest()
        raise _Unconvertible(f"{shown!r} is neither an input data nor a decision of the model")

    def call(self, function: str, end: int) -> tuple[str, _Input | None]:
        reader = self.reader
        if function not in _FUNCTIONS:
            raise _Unconvertible(f"the function {function}() is not supported")
        reader.pos = end
        args = [self.disjunction()[0]]
        while reader.take(","):
            args.append(self.disjunction()[0])
        reader.expect(")")
        if function == "not":
            if len(args) != 1:
                raise _Unconvertible("not() takes one argument")
            self.no_null(tuple(args), "not()")
            return f"(not {args[0]})", None
        if _NULL in args:
            if len(args) == 1:  # a function of null is null
                return _NULL, None
            raise _Unconvertible(f"null as an argument of {function}()")
        return f"{_FUNCTIONS[function]}({', '.join(args)})", None

    def reference(self, name: str) -> tuple[str, _Input | None]:
        reader = self.reader
        if name in self.scope.inputs:
            item = self.scope.inputs[name]
            while item.components and reader.peek(".") and not reader.peek(".."):
                reader.pos += 1
                reader.skip()
                component = _longest(item.components, reader.text, reader.pos)
                if component is None:
                    raise _Unconvertible(f"{name!r} has no component at {reader.rest()!r}")
                part, reader.pos = component
                item = item.components[part]
                name = f"{name}.{part}"
            if item.type.kind == "structure":
                raise _Unconvertible(f"{name!r} is a structure; read one of its components")
            item.read = True
            return item.path, item
        decision = self.scope.decisions[name]
        if decision.listed:
            raise _Unconvertible(
                f"decision {name!r} gives a list (every matching rule), and a table input is "
                "one value"
            )
        outputs = dict(decision.outputs)
        if len(outputs) == 1:
            ((_, output),) = decision.outputs
            return f"tables.{decision.id}.{output}", None
        if not (reader.peek(".") and not reader.peek("..")):
            raise _Unconvertible(
                f"decision {name!r} has several outputs; read one of them ({name}.<output>)"
            )
        reader.pos += 1
        reader.skip()
        component = _longest(outputs, reader.text, reader.pos)
        if component is None:
            raise _Unconvertible(f"decision {name!r} has no output at {reader.rest()!r}")
        part, reader.pos = component
        return f"tables.{decision.id}.{outputs[part]}", None


def _arithmetic(left: str, op: str, right: str) -> str:
    """``left op right``; null when either is (FEEL's arithmetic with null is null)."""
    if _NULL in (left, right):
        return _NULL
    return f"({left} {op} {right})"


def _longest(names: Mapping[str, Any], text: str, pos: int) -> tuple[str, int] | None:
    for name in sorted(names, key=len, reverse=True):
        found = _name_pattern(name).match(text, pos)
        if found is not None:
            return name, found.end()
    return None


# -- the document as YAML ---------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # A string YAML 1.2 would read as something else when plain (1e3, 0o17) is quoted;
    # PyYAML's own resolver (YAML 1.1) quotes the rest that need it (on, yes, null).
    style = None if resolve_plain(value) == value and isinstance(resolve_plain(value), str) else "'"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _represent_list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.SequenceNode:
    # A list of scalars (the inputs, a row, an enum) on one line; others in block style.
    node = dumper.represent_list(value)
    node.flow_style = all(isinstance(item, yaml.ScalarNode) for item in node.value)
    return node


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(list, _represent_list)


def dump_document(document: Mapping[str, Any]) -> str:
    """Render a document as block-style YAML that Frontline reads back as the same data."""
    text: str = yaml.dump(
        dict(document),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=_NO_FOLDING,
    )
    try:
        data, _ = load_document(text)
    except RulesetError as exc:  # past the limits of a document's text
        raise DmnImportError(f"the converted document cannot be written as YAML: {exc}") from None
    if data != document:  # pragma: no cover - a bug in the representer above
        raise AssertionError("the YAML rendering does not read back as the document")
    return text

"""Convert durable_rules JSON rulesets into Frontline ruleset documents.

``frontline import-durable FILE.json`` reads a durable_rules ruleset (the JSON of its
reference manual, ``{"name": {"rule": {"all": [{"m": {...}}], "run": "action"}}}``) and
writes a Frontline document::

    conversion = convert_durable(json.load(file))
    print(dump_document(conversion.document))
    for sentence in conversion.unsupported:
        print(sentence, file=sys.stderr)

What converts: rules over one message. A rule's ``all`` with one pattern, or its ``any`` with
one or more patterns (any one message firing the rule: ``or``), where a pattern is built from
``$and``, ``$or``, equality (``{"attr": literal}`` or ``$eq``), ``$neq``, ``$lt``, ``$lte``,
``$gt``, ``$gte``, ``$ex``, ``$nex``, ``$mt``, ``$imt``, ``$iall`` and ``$iany``. Message
attributes become fields under the root ``m`` (``customer.tier`` → ``m.customer.tier``), typed
from the literals they are compared with: ``number``, ``string`` or ``boolean``; a list read by
``$iall``/``$iany`` becomes ``{type: list, items: ...}`` with scalar items (``$i``) or object
items (``$i.amount``). Each rule becomes an eligibility rule whose offer is its id.

What does not convert, each reported as one sentence in ``unsupported`` and the rule left out:
sequences and correlations over several messages (``all`` with several patterns, ``$all``/
``$any``/``$not`` pattern names), ``count`` and ``cap``, references to other attributes or
messages (``{"$m": ...}``, arithmetic), session state (``$s``), statecharts and flowcharts,
attribute names that are not Frontline field names, an attribute used with conflicting types,
and patterns Frontline refuses (see below). ``pri`` only orders durable_rules' actions: the rule
is converted and the lost ordering reported. ``dist`` has no effect on one-message rules and is
ignored.

Semantics. durable_rules evaluates a pattern against a message; the converted ``when`` against
the context ``{"m": message}``. They agree on every message whose attributes have the inferred
types, because the translation keeps durable_rules' rules for absent attributes: a comparison
(``$neq`` included) on an absent attribute is false in durable_rules and unknown in Frontline,
and since patterns have no negation, a ``when`` built with ``and``/``or`` from such atoms is
true exactly when the durable_rules pattern is. Details that needed care:

- ``$iall`` is false on an empty list in durable_rules, so it becomes
  ``len(m.xs) > 0 and all(...)``.
- ``$mt`` and ``$imt`` match the whole string in durable_rules' own dialect (``%d``, ``%a``,
  ... classes; ``%`` escapes; ``{n,m}`` repeats; ``^`` and ``$`` are ordinary characters).
  They are translated to RE2 (the syntax ``matches()`` takes) anchored with
  ``\\A(?:...)\\z``; ``.`` matches every character (``(?s)``) and ``$imt`` folds ASCII
  letters only, as durable_rules' ``tolower`` does: each letter becomes a class of both cases
  (``[gG]``), since RE2's ``(?i)`` would fold other letters too. Patterns durable_rules
  refuses (``%c`` among them: its class table is cut short by a NUL byte), reads in
  surprising ways (unbalanced parentheses, whose excess text it ignores; stacked repeats such
  as ``a+*``; ``{0}`` and ``{,n}``, which it reads as ``*``) or that Frontline refuses (longer
  than 200 characters once translated) are reported.

Residual differences, for values outside the inferred types or for unusual strings:

- A ``null`` value is present for durable_rules (``$ex`` true, ``$nex`` false) but unknown for
  Frontline (``missing`` is true). A value of another type (a string where a number was
  inferred) is compared by durable_rules after converting it to text, while Frontline treats it
  as unknown and ``missing`` as true.
- durable_rules compares strings by their raw JSON text: characters JSON escapes (``"``,
  ``\\``, control characters) compare and match as their escapes, and when a message string is
  a prefix of the literal, durable_rules looks one byte past it (at the closing quote), so
  ``"ab" < "ab c"`` is false there; Frontline compares code points.
- Integers beyond 64 bits overflow in durable_rules; Frontline compares them exactly.
- durable_rules also matches each new session's state fact (``{"sid": ..., "id": "sid-...",
  "$s": 1}``) against the rules, so a rule that only tests absence fires once for it;
  Frontline has no such fact. durable_rules' events are consumed by the first rule they fire;
  the conversion has the semantics of facts, where every matching rule fires.
"""

from __future__ import annotations

import copy
import json
import keyword
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from engine.compiler import compile_ruleset
from engine.errors import RulesetError
from engine.expr import RESERVED_NAMES
from engine.regexes import check_regex

__all__ = [
    "DurableConversion",
    "DurableImportError",
    "convert_durable",
    "dump_document",
    "translate_pattern",
]

ROOT = "m"
ITEM = "item"
_MAX_ID = 64
_NO_FOLDING = 1 << 20
_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_COMPARISONS = {"$eq": "==", "$neq": "!=", "$lt": "<", "$lte": "<=", "$gt": ">", "$gte": ">="}
_ORDERINGS = {"$lt", "$lte", "$gt", "$gte"}
_OPERATORS = {*_COMPARISONS, "$ex", "$nex", "$mt", "$imt", "$iall", "$iany"}
_RULE_KEYS = {"all", "any", "run", "pri", "count", "cap", "dist"}
_UNSUPPORTED_SETTINGS = {
    "count": "fires once per that many matching messages",
    "cap": "fires with batches of up to that many messages",
}


@dataclass(frozen=True)
class DurableConversion:
    """A Frontline document and one sentence for each construct left out of it."""

    document: dict[str, Any]
    unsupported: list[str]


class DurableImportError(ValueError):
    """The input is not a durable_rules JSON ruleset at all."""


def convert_durable(ruleset: Mapping[str, Any], *, name: str | None = None) -> DurableConversion:
    """Convert one durable_rules ruleset, ``{"name": {"rule": {...}, ...}}``.

    ``name`` is the Frontline ruleset name; by default the durable_rules one. Either is made a
    valid name (lowercase letters, digits and ``-``). Raise DurableImportError when ``ruleset``
    is not one durable_rules ruleset.
    """
    if not isinstance(ruleset, Mapping):
        raise DurableImportError(
            f"expected a durable_rules ruleset (a JSON object), not {_kind(ruleset)}"
        )
    if len(ruleset) != 1:
        raise DurableImportError(
            "expected one durable_rules ruleset, a JSON object with one key naming it; "
            f"this one has {len(ruleset)} keys"
        )
    ((durable_name, rules),) = ruleset.items()
    if not isinstance(rules, Mapping):
        raise DurableImportError(
            f"ruleset {durable_name!r} must map rule names to rules, not {_kind(rules)}"
        )
    unsupported: list[str] = []
    base_name, _, chart = str(durable_name).partition("$")
    if chart:
        # A statechart or flowchart routes messages through states; a flat eligibility
        # section cannot follow them.
        unsupported.append(
            f"ruleset {durable_name!r} is a {'statechart' if chart == 'state' else 'flowchart'}"
            "; statecharts and flowcharts cannot be converted"
        )
        rules = {}
    schema = _Schema()
    ids = _UniqueIds()
    converted: list[tuple[str, dict[str, Any]]] = []
    for rule_name, rule in rules.items():
        # Convert against a copy, so a rule left out leaves no field types behind.
        trial = copy.deepcopy(schema)
        try:
            when, notes = _convert_rule(rule, trial)
        except _Unsupported as exc:
            unsupported.append(f"rule {rule_name!r}: {exc}")
            continue
        schema = trial
        unsupported.extend(f"rule {rule_name!r}: {note}" for note in notes)
        rule_id = ids.take(str(rule_name))
        because = f"Imported from durable_rules rule {rule_name!r}"
        converted.append(
            (rule_name, {"id": rule_id, "when": when, "offer": rule_id, "because": because})
        )
    document = {
        "ruleset": _identifier(name if name is not None else base_name, "ruleset"),
        "description": f"Imported from durable_rules ruleset {durable_name!r}",
        "context": schema.context(),
        "eligibility": [rule for _, rule in converted],
    }
    unsupported.extend(_drop_refused(document, [rule_name for rule_name, _ in converted]))
    return DurableConversion(document=document, unsupported=unsupported)


def dump_document(document: Mapping[str, Any]) -> str:
    """Render a document as block-style YAML, keys in document order, one line per condition."""
    text: str = yaml.safe_dump(
        dict(document), sort_keys=False, allow_unicode=True, width=_NO_FOLDING
    )
    return text


# -- rules ------------------------------------------------------------------------------------


class _Unsupported(Exception):
    """A construct with no Frontline equivalent; the message completes "rule 'x': ..."."""


def _convert_rule(rule: Any, schema: _Schema) -> tuple[str, list[str]]:
    """The ``when`` of one rule, and notes on what it lost on the way."""
    if not isinstance(rule, Mapping):
        raise _Unsupported(f"a rule must be a JSON object, not {_kind(rule)}")
    unknown = sorted(str(key) for key in set(rule) - _RULE_KEYS)
    if unknown:
        raise _Unsupported(f"unknown rule key {unknown[0]!r}")
    for setting, meaning in _UNSUPPORTED_SETTINGS.items():
        if setting in rule:
            raise _Unsupported(
                f"'{setting}' ({rule[setting]!r}: the rule {meaning}) cannot be converted"
            )
    if ("all" in rule) == ("any" in rule):
        raise _Unsupported("a rule needs exactly one of 'all' and 'any'")
    gate = "all" if "all" in rule else "any"
    when = _patterns(rule[gate], gate, schema)
    notes = []
    if "pri" in rule:
        notes.append(
            f"its priority 'pri' ({rule['pri']!r}) is not converted (the rule is); Frontline "
            "lists eligible rules in document order"
        )
    return when.text, notes


def _patterns(patterns: Any, gate: str, schema: _Schema) -> _Expr:
    """The condition of an ``all`` or ``any`` list of named message patterns."""
    if not isinstance(patterns, list) or not patterns:
        raise _Unsupported(f"'{gate}' must be a non-empty list of patterns")
    if gate == "all" and len(patterns) > 1:
        raise _Unsupported(
            f"sequences of several messages ('all' with {len(patterns)} patterns) "
            "cannot be converted"
        )
    alternatives = []
    for entry in patterns:
        if not isinstance(entry, Mapping) or len(entry) != 1:
            raise _Unsupported(f"each pattern in '{gate}' must be an object with one key")
        ((label, pattern),) = entry.items()
        label = str(label)
        if label.endswith("$not"):
            raise _Unsupported(
                f"the absence of a message ('{label}') needs state across messages "
                "and cannot be converted"
            )
        if label.endswith(("$all", "$any")):
            alternatives.append(_patterns(pattern, label[-3:], schema))
        else:
            alternatives.append(_condition(pattern, schema, item_list=None))
    return _Expr.join("or", alternatives)


# -- conditions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Expr:
    """Expression text and its loosest operator, to parenthesise only where needed."""

    text: str
    op: str = "atom"  # "atom", "and" or "or"

    @staticmethod
    def join(op: str, parts: list[_Expr]) -> _Expr:
        if len(parts) == 1:
            return parts[0]
        texts = [f"({p.text})" if op == "and" and p.op == "or" else p.text for p in parts]
        return _Expr(f" {op} ".join(texts), op)


def _condition(condition: Any, schema: _Schema, item_list: str | None) -> _Expr:
    """Translate one condition; ``item_list`` is the list field inside $iall/$iany."""
    if not isinstance(condition, Mapping):
        raise _Unsupported(f"a condition must be a JSON object, not {_kind(condition)}")
    if len(condition) != 1:
        # durable_rules reads the first key of a condition and silently ignores the others.
        raise _Unsupported(
            f"a condition must have exactly one key, not {len(condition)} "
            f"({', '.join(map(repr, condition))})"
        )
    ((key, value),) = condition.items()
    if key in ("$and", "$or"):
        if not isinstance(value, list) or not value:
            raise _Unsupported(f"'{key}' must hold a non-empty list of conditions")
        return _Expr.join(key[1:], [_condition(part, schema, item_list) for part in value])
    if key in _OPERATORS:
        if not isinstance(value, Mapping) or len(value) != 1:
            raise _Unsupported(f"'{key}' must hold an object with exactly one attribute")
        ((attribute, operand),) = value.items()
        return _operator(key, str(attribute), operand, schema, item_list)
    return _operator("$eq", str(key), value, schema, item_list)


def _operator(
    op: str, attribute: str, operand: Any, schema: _Schema, item_list: str | None
) -> _Expr:
    if op in ("$iall", "$iany"):
        if item_list is not None:
            raise _Unsupported(
                f"'{op}' inside '$iall'/'$iany' (lists of lists) cannot be converted"
            )
        path = _field(attribute)
        body = _condition(operand, schema, item_list=path)
        test = f"({body.text})" if body.op == "or" else body.text
        if op == "$iany":
            return _Expr(f"any({test} for {ITEM} in {path})")
        # durable_rules' $iall is false on an empty list.
        return _Expr(f"len({path}) > 0 and all({test} for {ITEM} in {path})", "and")
    if op in ("$ex", "$nex"):
        if item_list is not None:
            raise _Unsupported(f"'{op}' on list items cannot be converted")
        path = _field(attribute)
        schema.scalar(path, None)
        return _Expr(f"missing({path})" if op == "$nex" else f"not missing({path})")
    subject = _subject(attribute, item_list)
    if op in ("$mt", "$imt"):
        if not isinstance(operand, str):
            raise _Unsupported(f"'{op}' needs a string pattern, not {_kind(operand)}")
        schema.use(subject, item_list, "string")
        regex = _checked_regex(operand, ignore_case=op == "$imt")
        return _Expr(f"matches({subject.text}, {_string(regex)})")
    if operand is None:
        if op == "$neq" and item_list is None:
            # "Present, not null, not a list or object" in durable_rules: for a field that is
            # not a list, Frontline's "not missing".
            schema.scalar(subject.text, None, not_list=True)
            return _Expr(f"not missing({subject.text})")
        raise _Unsupported(
            f"'{op}' with null cannot be converted (Frontline does not tell null from absent)"
        )
    text, kind = _literal(operand)
    if kind == "boolean" and op in _ORDERINGS:
        raise _Unsupported(f"'{op}' orders booleans, which Frontline does not")
    schema.use(subject, item_list, kind)
    return _Expr(f"{subject.text} {_COMPARISONS[op]} {text}")


@dataclass(frozen=True)
class _Subject:
    """What a comparison reads: a field, the item itself, or an attribute of the item."""

    text: str  # "m.amount", "item" or "item.amount"
    attribute: str | None = None  # the item attribute, for object items


def _subject(attribute: str, item_list: str | None) -> _Subject:
    if item_list is None:
        if attribute.startswith("$i"):
            raise _Unsupported(f"'{attribute}' is only meaningful inside '$iall'/'$iany'")
        return _Subject(_field(attribute))
    if attribute == "$i":
        return _Subject(ITEM)
    name = attribute.removeprefix("$i.")
    if name == attribute:
        raise _Unsupported(
            f"inside '$iall'/'$iany' a condition must test '$i' or '$i.<attribute>', "
            f"not {attribute!r}"
        )
    if not _is_name(name):
        raise _Unsupported(
            f"item attribute {name!r} is not a Frontline item attribute "
            "(one identifier; nested item attributes cannot be converted)"
        )
    return _Subject(f"{ITEM}.{name}", name)


def _field(attribute: str) -> str:
    if attribute == "$s":
        raise _Unsupported("session state ('$s') cannot be converted")
    if not all(_is_name(segment) for segment in attribute.split(".")):
        raise _Unsupported(
            f"attribute {attribute!r} is not a Frontline field name (identifiers that are "
            "not keywords or function names, joined by '.')"
        )
    return f"{ROOT}.{attribute}"


def _is_name(segment: str) -> bool:
    return (
        bool(_SEGMENT.match(segment))
        and not segment.startswith("__")
        and segment not in RESERVED_NAMES
        and not keyword.iskeyword(segment)
    )


def _literal(value: Any) -> tuple[str, str]:
    """Frontline text for a JSON literal, and its type."""
    if isinstance(value, bool):
        return ("true" if value else "false"), "boolean"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise _Unsupported(f"the number {value!r} is not finite")
        return repr(value), "number"
    if isinstance(value, str):
        return _string(value), "string"
    if isinstance(value, Mapping):
        # An object on the right is arithmetic or a reference to a message's attribute.
        raise _Unsupported(
            "comparisons with expressions or with other messages' attributes cannot be converted"
        )
    raise _Unsupported(f"comparisons with {_kind(value)} cannot be converted")


def _string(value: str) -> str:
    # JSON string syntax is also a Python string literal with the same value.
    return json.dumps(value, ensure_ascii=False)


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", type(None): "null"}
    return names.get(type(value), type(value).__name__)


# -- inferred field types ---------------------------------------------------------------------


@dataclass
class _Field:
    """What the rules need of one message attribute."""

    kind: str | None  # "number", "string", "boolean" or "list"; None: only tested for presence
    items: dict[str | None, str] = field(default_factory=dict)  # item attribute (None: the item)
    # Tested with '$neq' null, which durable_rules finds false for a list or an object.
    not_list: bool = False


class _Schema:
    """The document's context: each attribute's type, inferred from the literals it meets."""

    def __init__(self) -> None:
        self.fields: dict[str, _Field] = {}

    def use(self, subject: _Subject, item_list: str | None, kind: str) -> None:
        if item_list is None:
            self.scalar(subject.text, kind)
        else:
            self.item(item_list, subject.attribute, kind)

    def scalar(self, path: str, kind: str | None, *, not_list: bool = False) -> None:
        """Record a use of ``path`` as a ``kind`` value, or only its presence (None)."""
        known = self._claim(path, _Field(kind))
        if known.kind == "list" and (kind is not None or not_list):
            raise _Unsupported(f"{path} is used both as a list and as a single value")
        if kind is not None and known.kind not in (None, kind):
            raise _Unsupported(f"{path} is compared with both {known.kind}s and {kind}s")
        known.kind = known.kind or kind
        known.not_list |= not_list

    def item(self, path: str, attribute: str | None, kind: str) -> None:
        known = self._claim(path, _Field("list"))
        if known.kind not in (None, "list") or known.not_list:
            raise _Unsupported(f"{path} is used both as a list and as a single value")
        known.kind = "list"
        if known.items and (attribute is None) != (None in known.items):
            raise _Unsupported(f"the items of {path} are used both as values and as objects")
        previous = known.items.setdefault(attribute, kind)
        if previous != kind:
            what = f"{ITEM}.{attribute}" if attribute else "the items"
            raise _Unsupported(f"{what} of {path} are compared with both {previous}s and {kind}s")

    def _claim(self, path: str, fresh: _Field) -> _Field:
        for other in self.fields:
            if other.startswith(path + ".") or path.startswith(other + "."):
                raise _Unsupported(
                    f"{path} and {other} cannot both be fields (one holds the other)"
                )
        return self.fields.setdefault(path, fresh)

    def context(self) -> dict[str, Any]:
        context: dict[str, Any] = {}
        for path, known in self.fields.items():
            if known.kind != "list":
                context[path] = known.kind or "string"
            elif None in known.items:
                context[path] = {"type": "list", "items": known.items[None]}
            else:
                context[path] = {"type": "list", "items": dict(known.items)}
        return context


# -- ids --------------------------------------------------------------------------------------


def _identifier(name: str, prefix: str) -> str:
    """A Frontline id or ruleset name made from any text: "Approve_Big" → "approve-big"."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not text[:1].isalpha():
        text = f"{prefix}-{text}".rstrip("-")
    return text[:_MAX_ID].rstrip("-")


class _UniqueIds:
    def __init__(self) -> None:
        self.taken: set[str] = set()

    def take(self, name: str) -> str:
        base = candidate = _identifier(name, "rule")
        n = 1
        while candidate in self.taken:
            n += 1
            suffix = f"-{n}"
            candidate = base[: _MAX_ID - len(suffix)].rstrip("-") + suffix
        self.taken.add(candidate)
        return candidate


# -- the whole document -----------------------------------------------------------------------


def _drop_refused(document: dict[str, Any], rule_names: list[str]) -> list[str]:
    """Remove the rules Frontline refuses (too long, too deep); one sentence for each."""
    notes: list[str] = []
    while True:
        try:
            compile_ruleset(document)
        except RulesetError as exc:
            refused = _refused_rules(exc)
            if not refused:
                raise  # a problem outside the rules is a bug in this converter
        else:
            return notes
        for index in sorted(refused, reverse=True):
            notes.append(
                f"rule {rule_names[index]!r}: Frontline refuses the converted condition: "
                f"{refused[index]}"
            )
            del document["eligibility"][index], rule_names[index]


def _refused_rules(error: RulesetError) -> dict[int, str]:
    """Rule index → the first problem, or nothing if some problem lies outside the rules."""
    refused: dict[int, str] = {}
    for problem in error.errors:
        match = re.match(r"eligibility\[(\d+)\]", problem.path)
        if match is None:
            return {}
        refused.setdefault(int(match.group(1)), problem.message)
    return refused


# -- durable_rules' pattern dialect → Python re -----------------------------------------------

# The %-classes of durable_rules (src/rules/regex.c, readEscapedSymbol) as code-point ranges.
# %c is left out on purpose: its table in the C source starts with a NUL byte, so
# durable_rules fails to compile any pattern that uses it.
_CLASSES: dict[str, tuple[tuple[int, int], ...]] = {
    "a": ((0x41, 0x5A), (0x61, 0x7A), (0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0xFF)),
    "d": ((0x30, 0x39),),
    "g": ((0x21, 0x7E),),
    "l": ((0x61, 0x7A), (0xDF, 0xF6), (0xF8, 0xFF)),
    "p": tuple((ord(c), ord(c)) for c in ".,;:?!'\"()\u00a1\u00bf-"),
    "s": ((0x09, 0x0D), (0x20, 0x20)),
    "u": ((0x41, 0x5A), (0xC0, 0xD6), (0xD8, 0xDE)),
    "w": ((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)),
    "x": ((0x30, 0x39), (0x41, 0x46), (0x61, 0x66)),
}
_ESCAPED_LITERALS = frozenset(".|?*+()[]{}%")
_REPEATS = frozenset("?*+")
_INTERVAL = re.compile(r"\{(\d+)(?:(,)(\d*))?\}")
_MAX_INTERVAL = 100  # durable_rules refuses larger upper bounds
_SPECIAL = frozenset(".^$*+?{}[]\\|()")
_SPECIAL_IN_CLASS = frozenset("\\]^-[")


def _checked_regex(pattern: str, *, ignore_case: bool) -> str:
    """The ``matches()`` regex for a durable_rules pattern, if Frontline accepts it."""
    try:
        regex = translate_pattern(pattern, ignore_case=ignore_case)
    except ValueError as exc:
        raise _Unsupported(f"the pattern {pattern!r} cannot be converted: {exc}") from None
    try:
        check_regex(regex)
    except ValueError as exc:
        raise _Unsupported(
            f"the pattern {pattern!r} becomes {regex!r}, which Frontline refuses: {exc}"
        ) from None
    return regex


def translate_pattern(pattern: str, *, ignore_case: bool = False) -> str:
    """The RE2 regex that matches somewhere in a string exactly where durable_rules' ``$mt``
    (``$imt`` with ``ignore_case``) matches ``pattern``.

    Raise ValueError, saying why, for a pattern durable_rules refuses or reads in a way its
    author is unlikely to have meant.
    """
    if not pattern:
        raise ValueError("durable_rules refuses an empty pattern")
    reader = _PatternReader(pattern, fold=ignore_case)
    body, end = reader.sequence(0)
    if end < len(pattern):
        raise ValueError(f"unbalanced ')' at position {end + 1}; durable_rules ignores the rest")
    prefix = "(?s)" if reader.dotted else ""
    wrapped = f"(?:{body.text})" if body.alternation else body.text
    return f"{prefix}\\A{wrapped}\\z"


@dataclass(frozen=True)
class _Regex:
    text: str
    alternation: bool  # a '|' outside any group, so anchors must wrap it in a group


class _PatternReader:
    """Reads a pattern the way durable_rules' tokenizer (readNextToken, readRange) does."""

    def __init__(self, pattern: str, *, fold: bool = False) -> None:
        self.pattern = pattern
        self.fold = fold  # ASCII letters match either case ($imt)
        self.dotted = False  # whether '.' occurs: RE2 then needs (?s) to match newlines

    def sequence(self, at: int) -> tuple[_Regex, int]:
        """Read from ``at`` to an unmatched ')' or the end; return the regex and where."""
        p = self.pattern
        parts: list[str] = []
        alternation = False
        repeatable = False  # a repeat may follow: the last part is a character, class or group
        while at < len(p) and p[at] != ")":
            ch = p[at]
            if ch in _REPEATS or ch == "{":
                if not repeatable:
                    raise ValueError(
                        f"the repeat at position {at + 1} has nothing to repeat or follows "
                        "another repeat"
                    )
                text, at = self._interval(at) if ch == "{" else (ch, at + 1)
                parts.append(text)
                repeatable = False
                continue
            if ch == "|":
                parts.append("|")
                alternation = True
                repeatable = False
                at += 1
                continue
            if ch == "(":
                inner, close = self.sequence(at + 1)
                if close >= len(p):
                    raise ValueError(f"unbalanced '(' at position {at + 1}")
                if not inner.text:
                    raise ValueError("durable_rules refuses an empty group '()'")
                text, at = f"(?:{inner.text})", close + 1
            else:
                text, at = self._atom(at)
            parts.append(text)
            repeatable = True
        return _Regex("".join(parts), alternation), at

    def _atom(self, at: int) -> tuple[str, int]:
        """A character, a '.', a '%' escape or a '[...]' class starting at ``at``."""
        ch = self.pattern[at]
        if ch == ".":
            self.dotted = True
            return ".", at + 1
        if ch == "[":
            members, negate, end = self._class(at)
            return self._set(members, negate), end
        if ch == "%":
            ranges, end = self._escape(at), at + 2
        else:
            ranges, end = ((ord(ch), ord(ch)),), at + 1
        return self._set(ranges, negate=False), end

    def _set(self, ranges: Sequence[tuple[int, int]], negate: bool) -> str:
        """One character of ``ranges`` (none of them if ``negate``), folded if asked."""
        if self.fold:
            ranges = _folded(ranges)
        low, high = ranges[0]
        if len(ranges) == 1 and low == high and not negate:
            return _escape(chr(low), in_class=False)
        return _class_text(ranges, negate)

    def _escape(self, at: int) -> tuple[tuple[int, int], ...]:
        """The ranges ``%x`` at ``at`` stands for: a class, or one escaped character."""
        if at + 1 >= len(self.pattern):
            raise ValueError("the pattern ends with '%'")
        letter = self.pattern[at + 1]
        if letter in _ESCAPED_LITERALS:
            return ((ord(letter), ord(letter)),)
        if letter == "c":
            raise ValueError("durable_rules cannot compile '%c' (its class table is empty)")
        if letter not in _CLASSES:
            raise ValueError(f"'%{letter}' is not a durable_rules escape")
        return _CLASSES[letter]

    def _class(self, at: int) -> tuple[list[tuple[int, int]], bool, int]:
        """Read ``[...]`` as durable_rules' readRange does, quirks included."""
        p = self.pattern
        start = at
        at += 1
        negate = p.startswith("^", at)
        at += negate
        if p.startswith("]", at):
            # readRange takes a leading ']' as the class's only member and ends the class.
            return [(ord("]"), ord("]"))], negate, at + 1
        ranges: list[tuple[int, int]] = []
        in_range = False  # a '-' was read: the next character ends a range
        last = 0  # the last plain character (0 after a %-escape), where a range starts
        while True:
            if at >= len(p):
                raise ValueError(f"unclosed '[' at position {start + 1}")
            ch = p[at]
            if ch == "]":
                break
            if in_range:
                if not last:
                    raise ValueError(f"a range in the class at position {start + 1} has no start")
                # The start stays where it was, so durable_rules reads "[a-c-e]" as a to e.
                if ranges[-1] == (last, last):
                    ranges.pop()
                ranges.append((min(last, ord(ch)), max(last, ord(ch))))
                in_range = False
                at += 1
            elif ch == "-":
                in_range = True
                at += 1
            elif ch == "%":
                ranges.extend(self._escape(at))
                last = 0
                at += 2
            else:
                ranges.append((ord(ch), ord(ch)))
                last = ord(ch)
                at += 1
        if in_range:  # a trailing '-' is a literal
            ranges.append((ord("-"), ord("-")))
        return ranges, negate, at + 1

    def _interval(self, at: int) -> tuple[str, int]:
        match = _INTERVAL.match(self.pattern, at)
        if match is None:
            raise ValueError(f"the repeat at position {at + 1} is not {{n}}, {{n,}} or {{n,m}}")
        low_text, comma, high_text = match.groups()
        if comma and not high_text:
            return match.group(0), match.end()
        high = int(high_text or low_text)
        if high == 0:
            raise ValueError(f"durable_rules reads {match.group(0)!r} as '*' (no upper bound)")
        if high > _MAX_INTERVAL or int(low_text) > high:
            raise ValueError(
                f"durable_rules refuses the repeat {match.group(0)!r} (bounds at most "
                f"{_MAX_INTERVAL}, the lower first)"
            )
        return match.group(0), match.end()


def _class_text(ranges: Sequence[tuple[int, int]], negate: bool) -> str:
    members = "".join(
        _escape(chr(low), in_class=True)
        + ("" if low == high else "-" + _escape(chr(high), in_class=True))
        for low, high in ranges
    )
    return f"[{'^' if negate else ''}{members}]"


def _folded(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """``ranges`` with the other case of every ASCII letter in them added."""
    out = list(ranges)
    for low, high in ranges:
        for first, last, shift in ((0x41, 0x5A, 0x20), (0x61, 0x7A, -0x20)):
            a, b = max(low, first), min(high, last)
            if a <= b and (a + shift, b + shift) not in out:
                out.append((a + shift, b + shift))
    return out


def _escape(ch: str, *, in_class: bool) -> str:
    """``ch`` as a literal in an RE2 regex, outside or inside a class."""
    if not ch.isprintable():
        return f"\\x{{{ord(ch):x}}}"
    return "\\" + ch if ch in (_SPECIAL_IN_CLASS if in_class else _SPECIAL) else ch

"""The shape of a ruleset document, as pydantic models.

This stage checks structure only (keys, value kinds, id syntax); meaning — field types,
expressions, table cells, tree links — is checked by the compiler stages that follow.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from engine.errors import Problem
from engine.source import MAX_LIST, Locator, Path

MAX_RULES = 5_000
MAX_ROWS = MAX_LIST
MAX_TESTS = 1_000

ID_PATTERN = r"^[a-z][a-z0-9-]{0,63}$"
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Text = Annotated[str, StringConstraints(max_length=2_000)]
# A rule's reason code: a short identifier an auditor or a downstream system can count by
# (``TENURE_24M``, ``loyalty.at-risk``). No ``/``: codes derived from a rule's section and id
# (``eligibility/fee-waiver``) have one, so a written code never reads as a derived one.
REASON_CODE_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,47}$"
ReasonCode = Annotated[str, StringConstraints(pattern=REASON_CODE_PATTERN)]
Condition = str | bool

Trigger = Literal["decision", "context_change", "event", "timer"]
TRIGGERS: tuple[Trigger, ...] = ("decision", "context_change", "event", "timer")
# An alert rule's ``on`` when it names none: not ``timer``, which needs an ``every``.
DEFAULT_ON: tuple[Trigger, ...] = ("decision", "context_change", "event")
# An escalation rule's: it routes decisions unless it says it also (or only) runs on others.
ESCALATION_ON: tuple[Trigger, ...] = ("decision",)
MIN_EVERY_SECONDS = 1.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class FieldSpec(_Strict):
    type: Literal["string", "integer", "number", "boolean", "datetime", "list"]
    enum: list[str] | None = Field(default=None, max_length=1_000)
    max_age: str | None = None
    classification: Literal["public", "internal", "pii"] = "internal"
    items: str | dict[str, str] | None = None
    description: Text | None = None


class EligibilityRule(_Strict):
    id: Id
    when: Condition
    offer: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    params: dict[str, Any] | None = None
    because: Text | None = None
    reason_code: ReasonCode | None = None


class EscalationRule(_Strict):
    id: Id
    when: Condition
    queue: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    priority: int
    because: Text | None = None
    reason_code: ReasonCode | None = None
    on: list[Trigger] = Field(default_factory=lambda: list(ESCALATION_ON), min_length=1)
    every: str | None = None  # with on: [timer], how often each live interaction is evaluated


SEVERITIES = ("info", "warning", "critical")  # least to most severe


class AlertRule(_Strict):
    id: Id
    when: Condition
    severity: Literal["info", "warning", "critical"]
    message: Text
    on: list[Trigger] = Field(default_factory=lambda: list(DEFAULT_ON), min_length=1)
    every: str | None = None  # with on: [timer], how often each live interaction is evaluated
    topic: Id | None = None  # alerts of one topic in an interaction: the most severe is shown
    require_ack: bool = False  # not acknowledged within ack_within: re-raised to a supervisor
    ack_within: str | None = None
    reason_code: ReasonCode | None = None


class ContactPolicy(_Strict):
    """What reaches an agent in one interaction."""

    max_alerts: Annotated[int, Field(ge=1, le=10_000)] | None = None
    per: str | None = None  # the window max_alerts counts in
    quiet_after_dismiss: str | None = None  # no alerts for this long after a dismissal
    supervisor: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:@-]{1,128}$")] | None = (
        None  # whose stream unacknowledged require_ack alerts are re-raised to
    )


class TableOutput(_Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,63}$")]
    values: list[Any] | None = None


OutputName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,63}$")]


class Table(_Strict):
    id: Id
    hit: Literal["unique", "any", "first", "priority", "collect", "rule_order", "output_order"]
    inputs: list[str] = Field(min_length=1, max_length=64)
    outputs: list[OutputName | TableOutput] = Field(min_length=1, max_length=64)
    rows: list[list[Any]] = Field(min_length=1, max_length=MAX_ROWS)
    aggregate: Literal["sum", "min", "max", "count"] | None = None
    # The rows are meant to cover every known input: the analysis reports the gaps.
    complete: bool = False
    description: Text | None = None


class Branch(_Strict):
    when: Condition | None = None
    goto: Id


class TreeNode(_Strict):
    ask: Text | None = None
    answer: str | None = None
    next: list[Branch] | None = None
    outcome: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    say: Text | None = None
    queue: str | None = None


class Tree(_Strict):
    id: Id
    start: Id
    nodes: dict[Id, TreeNode] = Field(min_length=1, max_length=MAX_RULES)
    description: Text | None = None


class Expectation(_Strict):
    eligible: list[str] | None = None
    escalation: str | None = None
    alerts: list[str] | None = None
    tables: dict[str, dict[str, Any] | None] | None = None
    next_step: dict[str, Any] | None = None
    missing_fields: list[str] | None = None
    stale_fields: list[str] | None = None
    invalid_fields: list[str] | None = None
    # The errors the decision is expected to carry, each matching one by the id it names (a
    # table's, a tree's or a rule's) or by a part of its text; a decision that carries an
    # error no entry matches fails its test.
    errors: list[str] | None = None


class TestCase(_Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    context: dict[str, Any] = Field(default_factory=dict)
    answers: dict[str, Any] | None = None
    now: str | None = None
    as_of: dict[str, str] | None = None
    counters: dict[str, dict[str, int]] | None = None
    tree: str | None = None
    trigger: Trigger = "decision"
    expect: Expectation


class Document(_Strict):
    ruleset: Annotated[str, StringConstraints(pattern=ID_PATTERN)]
    description: Annotated[str, StringConstraints(max_length=10_000)] | None = None
    context: dict[str, str | FieldSpec] = Field(max_length=MAX_RULES)
    eligibility: list[EligibilityRule] = Field(default_factory=list, max_length=MAX_RULES)
    escalation: list[EscalationRule] = Field(default_factory=list, max_length=MAX_RULES)
    alerts: list[AlertRule] = Field(default_factory=list, max_length=MAX_RULES)
    tables: list[Table] = Field(default_factory=list, max_length=MAX_RULES)
    trees: list[Tree] = Field(default_factory=list, max_length=MAX_RULES)
    policy: ContactPolicy | None = None
    tests: list[TestCase] = Field(default_factory=list, max_length=MAX_TESTS)


def parse_document(data: Any, locator: Locator) -> tuple[Document | None, list[Problem]]:
    """Validate the document's shape; return it, or the problems found."""
    if not isinstance(data, dict):
        return None, [
            locator.problem(
                (), "a ruleset document must be a mapping with 'ruleset' and 'context' keys"
            )
        ]
    try:
        return Document.model_validate(data), []
    except ValidationError as exc:
        problems = [_problem(err, data, locator) for err in exc.errors()]
        return None, _dedupe(problems)


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str]] = set()
    out = []
    for p in problems:
        if (p.path, p.message) not in seen:
            seen.add((p.path, p.message))
            out.append(p)
    return out


def _real_path(loc: tuple[Any, ...], data: Any) -> Path:
    """Keep the part of pydantic's ``loc`` that indexes into the data (drop union-member names)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if (isinstance(node, dict) and part in node) or in_list:
            path.append(part)
            node = node[part]
    return tuple(path)


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


_MODEL_AT: list[tuple[re.Pattern[str], type[BaseModel]]] = [
    (re.compile(r"^eligibility\.\d+$"), EligibilityRule),
    (re.compile(r"^escalation\.\d+$"), EscalationRule),
    (re.compile(r"^alerts\.\d+$"), AlertRule),
    (re.compile(r"^tables\.\d+$"), Table),
    (re.compile(r"^trees\.\d+$"), Tree),
    (re.compile(r"^trees\.\d+\.nodes\.[^.]+$"), TreeNode),
    (re.compile(r"^tests\.\d+$"), TestCase),
    (re.compile(r"^tests\.\d+\.expect$"), Expectation),
    (re.compile(r"^context\.[^.]+$"), FieldSpec),
    (re.compile(r"^$"), Document),
]


def _model_at(path: Path) -> type[BaseModel] | None:
    key = ".".join(str(p) for p in path)
    # Context keys contain dots themselves: match them by shape first.
    if len(path) == 2 and path[0] == "context":
        return FieldSpec
    for pattern, model in _MODEL_AT:
        if pattern.match(key):
            return model
    return None


def _problem(err: Any, data: Any, locator: Locator) -> Problem:
    loc: tuple[Any, ...] = tuple(err["loc"])
    kind: str = err["type"]
    path = _real_path(loc, data)
    if kind == "extra_forbidden":
        key = str(loc[-1])
        parent = path[:-1] if path and path[-1] == loc[-1] else path
        model = _model_at(parent)
        hint = ""
        if model is not None:
            close = difflib.get_close_matches(key, _allowed_keys(model), n=1)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else ("; expected one of " + ", ".join(repr(k) for k in _allowed_keys(model)))
            )
        return locator.problem(
            (*parent, key, "<key>") if parent == path[:-1] else path, f"unknown key {key!r}{hint}"
        )
    if kind == "missing":
        return locator.problem(path, f"missing required key {loc[-1]!r}")
    if kind == "string_pattern_mismatch":
        value = _value_at(data, path)
        if path and path[-1] == "reason_code":
            return locator.problem(
                path,
                f"invalid reason code {value!r}: expected a short identifier of letters, "
                "digits, '_', '.' and '-', starting with a letter (at most 48)",
            )
        what = "ruleset name" if path == ("ruleset",) else "id"
        return locator.problem(
            path,
            f"invalid {what} {value!r}: expected lowercase letters, "
            "digits and '-', starting with a letter (at most 64)",
        )
    if kind == "literal_error":
        return locator.problem(
            path, f"{_value_at(data, path)!r} is not allowed; expected {err['ctx']['expected']}"
        )
    if kind in ("too_long", "too_short"):
        return locator.problem(path, str(err["msg"]).replace("List", "list"))
    where = format_kind(err)
    return locator.problem(path, where)


def format_kind(err: Any) -> str:
    msg = str(err["msg"])
    replacements = {
        "Input should be a valid string": "expected text",
        "Input should be a valid integer": "expected a whole number",
        "Input should be a valid boolean": "expected true or false",
        "Input should be a valid list": "expected a list",
        "Input should be a valid dictionary": "expected a mapping",
        "Input should be a valid dictionary or instance of": "expected a mapping",
    }
    for prefix, text in replacements.items():
        if msg.startswith(prefix):
            return text
    return msg


def _value_at(data: Any, path: Path) -> Any:
    node = data
    for part in path:
        node = node[part]
    return node

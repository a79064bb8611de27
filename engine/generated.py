"""The contract between generated code and the code around it.

The compiler writes Python functions; ``CompiledRuleset`` calls them and ``Decision`` reads
what they return. Both sides name what they share from here, so that neither depends on the
other's spelling by convention:

    the raw tuple   what a decide function returns, position by position (``RAW_*``)
    the values      inside generated code, the tuple of every slot's value is ``V`` and a
                    slot's own value is the local ``slot_name(i)``
    function names  the functions of the generated module that the compiler looks up
    the entry point its parameters (``CompiledRuleset.evaluate``'s) and the names it calls
                    that are bound per ruleset
"""

from __future__ import annotations

# -- the raw tuple ------------------------------------------------------------------------------
# ``(values, eligible, alerts, escalation, invalid, *table_matches)``: flat, as one tuple costs
# less than two.
RAW_VALUES = 0  # the values tuple ``V``, one item per slot
RAW_ELIGIBLE = 1  # the eligible rules' ids, in document order
RAW_ALERTS = 2  # the indices of the alert rules that hold, in document order
RAW_ESCALATION = 3  # the index of the escalation rule that won, or -1
RAW_INVALID = 4  # the invalid inputs: (path, what was expected, the value) each
RAW_MATCHES = 5  # from here on, each table's matches, one item per table, in table order


def raw_tuple(
    values: str, eligible: str, alerts: str, escalation: str, invalid: str, matches: list[str]
) -> str:
    """The source of a raw tuple built from the generated locals given, in contract order."""
    items = [""] * RAW_MATCHES
    items[RAW_VALUES] = values
    items[RAW_ELIGIBLE] = eligible
    items[RAW_ALERTS] = alerts
    items[RAW_ESCALATION] = escalation
    items[RAW_INVALID] = invalid
    return ", ".join([*items, *matches])


# -- values inside generated code ---------------------------------------------------------------
VALUES = "V"


def slot_name(index: int) -> str:
    """The local a generated function binds slot ``index``'s value to."""
    return f"s{index}"


# -- the generated module's functions -----------------------------------------------------------
# A decide function per trigger: ``(ctx, ans, cnt, now_)``, with ``tr`` (a list the rules'
# results are appended to) for the trace variant.
DECIDE_PARAMS = "ctx, ans, cnt, now_"
TABLE_OUTPUTS = "_tables"  # decision → {table id: outputs}
PLAIN_ENTRY = "_evaluate_plain"  # ``evaluate`` itself, for a ruleset without trees


def decide_name(trigger: str, *, trace: bool = False) -> str:
    return f"_decide_{trigger}_trace" if trace else f"_decide_{trigger}"


def message_name(k: int) -> str:
    """Alert rule ``k``'s message; its parts' values are ``parts_name`` of it."""
    return f"_message{k}"


def parts_name(template: str) -> str:
    """The function giving a template's ``{...}`` values, for callers that mask some."""
    return f"{template}_parts"


# -- the plain entry point ----------------------------------------------------------------------
TRIGGER_DECISION = "decision"
# The parameters of ``CompiledRuleset.evaluate``, as the generated entry point spells them.
ENTRY_PARAMS = (
    "context=None, answers=None, now=None, counters=None, trace=False,"
    f" *, as_of=None, tree=None, trigger={TRIGGER_DECISION!r}"
)
# Bound per ruleset (``with_globals``): the full evaluation the entry point hands every other
# call to, what maps an arithmetic failure to ``EvaluationError``, and the ruleset's own
# ``Decision`` subclass.
ENTRY_EVALUATE = "_evaluate"
ENTRY_FAILED = "_failed"
ENTRY_DECISION = "_D"

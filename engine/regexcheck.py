"""Refuse regular expressions that could backtrack catastrophically or are otherwise unbounded.

Python's ``re`` backtracks, so a pattern such as ``(a+)+$`` can take exponential time on a
hostile input. We parse the pattern with ``re``'s own parser and refuse the shapes that cause
it: a repetition nested inside another repetition, alternation inside a repetition, and
back-references. Together
with the length and repeat-count limits this keeps every match polynomial in the input.
"""

from __future__ import annotations

import re

# re's own parser (Python ≥ 3.11), so the shapes we check are exactly what re will run.
from re import _constants as _c  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]
from typing import Any

MAX_PATTERN_LENGTH = 200
MAX_REPEAT = 1_000

_REPEATS = {_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", _c.MAX_REPEAT)}
_BACKREFS = {_c.GROUPREF, getattr(_c, "GROUPREF_EXISTS", _c.GROUPREF)}


def check_regex(pattern: str) -> re.Pattern[str]:
    """Compile ``pattern`` if it is safe; raise ValueError saying why it is not."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"pattern is {len(pattern)} characters; the limit is {MAX_PATTERN_LENGTH}")
    try:
        parsed = _parser.parse(pattern)
        compiled = re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ValueError(str(exc)) from None
    _walk(parsed, inside_repeat=False)
    return compiled


def _walk(items: Any, inside_repeat: bool) -> None:
    for op, arg in items:
        if op in _BACKREFS:
            raise ValueError("back-references are not allowed")
        if op in _REPEATS:
            low, high, body = arg
            unbounded = high == _c.MAXREPEAT
            if (not unbounded and high > MAX_REPEAT) or low > MAX_REPEAT:
                raise ValueError(f"repetition counts above {MAX_REPEAT} are not allowed")
            if inside_repeat and (unbounded or high > 1):
                raise ValueError(
                    "a repetition inside another repetition can take exponential "
                    "time; rewrite it without nesting"
                )
            _walk(body, inside_repeat or unbounded or high > 1)
        elif op is _c.SUBPATTERN:
            _walk(arg[-1], inside_repeat)
        elif op is _c.BRANCH:
            if inside_repeat:
                # re's parser already turns single-character alternatives into a class; what
                # is left can overlap, as in (a|aa)*, and overlap backtracks exponentially.
                raise ValueError(
                    "alternation inside a repetition can take exponential time; "
                    "use a character class or rewrite it"
                )
            for branch in arg[1]:
                _walk(branch, inside_repeat)
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            _walk(arg[1], inside_repeat)
        elif op is getattr(_c, "ATOMIC_GROUP", None):
            _walk(arg, inside_repeat)

"""Regular expressions for ``matches()``, run by RE2 so that no value can make one slow.

Python's ``re`` backtracks: ``(a?){27}a{27}`` on 27 characters, or ``\\s+$`` on 30 KB of
spaces, takes seconds, and holds the interpreter while it does. RE2 compiles a pattern to an
automaton and matches in time linear in the value, whatever the pattern. The price is its
syntax: no back-references and no look-around, which are refused at deploy with RE2's reason.

A value longer than ``MAX_VALUE_LENGTH`` characters is not matched: ``matches()`` of it is
unknown, as any other operation that cannot give an answer.
"""

from __future__ import annotations

from collections.abc import Callable

import re2  # type: ignore[import-untyped]

# The binding under re2.compile: its Python wrapper spends ~8 µs a call turning positions
# between characters and bytes, which matches() does not need (it only asks "is there one").
from re2 import _re2

MAX_PATTERN_LENGTH = 200
MAX_VALUE_LENGTH = 10_000
_MAX_PROGRAM_BYTES = 1 << 20

_UNANCHORED = _re2.RE2.Anchor.UNANCHORED


def _options() -> re2.Options:
    options = re2.Options()
    options.never_capture = True  # groups only group: nothing reads what they captured
    options.log_errors = False  # errors are raised and explained, not printed
    options.max_mem = _MAX_PROGRAM_BYTES
    return options


_OPTIONS = _options()


def _compile(pattern: str) -> _re2.RE2:
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"pattern is {len(pattern)} characters; the limit is {MAX_PATTERN_LENGTH}")
    compiled = _re2.RE2(pattern.encode("utf-8"), _OPTIONS)
    if not compiled.ok():
        reason = compiled.error()
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        if "perl operator" in reason or "escape sequence" in reason:
            reason += " (matches() takes RE2 syntax, which has no look-around or back-references)"
        raise ValueError(reason)
    return compiled


def check_regex(pattern: str) -> None:
    """Raise ValueError, saying why, if ``pattern`` is not one ``matches()`` can run."""
    _compile(pattern)


def regex_matcher(pattern: str) -> Callable[[str], bool | None]:
    """A function telling whether ``pattern`` matches anywhere in a string (``re.search``'s
    question); unknown (None) for a string longer than ``MAX_VALUE_LENGTH``."""
    match = _compile(pattern).Match

    def found(text: str) -> bool | None:
        if len(text) > MAX_VALUE_LENGTH:
            return None
        data = text.encode("utf-8")
        start: int = match(_UNANCHORED, data, 0, len(data))[0][0]
        return start >= 0

    return found

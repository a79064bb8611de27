"""Helpers that generated code calls, and the conversions of input values.

Everything here is a pure function of its arguments.
"""

from __future__ import annotations

import bisect
import json
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from engine.times import format_time, parse_time


def _and3(*values: bool | None) -> bool | None:
    """Three-valued ``and``: false wins, then unknown."""
    unknown = False
    for v in values:
        if v is False:
            return False
        if v is None:
            unknown = True
    return None if unknown else True


def _or3(*values: bool | None) -> bool | None:
    """Three-valued ``or``: true wins, then unknown."""
    unknown = False
    for v in values:
        if v is True:
            return True
        if v is None:
            unknown = True
    return None if unknown else False


def _any3(results: Iterable[bool | None]) -> bool | None:
    return _or3(*results)


def _all3(results: Iterable[bool | None]) -> bool | None:
    return _and3(*results)


def _min_list(values: list[Any] | None) -> Any:
    """The least of a list of numbers; unknown when it is empty or holds an unknown (a null
    output of a collect table, for one)."""
    return min(values) if values and None not in values else None


def _max_list(values: list[Any] | None) -> Any:
    """The greatest of a list of numbers; unknown when it is empty or holds an unknown."""
    return max(values) if values and None not in values else None


def _finite(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``op`` over numbers, unknown (None) where its result is not a finite number.

    Floats overflow to ``inf`` (and ``inf - inf`` is NaN) without an error, and an int beyond
    the float range raises OverflowError when it meets a float or is divided: JSON can carry
    neither result, so the expression is unknown, as a division by zero is. Generated code
    calls these only where a float can come out; arithmetic on integers is exact.
    """

    def checked(a: Any, b: Any) -> Any:
        try:
            result = op(a, b)
        except OverflowError:
            return None
        return result if result - result == 0 else None  # inf - inf and NaN - NaN are NaN

    return checked


def power(a: Any, b: Any) -> Any:
    """``a ** b``, computed in floats (so ``10 ** 5`` is 100000.0): unknown (None) where it is
    not a finite real number: beyond the float range, ``0 ** -1``, or a negative number to a
    fractional power (Python would give a complex number). Floats, so that no exponent can
    make an integer that takes long to compute (``2 ** 10**9``)."""
    try:
        result = float(a) ** float(b)
    except (OverflowError, ZeroDivisionError):
        return None
    if result.__class__ is not float:
        return None
    return result if result - result == 0 else None


def finite_sum(values: list[Any]) -> Any:
    """The sum of a column of numbers, None (unknown) if it is not a finite number."""
    try:
        total = sum(values)
    except OverflowError:
        return None
    return total if total - total == 0 else None


# -- reading input values ---------------------------------------------------------------------


def accepts(kind: str) -> Callable[[Any], bool]:
    """A predicate: does a JSON value have the declared scalar ``kind``?"""
    if kind == "string":
        return lambda v: v.__class__ is str
    if kind == "integer":
        return lambda v: v.__class__ is int
    if kind == "number":
        return lambda v: v.__class__ is int or (v.__class__ is float and math.isfinite(v))
    if kind == "boolean":
        return lambda v: v.__class__ is bool
    if kind == "list":
        return lambda v: v.__class__ is list
    raise ValueError(kind)  # pragma: no cover


def attr_getter(attr: str, kind: str) -> Callable[[Any], Any]:
    """Read an attribute of a list item (an object), unknown if absent or of the wrong type."""
    if kind == "datetime":

        def get_datetime(item: Any) -> Any:
            v = item.get(attr) if item.__class__ is dict else None
            return None if v is None else parse_time(v)

        return get_datetime
    ok = accepts(kind)

    def get(item: Any) -> Any:
        v = item.get(attr) if item.__class__ is dict else None
        return v if v is not None and ok(v) else None

    return get


ItemFilter = Callable[[list[Any]], tuple[list[Any], bool]]


def item_filter(item_kind: str | None, attrs: tuple[tuple[str, str], ...] = ()) -> ItemFilter:
    """Check a list's items against the declared ``items``; say whether any did not match.

    Scalars of another type, and non-objects where objects are declared, are left out. An
    object keeps its place even when an attribute has the wrong type: that attribute reads as
    unknown (see ``attr_getter``).
    """
    if item_kind is None:
        return lambda items: (items, False)
    if item_kind == "object":
        checks = [(name, accepts(kind)) for name, kind in attrs if kind != "datetime"]
        dated = [name for name, kind in attrs if kind == "datetime"]

        def objects(items: list[Any]) -> tuple[list[Any], bool]:
            kept = [i for i in items if i.__class__ is dict]
            bad = len(kept) != len(items)
            for item in kept:
                for name, ok in checks:
                    v = item.get(name)
                    bad = bad or (v is not None and not ok(v))
                for name in dated:
                    v = item.get(name)
                    bad = bad or (v is not None and parse_time(v) is None)
            return kept, bad

        return objects
    if item_kind == "datetime":

        def datetimes(items: list[Any]) -> tuple[list[Any], bool]:
            converted = [parse_time(i) for i in items]
            kept = [c for c in converted if c is not None]
            return kept, len(kept) != len(items)

        return datetimes
    ok = accepts(item_kind)

    def scalars(items: list[Any]) -> tuple[list[Any], bool]:
        for i in items:
            if not ok(i):
                break
        else:
            return items, False
        kept = [i for i in items if ok(i)]
        return kept, True

    return scalars


ITEMS_DROPPED = object()


def describe_value(value: Any) -> str:
    """What a wrong-typed value is, for ``invalid_fields``."""
    if value is ITEMS_DROPPED:
        return "list with items that do not match its declared items"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number" if math.isfinite(value) else "non-finite number"
    if isinstance(value, str):
        return f"string {value[:40]!r}"
    if isinstance(value, list):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def read_object(
    value: Any, invalid: tuple[Any, ...], path: str
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """An object that is not a JSON object reads as empty; a present one is reported invalid.

    Returns the invalid fields so far (a tuple: generated code adds to it by replacing it)
    and the object to read from.
    """
    if value is not None:
        invalid = (*invalid, (path, "object", value))
    return invalid, {}


def read_counter(counters: Mapping[str, Any] | None, event_type: str, within: str) -> int:
    """A count from the snapshot; absent or malformed entries count as 0."""
    if not counters:
        return 0
    windows = counters.get(event_type)
    if windows.__class__ is not dict:
        return 0
    value = windows.get(within, 0)
    return value if value.__class__ is int and value >= 0 else 0


# -- templates --------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    """How a value prints in a ``message:`` or ``say:`` template."""
    if value is None:
        return "?"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value.__class__ is str:
        return str(value)
    if value.__class__ is float:
        # Agents read these: 5.0 prints as 5, as JavaScript's JSON.stringify would print it.
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return format_float(value)
    if value.__class__ is int:
        try:
            return str(value)
        except ValueError:  # more digits than Python will print
            return "?"
    if isinstance(value, datetime):
        return format_time(value, "auto")
    return json.dumps(value, default=str, ensure_ascii=False)


def format_float(value: float) -> str:
    """A finite float as JavaScript prints a number (ECMA-262, Number::toString).

    The digits are the shortest that read back as the same float (Python's ``repr`` finds
    the same ones); JavaScript writes them out in full from 1e-6 up to 1e21 and with an
    exponent beyond: 1e16 → ``10000000000000000``, 1e-7 → ``1e-7``, 1e21 → ``1e+21``.
    """
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    # The decimal point sits after ``point`` digits: value = 0.<digits> * 10**point.
    point = len(whole) + int(exponent or 0) - (len(whole + fraction) - len(digits))
    digits = digits.rstrip("0")
    if len(digits) <= point <= 21:
        return sign + digits + "0" * (point - len(digits))
    if 0 < point <= 21:
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * -point + digits
    power = f"e{'+' if point > 0 else '-'}{abs(point - 1)}"
    return sign + digits[0] + ("." + digits[1:] if len(digits) > 1 else "") + power


HELPERS: dict[str, Any] = {
    "_and3": _and3,
    "_or3": _or3,
    "_any3": _any3,
    "_all3": _all3,
    "_min_list": _min_list,
    "_max_list": _max_list,
    "_add": _finite(operator.add),
    "_sub": _finite(operator.sub),
    "_mul": _finite(operator.mul),
    "_div": _finite(operator.truediv),
    "_mod": _finite(operator.mod),
    "_fmt": format_value,
    "_dt": parse_time,
    "_count": read_counter,
    "_bisect": bisect.bisect_left,
    "_bisect_right": bisect.bisect_right,
    "_object": read_object,
    "_ITEMS": ITEMS_DROPPED,
    "_dict": dict,
    "_list": list,
    "_str": str,
    "_int": int,
    "_float": float,
    "_bool": bool,
    # A decision of the ruleset's own class, built without calling __init__.
    "_new": object.__new__,
}

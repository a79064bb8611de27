"""Times as Frontline writes and reads them, for the whole project: RFC 3339, in UTC, with a
``Z``. The engine, the ledger, the adapters and the server all format and parse through here.

    format_time(when)                   2026-11-22T10:00:00.000Z      decisions, context ages
    format_time(when, "microseconds")   2026-11-22T10:00:00.000000Z   the ledger and its filters
    format_time(when, "auto")           2026-11-22T10:00:00Z          values in messages
    parse_time(value)                   an aware datetime, or None when it is not RFC 3339
    read_time(text)                     a time Frontline wrote itself (ValueError if it is not)
    time_or_age(text, now)              RFC 3339, or an age (7d) counted back from now; or None

Nothing here reads a clock: callers pass the time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from engine.durations import parse_duration

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$"
)


def format_time(when: datetime, timespec: str = "milliseconds") -> str:
    """``when`` in UTC as RFC 3339 ending in ``Z``, to ``timespec`` (as ``isoformat`` takes
    it). A datetime without a zone is taken as local time, as ``astimezone`` does."""
    if when.tzinfo is not UTC:
        when = when.astimezone(UTC)
    if timespec == "milliseconds":  # most records' times: formatted directly, twice as fast
        return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031 -- 0.53 µs, f-string 0.94
            when.year,
            when.month,
            when.day,
            when.hour,
            when.minute,
            when.second,
            when.microsecond // 1000,
        )
    return when.replace(tzinfo=None).isoformat(timespec=timespec) + "Z"


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 string (with its offset) or a datetime → an aware datetime; else None.

    A datetime object without a zone, from Python callers, is taken as UTC; a string without
    an offset is not RFC 3339 and is refused.
    """
    if value.__class__ is datetime and value.tzinfo is not None:
        return value
    if value.__class__ is str:
        if _RFC3339.match(value) is None:
            return None
        try:
            return datetime.fromisoformat(value.upper())
        except ValueError:  # the shape is right but the date is not (February 30th)
            return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC)
    return None


def read_time(text: str) -> datetime:
    """A time Frontline wrote itself (``format_time``) → an aware datetime; ValueError if
    ``text`` is not one."""
    when = parse_time(text)
    if when is None:
        raise ValueError(f"{text!r} is not an RFC 3339 time")
    return when


def time_or_age(text: str, now: datetime) -> datetime | None:
    """An RFC 3339 time, or an age such as ``7d`` or ``12h`` counted back from ``now``; None
    when ``text`` is neither (what a ``--since`` or a ``since`` filter takes)."""
    when = parse_time(text)
    if when is not None:
        return when
    try:
        return now - parse_duration(text)
    except ValueError:
        return None

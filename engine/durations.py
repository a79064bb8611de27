"""Durations as authors write them: ``90s``, ``24h``, ``7d``."""

from __future__ import annotations

import functools
import re
from datetime import timedelta

_DURATION = re.compile(r"^([0-9]{1,9}(?:\.[0-9]{1,6})?)(ms|s|m|h|d|w)$")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``"7d"`` → ``timedelta(days=7)``; ValueError with a plain message otherwise."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"invalid duration {text!r}: expected a number followed by ms, s, m, "
            "h, d or w, such as 24h or 7d"
        )
    seconds = float(match.group(1)) * _SECONDS[match.group(2)]
    if seconds <= 0 or seconds > 100 * 365 * 86400:
        raise ValueError(f"duration {text!r} is out of range (more than 0, at most 100 years)")
    return timedelta(seconds=seconds)


@functools.lru_cache(maxsize=256)
def duration_ms(text: str) -> int:
    """``parse_duration`` in whole milliseconds, remembered: the windows a ruleset counts in
    are few and read on every event."""
    return int(parse_duration(text).total_seconds() * 1000)

"""What a decision reads besides its request: the cached context with the request's overrides
on top, each field's source and time; and the checks on what a request may carry."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from adapters.ports import CustomerContext, Interaction
from engine import CompiledRuleset
from engine.times import parse_time
from server.service.errors import Invalid

MAX_NESTING = 32


def too_deep(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether ``value`` nests objects and arrays more than ``limit`` levels deep."""
    level = [value]
    for _ in range(limit + 1):
        below: list[Any] = []
        for item in level:
            if item.__class__ is dict:
                below.extend(v for v in item.values() if v.__class__ in (dict, list))
            elif item.__class__ is list:
                below.extend(v for v in item if v.__class__ in (dict, list))
        if not below:
            return False
        level = below
    return True


def check_nesting(name: str, value: Any) -> None:
    if value is not None and too_deep(value, MAX_NESTING - 1):
        raise Invalid(f"{name} nests deeper than {MAX_NESTING} levels")


def merge_over(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged on top (objects merge, other values replace)."""
    out = dict(base)
    for key, value in overrides.items():
        current = out.get(key)
        if value.__class__ is dict and current.__class__ is dict:
            out[key] = merge_over(current, value)
        else:
            out[key] = value
    return out


def override_paths(overrides: Mapping[str, Any], prefix: str = "") -> list[str]:
    paths: list[str] = []
    for key, value in overrides.items():
        path = prefix + key
        if value.__class__ is dict and value:
            paths.extend(override_paths(value, path + "."))
        else:
            paths.append(path)
    return paths


# Times Frontline computes with (windows, ages, expiries) stay well inside what a datetime
# holds; outside these years a time can only be a mistake.
EARLIEST, LATEST = 1970, 9000


def rfc3339(name: str, value: str, *, bounded: bool = True) -> datetime:
    """``value`` as a time, or Invalid naming the field; ``bounded``: one Frontline will
    compute with, from ``EARLIEST`` to ``LATEST`` (a filter need not be)."""
    when = parse_time(value)
    if when is None:
        raise Invalid(f"{name} {value!r} is not an RFC 3339 time")
    if bounded and not EARLIEST <= when.year < LATEST:
        raise Invalid(f"{name} {value!r} is out of range: give a time from {EARLIEST} to {LATEST}")
    return when


class Context(NamedTuple):
    values: dict[str, Any]
    sources: dict[str, str]
    as_of: dict[str, Any]
    degraded: bool  # served from a fallback while the context store was unreachable


def context_view(
    cached: CustomerContext | None, overrides: dict[str, Any] | None, now: datetime
) -> Context:
    """``cached`` with ``overrides`` on top; per-field sources and times (``now`` for the
    overrides, which the request itself says)."""
    if cached is None:
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        as_of: dict[str, Any] = {}
    else:
        values, sources = cached.values, dict(cached.sources)
        as_of = {path: _parsed(when) for path, when in cached.as_of.items()}
    if overrides:
        values = merge_over(values, overrides)
        for path in override_paths(overrides):
            sources[path] = "request"
            as_of[path] = now
    return Context(values, sources, as_of, cached is not None and cached.degraded)


_PARSED: dict[str, datetime | None] = {}


def _parsed(when: str) -> datetime | None:
    """An ``as_of`` string as a datetime; the few distinct values are parsed once each."""
    found = _PARSED.get(when)
    if found is None:
        if len(_PARSED) > 10_000:
            _PARSED.clear()
        found = _PARSED[when] = parse_time(when)
    return found


STARTED_AT = "interaction.started_at"


def interaction_overrides(
    interaction: Interaction, compiled: CompiledRuleset, request: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The overrides an evaluation within ``interaction`` sees: ``request``'s (or those the
    interaction started with), and the interaction's start as ``interaction.started_at`` when
    the ruleset declares that field (rules on handle time) and nothing else sets it."""
    overrides = request if request is not None else interaction.context
    if STARTED_AT not in compiled.fields:
        return overrides
    given = (overrides or {}).get("interaction")
    if isinstance(given, dict) and "started_at" in given:
        return overrides
    return merge_over(overrides or {}, {"interaction": {"started_at": interaction.started_at}})

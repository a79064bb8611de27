"""Masking classified values before they reach the ledger.

A ruleset declares each context field's ``classification`` (``public``, ``internal`` or
``pii``). Values of a masked classification are stored as a keyed hash,

    hmac-sha256:<hex of HMAC-SHA256(key, canonical JSON of the value)>

so an auditor can still find every decision about the same e-mail address (equal values give
equal masks, and a query can mask the value it looks for with the same key) while the ledger,
its exports and its backups never hold the value itself. Without the key a mask cannot be
checked against guesses, which a plain hash of a low-entropy value (a phone number) could.

By default ``pii`` is masked and everything else is stored in clear; a deployment that must
keep ``pii`` in clear says so per classification (``clear={"pii"}``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any

import msgspec

PREFIX = "hmac-sha256:"
CLASSIFICATIONS = ("public", "internal", "pii")
MASKED_BY_DEFAULT = frozenset({"pii"})
_CANONICAL = msgspec.json.Encoder(order="sorted")
_SCALARS = frozenset({str, int, float, bool})
_RECENT = 10_000  # masks remembered, at most


class Masker:
    """Masks the values of the classifications it is set to mask, with one secret key."""

    def __init__(self, key: bytes, *, clear: Iterable[str] = ()) -> None:
        if len(key) < 16:
            raise ValueError("the masking key must be at least 16 bytes")
        clear = frozenset(clear)
        unknown = clear - set(CLASSIFICATIONS)
        if unknown:
            raise ValueError(
                f"unknown classification {sorted(unknown)[0]!r}; expected one of "
                + ", ".join(CLASSIFICATIONS)
            )
        self._key = key
        self.masked = MASKED_BY_DEFAULT - clear
        # Recent masks of scalar values: a customer's values recur from one decision to the
        # next, and an HMAC costs more than the rest of masking them.
        self._recent: dict[tuple[type, Any], str] = {}

    def masks(self, classification: str) -> bool:
        """Whether values of this classification are stored masked."""
        return classification in self.masked

    def mask(self, value: Any) -> str | None:
        """The keyed hash of ``value``; None stays None (an absent value reveals nothing).

        A value that already looks like a mask is masked like any other: a field whose
        value is ``hmac-sha256:...`` is not thereby kept in clear."""
        if value is None:
            return None
        scalar = value.__class__ in _SCALARS
        if scalar:
            found = self._recent.get((value.__class__, value))
            if found is not None:
                return found
        digest = hmac.new(self._key, _CANONICAL.encode(value), hashlib.sha256).hexdigest()
        masked = PREFIX + digest
        if scalar:
            if len(self._recent) >= _RECENT:
                self._recent.clear()
            self._recent[(value.__class__, value)] = masked
        return masked


def is_masked(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)

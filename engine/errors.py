"""Errors raised by the engine.

FrontlineError
├── RulesetError      a document does not parse, does not type-check, or breaks a limit;
│                     ``.errors`` lists every problem found, each with file, line and column
├── DeployRefused     a document compiled but its own tests failed (a RulesetError too)
└── EvaluationError   an evaluation could not complete (bad arguments, arithmetic overflow)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class FrontlineError(Exception):
    """Base of every error the engine raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a document, located as precisely as the input allows."""

    message: str
    path: str = ""
    line: int | None = None
    column: int | None = None
    file: str | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

    @property
    def where(self) -> str:
        """``file:line:col``, or ``file: path`` for a document without lines."""
        where = self.file or "<document>"
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        elif self.path:
            where += f": {self.path}"
        return where

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
        }


def in_document_order(problems: Sequence[Problem]) -> list[Problem]:
    """``problems`` by line and column (those without a line last, in the order given)."""
    return sorted(
        problems, key=lambda p: (p.line if p.line is not None else 1 << 30, p.column or 0)
    )


class RulesetError(FrontlineError):
    """A document was refused; ``errors`` holds every problem found, in document order."""

    def __init__(self, errors: Sequence[Problem]) -> None:
        self.errors: list[Problem] = in_document_order(errors)
        first = str(self.errors[0]) if self.errors else "invalid ruleset"
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        super().__init__(first + more)


class DeployRefused(RulesetError):
    """The document compiled, but its own tests failed, so it may not be deployed."""


class Untested(DeployRefused):
    """The document's tests guard nothing: it has none, or a test checks nothing; a deploy
    refuses it unless the author says that is meant."""


class EvaluationError(FrontlineError):
    """An evaluation could not complete; the message says why in one sentence."""


class StoreCorrupt(FrontlineError):
    """A stored file or entry is not what Frontline wrote (damaged, or changed by hand); the
    message names it and says what is wrong, in one sentence."""


class StoreWriteFailed(FrontlineError):
    """A store could not write what it was asked to keep (a full disk, a quota, a failing
    disk); nothing of the change was kept and what the store held is unchanged. The message
    names what could not be written and why, in one sentence."""

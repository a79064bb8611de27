"""Ports: the interfaces through which the engine's callers reach anything with I/O.

Implementations live in ``adapters/`` (and an in-memory one beside each port here, for tests
and the embedded default). The engine itself never performs I/O; it is handed these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class StoredRevision:
    """One immutable revision of a ruleset as a store keeps it: the author's text, verbatim."""

    name: str
    revision: int
    digest: str
    text: str


class RulesetStore(Protocol):
    """Keeps every revision of every ruleset and which revision is active.

    ``put_revision`` must be atomic: concurrent callers with the same digest get the same
    revision, and revision numbers of one ruleset grow by one per distinct digest.
    """

    def put_revision(self, name: str, digest: str, text: str) -> tuple[StoredRevision, bool]:
        """Store ``text`` unless a revision with ``digest`` exists; return it and whether it
        was created."""
        ...

    def get_revision(self, name: str, revision: int) -> StoredRevision | None: ...

    def revisions(self, name: str) -> list[StoredRevision]: ...

    def names(self) -> list[str]: ...

    def set_active(self, name: str, revision: int) -> None: ...

    def get_active(self, name: str) -> int | None: ...

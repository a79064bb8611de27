"""Ports of the engine: the ruleset store the revision registry keeps its revisions in.

Implementations live in ``adapters/`` (files, Redis; an in-memory one in ``adapters.memory``).
The engine itself never performs I/O; it is handed a store. The ports of the service's other
stores (context, counters, interactions, alerts, timers) are declared in ``adapters.ports``.
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


@dataclass(frozen=True)
class Routing:
    """Which revisions of a ruleset serve: the active one, a canary for ``percent`` of the
    customers (chosen by a stable hash of the customer id), and a shadow evaluated beside the
    served revision whose differences are recorded but never returned."""

    active: int
    canary: int | None = None
    percent: int = 0
    shadow: int | None = None
    # Grows by one with every change of a ruleset's routing; a store never replaces a routing
    # with one of a lower or equal version. 0: written before routings had versions.
    version: int = 0
    # The id of the ledger record of the change that made this routing ("" when made without
    # one: an engine-only registry, or a routing written before changes were recorded first).
    change: str = ""


class RulesetStore(Protocol):
    """Keeps every revision of every ruleset and which revision is active.

    ``put_revision`` must be atomic: concurrent callers with the same digest get the same
    revision, and revision numbers of one ruleset grow by one per distinct digest. A write
    the store cannot make (a full disk) raises StoreWriteFailed and changes nothing.
    """

    def put_revision(self, name: str, digest: str, text: str) -> tuple[StoredRevision, bool]:
        """Store ``text`` unless a revision with ``digest`` exists; return it and whether it
        was created."""
        ...

    def get_revision(self, name: str, revision: int) -> StoredRevision | None: ...

    def revisions(self, name: str) -> list[StoredRevision]: ...

    def names(self) -> list[str]: ...

    def set_routing(self, name: str, routing: Routing) -> bool:
        """Replace which revisions serve ``name`` (one write: readers see old or new), unless
        the stored routing's version is ``routing.version`` or higher; whether it was
        replaced. The comparison and the write are one step, also across processes sharing
        the store."""
        ...

    def get_routing(self, name: str) -> Routing | None: ...

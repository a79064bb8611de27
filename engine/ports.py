"""Ports of the engine: the ruleset store the revision registry keeps its revisions in.

Implementations live in ``adapters/`` (files, Redis; an in-memory one in ``adapters.memory``).
The engine itself never performs I/O; it is handed a store. The ports of the service's other
stores (context, counters, interactions, alerts, timers) are declared in ``adapters.ports``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Provenance:
    """Who deployed a revision (a key's principal; None for the starter library), when (RFC
    3339) and why (the deploy's message, if any)."""

    deployed_by: str | None
    deployed_at: str
    message: str | None = None

    @classmethod
    def from_data(cls, data: Any) -> Provenance | None:
        """The provenance a store kept beside a revision, or None (a revision stored before
        revisions kept theirs)."""
        if not isinstance(data, dict) or not isinstance(data.get("deployed_at"), str):
            return None
        by, message = data.get("deployed_by"), data.get("message")
        return cls(
            by if isinstance(by, str) else None,
            data["deployed_at"],
            message if isinstance(message, str) else None,
        )


@dataclass(frozen=True)
class StoredRevision:
    """One immutable revision of a ruleset as a store keeps it: the author's text, verbatim,
    and who deployed it, when and why (None for a revision stored before that was kept)."""

    name: str
    revision: int
    digest: str
    text: str
    provenance: Provenance | None = None


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
    # Who made this routing (a key's principal) and when (RFC 3339): None when made without
    # a key (the starter library, an engine-only registry) or before they were kept.
    changed_by: str | None = None
    changed_at: str | None = None
    # The change that made it: deploy, activate, rollback, rollout, shadow, approve, retire
    # ("" before it was kept).
    action: str = ""
    # Why the ruleset was retired, when this routing retires it: it serves nobody (``active``
    # is the revision it served last) until a revision is activated again.
    retired: str | None = None


HISTORY_KEPT = 1_000  # routings of a ruleset a store keeps, at least

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
REVIEW_STATUSES = (PENDING, APPROVED, REJECTED)


@dataclass(frozen=True)
class Review:
    """The second pair of eyes on a revision deployed while approval was required: who
    deployed it and when, its tests' results, and (once decided) who approved or rejected it,
    when and why. A revision deployed while approval was not required has none.

    Times are RFC 3339 strings and names are principals, as the service gives them; the
    ``*_record`` fields are the ids of the ledger records of the deploy and the decision.
    """

    status: str  # pending | approved | rejected
    deployed_by: str
    deployed_at: str
    deploy_record: str = ""
    tests: list[dict[str, Any]] = field(default_factory=list)  # {name, passed, failures}
    decided_by: str | None = None
    decided_at: str | None = None
    reason: str | None = None
    decision_record: str = ""

    @classmethod
    def from_data(cls, data: Any, where: str) -> Review:
        """A review as a store keeps it (a JSON object); ValueError naming ``where`` if it is
        not one Frontline wrote."""
        try:
            review = cls(**data)
        except TypeError:
            raise ValueError(f"{where}: not a review Frontline wrote ({data!r:.80})") from None
        if review.status not in REVIEW_STATUSES:
            raise ValueError(f"{where}: unknown review status {review.status!r}")
        return review


class RulesetStore(Protocol):
    """Keeps every revision of every ruleset and which revision is active.

    ``put_revision`` must be atomic: concurrent callers with the same digest get the same
    revision, and revision numbers of one ruleset grow by one per distinct digest. A write
    the store cannot make (a full disk) raises StoreWriteFailed and changes nothing.
    """

    def put_revision(
        self,
        name: str,
        digest: str,
        text: str,
        review: Review | None = None,
        provenance: Provenance | None = None,
    ) -> tuple[StoredRevision, bool]:
        """Store ``text`` unless a revision with ``digest`` exists; return it and whether it
        was created. A created revision gets ``review`` and ``provenance`` in the same step
        (a revision is never seen without the review it was deployed with); an existing one
        keeps its own."""
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

    def history(self, name: str, limit: int = 50) -> list[Routing]:
        """The routings ``set_routing`` stored for ``name``, newest first, at most ``limit``
        (a store keeps at least the last ``HISTORY_KEPT``; none from before it kept them)."""
        ...

    def reviews(self, name: str) -> dict[int, Review]:
        """The review of each revision of ``name`` that has one, by revision."""
        ...

    def set_review(self, name: str, revision: int, review: Review, *, expect: str) -> bool:
        """Replace the review of ``revision`` if its stored status is ``expect`` (one step,
        also across processes sharing the store); whether it was replaced. A revision
        without a review is never given one here."""
        ...

"""The service: every use case, callable without HTTP, grouped by who uses it.

    Frontline
    ├── decisions   agents' desktops: decide, start and end interactions
    ├── customers   integrations: write (and read) the cached context, record events
    ├── alerts      alerts raised on context changes and events; streams; acks
    ├── timers      timer rules: each live interaction's, run when due
    ├── rulesets    rule authors: deploy, read, test, activate, roll back, canary, shadow
    └── audit       auditors: query, export, explain, verify, replay

Built once by ``server.service.factory.build``; route handlers only translate HTTP to one of
these calls and back. Every refusal is a ``server.service.errors.ServiceError``.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.ports import ContextStore
from audit.indexer import IndexFollower
from audit.shipper import LedgerShipper
from audit.writer import LedgerWriter
from engine import RulesetRegistry
from server.metrics import Metrics
from server.service.alerts import Alerting
from server.service.audit import Audit
from server.service.customers import Customers
from server.service.decisions import Decisions
from server.service.rulesets import Rulesets
from server.service.timers import Timers


@dataclass(frozen=True)
class Frontline:
    """The use cases, and the parts the server's lifecycle manages."""

    decisions: Decisions
    customers: Customers
    alerts: Alerting
    timers: Timers
    rulesets: Rulesets
    audit: Audit
    registry: RulesetRegistry
    contexts: ContextStore
    ledger: LedgerWriter
    metrics: Metrics | None
    indexer: IndexFollower | None = None  # keeps the ledger's query index up
    shipper: LedgerShipper | None = None  # with PostgreSQL: ships the ledger's segments

    def readiness(self) -> list[str]:
        """Why the service is not ready to decide; empty when it is."""
        problems = []
        names = self.registry.names()
        if not names:
            problems.append("no ruleset is deployed")
        for name in names:
            if self.registry.active_revision(name) is None and not self._awaiting(name):
                problems.append(f"ruleset {name!r} has no active revision")
        if not self.ledger.accepting:
            problems.append("the ledger is not accepting records")
        failed = getattr(self.ledger.store, "failed", None)
        if failed:
            problems.append(failed)
        return problems

    def _awaiting(self, name: str) -> bool:
        """Whether every revision of a ruleset without an active one is waiting for approval
        (or was rejected): a new ruleset nobody has approved yet, which has nothing to serve
        by design."""
        store = self.registry.store
        reviews = store.reviews(name)
        return bool(reviews) and len(reviews) == len(store.revisions(name))

"""What rule authors do: deploy, list, read, test, activate (and roll back), canary, shadow.

A deploy is compiled, type-checked and tested in a worker thread (a large document takes a
fraction of a second) and activated only if all of that passes; the active revision keeps
serving otherwise. Every change of what serves is recorded in the ledger, with the key that
made it and the routing it makes, before it is applied:

    plan (the routing it makes, next version) ──▶ ledger record, durable ──▶ store ──▶ serve
          │ unknown revision: 404                   │ ledger away: 503,      │ another change
          ▼                                         ▼ nothing changed        ▼ came first: 409,
       nothing changed                                                  an "abandoned" record

A crash after the record and before the store leaves a recorded change that is not served;
the next start applies it (``complete_recorded_changes``), as a database replays its
write-ahead log. So whatever moment a server dies at, what serves is explained by a record.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import structlog

from audit.query import LedgerQuery, LedgerReader
from audit.record import Actor, LedgerRecord
from audit.recording import ruleset_record
from audit.writer import LedgerWriter
from engine import DeployRefused, RulesetError, RulesetRegistry, UnknownRuleset
from engine import Routing as Served
from server.ids import new_id
from server.keys import Principal
from server.metrics import Metrics
from server.service.answers import (
    Deployed,
    RevisionDocument,
    Routing,
    RulesetDetail,
    RulesetList,
    TestRun,
)
from server.service.errors import Conflict, Invalid, NotFound, Refused, ServiceError, TooLarge
from server.service.recorder import Recorder

log = structlog.get_logger("frontline")


def routing_view(routing: Served) -> dict[str, Any]:
    return {
        "active_revision": routing.active,
        "canary": (
            {"revision": routing.canary, "percent": routing.percent}
            if routing.canary is not None
            else None
        ),
        "shadow": routing.shadow,
    }


def _routing(name: str, routing: Served) -> Routing:
    return msgspec.convert({"name": name, **routing_view(routing)}, Routing)


_NO_ROUTING = {"active_revision": None, "canary": None, "shadow": None}


def recorded_routing(routing: Served) -> dict[str, Any]:
    """A routing as a change record holds it (its ``change`` is the record's own id)."""
    return {
        "active": routing.active,
        "canary": routing.canary,
        "percent": routing.percent,
        "shadow": routing.shadow,
        "version": routing.version,
    }


def abandoned_record(name: str, routing: Served, actor: Actor | None, reason: str) -> LedgerRecord:
    """The record saying that the change which made ``routing`` was recorded and never
    applied: nothing of it served."""
    return ruleset_record(
        record_id=new_id(),
        action="abandoned",
        name=name,
        revision=None,
        digest="",
        actor=actor,
        details={"change": routing.change, "version": routing.version, "reason": reason},
    )


def routing_of(record: LedgerRecord) -> Served | None:
    """The routing a change record says it makes, or None (a deploy that activated nothing,
    or a record written before changes carried their routing)."""
    found = record.data.get("routing")
    if not isinstance(found, dict) or record.ruleset is None:
        return None
    return Served(**found, change=record.id)


class Rulesets:
    """The rulesets a registry serves, changed only through here, each change recorded."""

    def __init__(
        self,
        registry: RulesetRegistry,
        recorder: Recorder,
        metrics: Metrics | None,
        max_document_bytes: int,
    ) -> None:
        self.registry = registry
        self.recorder = recorder
        self.metrics = metrics
        self.max_document_bytes = max_document_bytes
        # One change of a ruleset at a time in this process: each plans from what the one
        # before it applied, so no two get the same version here.
        self._changing: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def check_size(self, size: int) -> None:
        """TooLarge if a document of ``size`` bytes is over the limit (checked as it arrives)."""
        if size > self.max_document_bytes:
            raise TooLarge(f"the document is larger than {self.max_document_bytes:,} bytes")

    async def deploy(
        self, document: bytes, principal: Principal, *, activate: bool = True, filename: str = ""
    ) -> tuple[Deployed, bool]:
        """Compile, check and test ``document``; store it as a new revision (and activate it)
        if all of that passes. The answer, with the analysis's warnings, and whether a
        revision was created."""
        self.check_size(len(document))
        try:
            text = document.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Invalid(f"the document is not UTF-8 (byte {exc.start})") from None
        if not text.strip():
            raise Invalid("the request body is empty; send a ruleset document")
        try:
            # Compiled, tested and its text stored; a stored revision serves nobody until a
            # recorded change activates it.
            done = await asyncio.to_thread(
                self.registry.deploy, text, filename=filename or "<request>", activate=False
            )
        except DeployRefused as exc:
            raise Refused(
                f"the document's own tests failed ({len(exc.errors)}); nothing was deployed",
                title="Deploy refused",
                errors=[p.to_dict() for p in exc.errors],
            ) from None
        except RulesetError as exc:
            first = exc.errors[0] if exc.errors else None
            raise Refused(
                f"the document has {len(exc.errors)} error(s); first: {first}"
                if first
                else "the document was refused",
                title="Invalid ruleset",
                errors=[p.to_dict() for p in exc.errors],
            ) from None
        passed = sum(r.passed for r in done.tests)
        tests = {"passed": passed, "failed": len(done.tests) - passed}
        name, revision = done.name, done.revision
        activated = activate and self.registry.active_revision(name) != revision
        details = {"created": done.created, "activated": activated, "tests": tests}
        if activated:
            await self._change(
                "deploy",
                name,
                revision,
                done.digest,
                principal,
                details,
                lambda change: self.registry.planned_activation(name, revision, change=change),
            )
        elif done.created:
            await self._record("deploy", name, revision, done.digest, principal, details)
            self._changed("deploy", name, revision, principal)
        answer = {
            "name": name,
            "revision": revision,
            "digest": done.digest,
            "created": done.created,
            "activated": activated,
            "tests": tests,
            "warnings": [p.to_dict() for p in done.warnings],
        }
        return msgspec.convert(answer, Deployed), done.created

    def list(self) -> RulesetList:
        """Every ruleset with its active revision, canary, shadow and number of revisions."""
        out = []
        for name in self.registry.names():
            revisions = self.registry.revisions(name)
            entry: dict[str, Any] = {"name": name, "revisions": len(revisions)}
            try:
                entry.update(routing_view(self.registry.routing(name)))
                entry["description"] = self.registry.active(name).description
            except UnknownRuleset:
                entry.update(_NO_ROUTING)
                entry["description"] = None
            out.append(entry)
        return msgspec.convert({"rulesets": out}, RulesetList)

    def read(self, name: str) -> RulesetDetail:
        """One ruleset: its routing and its revision history."""
        try:
            revisions = self.registry.revisions(name)
        except UnknownRuleset as exc:
            raise NotFound(str(exc)) from None
        try:
            routing = routing_view(self.registry.routing(name))
        except UnknownRuleset:
            routing = dict(_NO_ROUTING)
        detail = {
            "name": name,
            **routing,
            "revisions": [{"revision": r.revision, "digest": r.digest} for r in revisions],
        }
        return msgspec.convert(detail, RulesetDetail)

    def document(self, name: str, revision: int) -> RevisionDocument:
        """One revision's document, as its author wrote it."""
        stored = self.registry.store.get_revision(name, revision)
        if stored is None:
            raise NotFound(f"ruleset {name!r} has no revision {revision}")
        return RevisionDocument(
            name=stored.name, revision=stored.revision, digest=stored.digest, document=stored.text
        )

    async def run_tests(self, name: str, revision: int) -> TestRun:
        """Run one revision's own tests now: each test's name, whether it passed, why not."""
        try:
            compiled = await asyncio.to_thread(self.registry.get, name, revision)
        except UnknownRuleset as exc:
            raise NotFound(str(exc)) from None
        results = await asyncio.to_thread(compiled.run_tests)
        run = {
            "name": name,
            "revision": revision,
            "passed": sum(r.passed for r in results),
            "failed": sum(not r.passed for r in results),
            "tests": [r.to_dict() for r in results],
        }
        return msgspec.convert(run, TestRun)

    async def activate(self, name: str, revision: int, principal: Principal) -> Routing:
        """Activate a revision: a newer one, or an older one to roll back."""
        registry = self.registry
        previous = registry.active_revision(name)
        digest = await self._digest(name, revision)
        action = "rollback" if previous is not None and revision < previous else "activate"
        routing = await self._change(
            action,
            name,
            revision,
            digest,
            principal,
            {"previous": previous},
            lambda change: registry.planned_activation(name, revision, change=change),
        )
        return _routing(name, routing)

    async def canary(self, name: str, revision: int, percent: int, principal: Principal) -> Routing:
        """Serve ``revision`` to ``percent`` of the customers (0 ends the canary)."""
        digest = await self._digest(name, revision)
        routing = await self._change(
            "rollout",
            name,
            revision,
            digest,
            principal,
            {"percent": percent},
            lambda change: self.registry.planned_rollout(name, revision, percent, change=change),
        )
        return _routing(name, routing)

    async def shadow(self, name: str, revision: int | None, principal: Principal) -> Routing:
        """Evaluate ``revision`` beside the served one and record differences (None stops)."""
        digest = await self._digest(name, revision) if revision is not None else ""
        routing = await self._change(
            "shadow",
            name,
            revision,
            digest,
            principal,
            {"shadow": revision},
            lambda change: self.registry.planned_shadow(name, revision, change=change),
        )
        return _routing(name, routing)

    async def _digest(self, name: str, revision: int) -> str:
        try:
            compiled = await asyncio.to_thread(self.registry.get, name, revision)
        except UnknownRuleset as exc:
            raise NotFound(str(exc)) from None
        return compiled.digest

    async def _change(
        self,
        action: str,
        name: str,
        revision: int | None,
        digest: str,
        principal: Principal,
        details: dict[str, Any],
        plan: Callable[[str], Served],
    ) -> Served:
        """Plan a change of what serves ``name``, record it durably with the routing it
        makes, then apply it; the routing served after it."""
        registry = self.registry
        async with self._changing[name]:
            change = new_id()
            try:
                routing = await asyncio.to_thread(plan, change)
            except UnknownRuleset as exc:
                raise NotFound(str(exc)) from None
            details = {**details, "routing": recorded_routing(routing)}
            await self._record(action, name, revision, digest, principal, details, change)
            try:
                applied = await asyncio.to_thread(registry.apply, name, routing)
            except Exception as exc:
                await self._unapplied(name, routing, principal, exc)
                raise
            if not applied:
                await self._abandon(
                    name, routing, principal, "another change of the ruleset came first"
                )
                raise Conflict(
                    f"ruleset {name!r} was changed elsewhere at the same time; this change was "
                    "recorded as abandoned and nothing of it serves; read the ruleset and try "
                    "again"
                )
        self._changed(action, name, revision, principal)
        return routing

    async def _unapplied(
        self, name: str, routing: Served, principal: Principal, error: Exception
    ) -> None:
        """After a store failed to apply a recorded change: if the store holds it after all
        (the reply was lost), serve it; otherwise record it as abandoned. If the store cannot
        even be read, the next start settles it (``complete_recorded_changes``)."""
        try:
            stored = await asyncio.to_thread(self.registry.store.get_routing, name)
        except Exception:
            return
        if stored is not None and stored.change == routing.change:
            await asyncio.to_thread(self.registry.refresh, name)
            return
        with contextlib.suppress(ServiceError):  # the ledger is away too: the next start settles it
            await self._abandon(name, routing, principal, f"it could not be applied ({error})")

    async def _abandon(self, name: str, routing: Served, principal: Principal, reason: str) -> None:
        actor = Actor(principal=principal.name, role=principal.role)
        await self.recorder.append(abandoned_record(name, routing, actor, reason))

    async def _record(
        self,
        action: str,
        name: str,
        revision: int | None,
        digest: str,
        principal: Principal,
        details: dict[str, Any],
        record_id: str | None = None,
    ) -> None:
        """Record a change durably (Unavailable if the ledger cannot take it)."""
        await self.recorder.append(
            ruleset_record(
                record_id=record_id or new_id(),
                action=action,
                name=name,
                revision=revision,
                digest=digest,
                actor=Actor(principal=principal.name, role=principal.role),
                details=details,
            )
        )

    def _changed(self, action: str, name: str, revision: int | None, principal: Principal) -> None:
        """Count and log a change that took effect."""
        if self.metrics is not None:
            self.metrics.ruleset_changes.labels(action).inc()
        log.info(
            "ruleset changed",
            action=action,
            ruleset=name,
            revision=revision,
            actor=principal.name,
            role=principal.role,
        )


def complete_recorded_changes(
    registry: RulesetRegistry, ledger_dir: Path, instance: str, writer: LedgerWriter
) -> list[str]:
    """At start, before anything is served: for each ruleset, the last change this instance
    recorded is applied if it never was (the server stopped between its record and its
    store), or recorded as abandoned if another change took its place meanwhile. Returns one
    sentence per change settled (each also logged)."""
    reader = LedgerReader(ledger_dir)
    try:
        last = _last_changes(reader, set(registry.names()), instance)
    finally:
        reader.close()
    said = []
    for name, record in sorted(last.items()):
        recorded = routing_of(record)
        if recorded is None:
            continue  # an abandoned change: nothing of it is to serve
        stored = registry.store.get_routing(name)
        if stored is not None and (stored.version > recorded.version or stored == recorded):
            continue  # applied, or a later change holds
        who = record.actor.principal if record.actor is not None else "the starter library"
        what = f"the {record.data.get('action')} by {who} recorded as {record.id}"
        if (stored is None or stored.version < recorded.version) and registry.apply(name, recorded):
            sentence = (
                f"ruleset {name!r}: {what} had not taken effect when the server stopped; "
                f"it is applied now (version {recorded.version})"
            )
        else:
            reason = "another change took its place while the server that recorded it was down"
            writer.append_blocking(abandoned_record(name, recorded, record.actor, reason))
            sentence = (
                f"ruleset {name!r}: {what} had not taken effect when the server stopped, "
                "and another change took its place meanwhile; it is recorded as abandoned"
            )
        log.warning(sentence)
        said.append(sentence)
    return said


def _last_changes(reader: LedgerReader, names: set[str], instance: str) -> dict[str, LedgerRecord]:
    """For each of ``names``, this instance's latest ruleset record that changed what serves,
    or abandoned such a change (records of other instances sharing the ledger directory are
    skipped). One pass over the ruleset records, newest first, until each name is found."""
    found: dict[str, LedgerRecord] = {}
    query = LedgerQuery(kind="ruleset", limit=200)
    while len(found) < len(names):
        page = reader.page(query)
        for record in page.records:
            name = record.ruleset.name if record.ruleset is not None else ""
            if record.instance != instance or name not in names or name in found:
                continue
            if record.data.get("action") == "abandoned" or "routing" in record.data:
                found[name] = record
        if page.next_cursor is None:
            break
        query = LedgerQuery(kind="ruleset", limit=200, cursor=page.next_cursor)
    return found

"""What rule authors do: deploy, list, read, test, activate (and roll back), canary, shadow.

A deploy is compiled, type-checked and tested in a worker thread (a large document takes a
fraction of a second) and activated only if all of that passes; the active revision keeps
serving otherwise. Every change is recorded in the ledger, with the key that made it, before
the answer says it happened.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import structlog

from audit.record import Actor
from audit.recording import ruleset_record
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
from server.service.errors import Invalid, NotFound, Refused, TooLarge
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

    def check_size(self, size: int) -> None:
        """TooLarge if a document of ``size`` bytes is over the limit (checked as it arrives)."""
        if size > self.max_document_bytes:
            raise TooLarge(f"the document is larger than {self.max_document_bytes:,} bytes")

    async def deploy(
        self, document: bytes, principal: Principal, *, activate: bool = True, filename: str = ""
    ) -> tuple[Deployed, bool]:
        """Compile, check and test ``document``; store it as a new revision (and activate it)
        if all of that passes. The answer, and whether a revision was created."""
        self.check_size(len(document))
        try:
            text = document.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Invalid(f"the document is not UTF-8 (byte {exc.start})") from None
        if not text.strip():
            raise Invalid("the request body is empty; send a ruleset document")
        try:
            done = await asyncio.to_thread(
                self.registry.deploy, text, filename=filename or "<request>", activate=activate
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
        if done.created or done.activated:
            await self._record(
                "deploy",
                done.name,
                done.revision,
                done.digest,
                principal,
                {"created": done.created, "activated": done.activated, "tests": tests},
            )
        answer = {
            "name": done.name,
            "revision": done.revision,
            "digest": done.digest,
            "created": done.created,
            "activated": done.activated,
            "tests": tests,
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
        try:
            compiled = await asyncio.to_thread(registry.activate, name, revision)
        except UnknownRuleset as exc:
            raise NotFound(str(exc)) from None
        action = "rollback" if previous is not None and revision < previous else "activate"
        await self._record(
            action, name, revision, compiled.digest, principal, {"previous": previous}
        )
        return _routing(name, registry.routing(name))

    async def canary(self, name: str, revision: int, percent: int, principal: Principal) -> Routing:
        """Serve ``revision`` to ``percent`` of the customers (0 ends the canary)."""
        try:
            routing = await asyncio.to_thread(self.registry.rollout, name, revision, percent)
            digest = self.registry.get(name, revision).digest
        except UnknownRuleset as exc:
            raise NotFound(str(exc)) from None
        await self._record("rollout", name, revision, digest, principal, {"percent": percent})
        return _routing(name, routing)

    async def shadow(self, name: str, revision: int | None, principal: Principal) -> Routing:
        """Evaluate ``revision`` beside the served one and record differences (None stops)."""
        try:
            routing = await asyncio.to_thread(self.registry.shadow, name, revision)
            digest = self.registry.get(name, revision).digest if revision is not None else ""
        except UnknownRuleset as exc:
            raise NotFound(str(exc)) from None
        await self._record("shadow", name, revision, digest, principal, {"shadow": revision})
        return _routing(name, routing)

    async def _record(
        self,
        action: str,
        name: str,
        revision: int | None,
        digest: str,
        principal: Principal,
        details: dict[str, Any],
    ) -> None:
        """Record a change durably; then count and log it."""
        actor = Actor(principal=principal.name, role=principal.role)
        await self.recorder.append(
            ruleset_record(
                record_id=new_id(),
                action=action,
                name=name,
                revision=revision,
                digest=digest,
                actor=actor,
                details=details,
            )
        )
        if self.metrics is not None:
            self.metrics.ruleset_changes.labels(action).inc()
        log.info(
            "ruleset changed",
            action=action,
            ruleset=name,
            revision=revision,
            actor=actor.principal,
            role=actor.role,
        )

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

Four eyes (``FRONTLINE_REQUIRE_APPROVAL``): a deploy stores the revision *pending*, with its
review (who deployed it, when, its tests' results) in the same store write, and records the
deploy; nothing serves. Another author approves it (recorded, with the routing it makes; the
review marked approved; then applied as an activation is) or rejects it (recorded; the review
marked rejected). A pending or rejected revision is never activated, canaried or shadowed;
revisions deployed without approval being asked keep serving and can be rolled back to.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
import structlog

from audit.query import LedgerQuery, LedgerReader
from audit.record import Actor, LedgerRecord
from audit.recording import ruleset_record
from audit.writer import LedgerWriter, utc_now
from engine import (
    APPROVED,
    PENDING,
    REJECTED,
    DeployRefused,
    Provenance,
    Review,
    RulesetError,
    RulesetRegistry,
    RulesetRetired,
    StoredRevision,
    UnknownRuleset,
    Untested,
)
from engine import Routing as Served
from server.ids import new_id
from server.keys import Principal
from server.metrics import Metrics
from server.service.answers import (
    Deployed,
    Reviewed,
    RevisionDocument,
    Routing,
    RulesetDetail,
    RulesetList,
    TestRun,
)
from server.service.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Refused,
    ServiceError,
    TooLarge,
)
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
        "changed_by": routing.changed_by,
        "changed_at": routing.changed_at,
        "retired": (
            {
                "reason": routing.retired,
                "retired_by": routing.changed_by,
                "retired_at": routing.changed_at,
            }
            if routing.retired is not None
            else None
        ),
    }


def _routing(name: str, routing: Served) -> Routing:
    return msgspec.convert({"name": name, **routing_view(routing)}, Routing)


_NO_ROUTING = {
    "active_revision": None,
    "canary": None,
    "shadow": None,
    "changed_by": None,
    "changed_at": None,
    "retired": None,
}


def recorded_routing(routing: Served) -> dict[str, Any]:
    """A routing as a change record holds it (its ``change`` is the record's own id)."""
    return {
        "active": routing.active,
        "canary": routing.canary,
        "percent": routing.percent,
        "shadow": routing.shadow,
        "version": routing.version,
        "changed_by": routing.changed_by,
        "changed_at": routing.changed_at,
        "retired": routing.retired,
        "action": routing.action,
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


def review_abandoned_record(
    name: str, revision: int, digest: str, decision: str, actor: Actor | None, reason: str
) -> LedgerRecord:
    """The record saying that the rejection recorded as ``decision`` was never applied: the
    revision's review stayed as it was. (It names no routing version: no routing was
    planned.)"""
    return ruleset_record(
        record_id=new_id(),
        action="abandoned",
        name=name,
        revision=revision,
        digest=digest,
        actor=actor,
        details={"change": decision, "reason": reason},
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
        *,
        require_approval: bool = False,
    ) -> None:
        self.registry = registry
        self.recorder = recorder
        self.metrics = metrics
        self.max_document_bytes = max_document_bytes
        # A deploy waits for another author's approval before it serves.
        self.require_approval = require_approval
        # One change of a ruleset at a time in this process: each plans from what the one
        # before it applied, so no two get the same version here.
        self._changing: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def check_size(self, size: int) -> None:
        """TooLarge if a document of ``size`` bytes is over the limit (checked as it arrives)."""
        if size > self.max_document_bytes:
            raise TooLarge(f"the document is larger than {self.max_document_bytes:,} bytes")

    async def deploy(
        self,
        document: bytes,
        principal: Principal,
        *,
        activate: bool = True,
        filename: str = "",
        allow_untested: bool = False,
        message: str | None = None,
    ) -> tuple[Deployed, bool]:
        """Compile, check and test ``document``; store it as a new revision (and activate it)
        if all of that passes. The answer, with the analysis's warnings, and whether a
        revision was created. A new revision keeps who deployed it, when, and ``message``.

        While approval is required, a new revision is stored pending (``status: pending`` in
        the answer) and serves nobody until another author approves it."""
        text = self._text(document)
        provenance = Provenance(principal.name, utc_now(), message or None)
        review = None
        if self.require_approval:
            # Stored with the revision, in the same write: never a revision without it.
            review = Review(
                status=PENDING,
                deployed_by=principal.name,
                deployed_at=provenance.deployed_at,
                deploy_record=new_id(),
            )
        with _refusals():
            # Compiled, tested and its text stored; a stored revision serves nobody until a
            # recorded change activates it.
            done = await asyncio.to_thread(
                self.registry.deploy,
                text,
                filename=filename or "<request>",
                activate=False,
                review=review,
                allow_untested=allow_untested,
                provenance=provenance,
            )
        passed = sum(r.passed for r in done.tests)
        tests = {"passed": passed, "failed": len(done.tests) - passed}
        name, revision = done.name, done.revision
        own = await asyncio.to_thread(self.registry.review, name, revision)
        answer: dict[str, Any] = {
            "name": name,
            "revision": revision,
            "digest": done.digest,
            "created": done.created,
            "activated": False,
            "tests": tests,
            "coverage": done.coverage.to_dict(),
            "warnings": [p.to_dict() for p in done.warnings],
        }
        if own is not None and own.status == PENDING:
            # Waiting for a second author: recorded (if new), and nothing else happens.
            if done.created:
                details = {"created": True, "activated": False, "tests": tests, "status": PENDING}
                await self._record(
                    "deploy", name, revision, done.digest, principal, details, own.deploy_record
                )
                self._changed("deploy", name, revision, principal)
            answer.update(status=PENDING, test_results=own.tests)
            return msgspec.convert(answer, Deployed), done.created
        if own is not None and own.status == REJECTED and activate:
            raise Conflict(refusal(name, revision, own))
        served = self.registry.served_routing(name)
        activated = activate and (
            self.registry.active_revision(name) != revision
            or (served is not None and served.retired is not None)  # deployed again: back
        )
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
        answer["activated"] = activated
        return msgspec.convert(answer, Deployed), done.created

    async def dry_run(
        self, document: bytes, *, filename: str = "", allow_untested: bool = False
    ) -> Deployed:
        """What deploying ``document`` would answer, with nothing stored or activated: the
        same checks (compile, analysis, tests) and the same refusals, ``revision`` null and
        ``dry_run`` true. Approval, which concerns what serves, does not apply."""
        text = self._text(document)
        with _refusals():
            done = await asyncio.to_thread(
                self.registry.check,
                text,
                filename=filename or "<request>",
                allow_untested=allow_untested,
            )
        passed = sum(r.passed for r in done.tests)
        answer = {
            "name": done.name,
            "revision": None,
            "digest": done.digest,
            "created": False,
            "activated": False,
            "dry_run": True,
            "tests": {"passed": passed, "failed": len(done.tests) - passed},
            "coverage": done.coverage.to_dict(),
            "warnings": [p.to_dict() for p in done.warnings],
        }
        return msgspec.convert(answer, Deployed)

    def _text(self, document: bytes) -> str:
        """A document's text: Invalid if it is too large, not UTF-8 or empty."""
        self.check_size(len(document))
        try:
            text = document.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Invalid(f"the document is not UTF-8 (byte {exc.start})") from None
        if not text.strip():
            raise Invalid("the request body is empty; send a ruleset document")
        return text

    def list(self, principal: Principal | None = None) -> RulesetList:
        """Every ruleset with its active revision, canary, shadow, number of revisions and
        the revisions waiting for approval (``can_review``: whether ``principal`` may decide
        them)."""
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
            reviews = self.registry.store.reviews(name)
            entry["pending"] = pending_view(
                name, revisions, reviews, entry["active_revision"], principal
            )
            out.append(entry)
        return msgspec.convert({"rulesets": out}, RulesetList)

    def read(self, name: str, principal: Principal | None = None) -> RulesetDetail:
        """One ruleset: its routing, its revision history (each revision's review, if it was
        deployed while approval was required) and the revisions waiting for approval, each
        with its diff against the active revision and its tests' results."""
        try:
            revisions = self.registry.revisions(name)
        except UnknownRuleset as exc:
            raise NotFound(str(exc)) from None
        try:
            routing = routing_view(self.registry.routing(name))
        except UnknownRuleset:
            routing = dict(_NO_ROUTING)
        reviews = self.registry.store.reviews(name)
        detail = {
            "name": name,
            **routing,
            "revisions": [
                {
                    "revision": r.revision,
                    "digest": r.digest,
                    **provenance_view(r),
                    "review": _review_view(reviews[r.revision]) if r.revision in reviews else None,
                }
                for r in revisions
            ],
            "pending": pending_view(
                name, revisions, reviews, routing["active_revision"], principal
            ),
            "changes": [
                {
                    "version": r.version,
                    "action": r.action or None,
                    "changed_by": r.changed_by,
                    "changed_at": r.changed_at,
                    "active_revision": r.active,
                    "canary": routing_view(r)["canary"],
                    "shadow": r.shadow,
                    "retired": r.retired,
                }
                for r in self.registry.store.history(name, CHANGES_SHOWN)
            ],
        }
        return msgspec.convert(detail, RulesetDetail)

    def document(self, name: str, revision: int) -> RevisionDocument:
        """One revision's document, as its author wrote it."""
        stored = self.registry.store.get_revision(name, revision)
        if stored is None:
            raise NotFound(f"ruleset {name!r} has no revision {revision}")
        return msgspec.convert(
            {
                "name": stored.name,
                "revision": stored.revision,
                "digest": stored.digest,
                **provenance_view(stored),
                "document": stored.text,
            },
            RevisionDocument,
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
        """Activate a revision: a newer one, or an older one to roll back. A revision waiting
        for approval, or rejected, is refused (Conflict)."""
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
            lambda change: registry.planned_activation(
                name, self._may_serve(name, revision), change=change
            ),
        )
        return _routing(name, routing)

    async def retire(self, name: str, reason: str, principal: Principal) -> Routing:
        """Retire a ruleset: recorded, then applied as an activation is; it serves no new
        decision or interaction (Conflict, naming when and by whom) until a revision is
        activated again (or a deploy activates one). Its revisions and history stay."""
        registry = self.registry
        try:
            routing = await asyncio.to_thread(registry.routing, name)
        except UnknownRuleset as exc:
            raise NotFound(str(exc)) from None
        if routing.retired is not None:
            raise Conflict(str(RulesetRetired(name, routing)))
        digest = await self._digest(name, routing.active)
        routed = await self._change(
            "retire",
            name,
            routing.active,
            digest,
            principal,
            {"reason": reason},
            lambda change: registry.planned_retirement(name, reason, change=change),
        )
        return _routing(name, routed)

    async def canary(self, name: str, revision: int, percent: int, principal: Principal) -> Routing:
        """Serve ``revision`` to ``percent`` of the customers (0 ends the canary)."""
        digest = await self._digest(name, revision)

        def plan(change: str) -> Served:
            if percent > 0:
                self._may_serve(name, revision)
            return self.registry.planned_rollout(name, revision, percent, change=change)

        routing = await self._change(
            "rollout", name, revision, digest, principal, {"percent": percent}, plan
        )
        return _routing(name, routing)

    async def shadow(self, name: str, revision: int | None, principal: Principal) -> Routing:
        """Evaluate ``revision`` beside the served one and record differences (None stops)."""
        digest = await self._digest(name, revision) if revision is not None else ""

        def plan(change: str) -> Served:
            if revision is not None:
                self._may_serve(name, revision)
            return self.registry.planned_shadow(name, revision, change=change)

        routing = await self._change(
            "shadow", name, revision, digest, principal, {"shadow": revision}, plan
        )
        return _routing(name, routing)

    async def approve(self, name: str, revision: int, principal: Principal) -> Reviewed:
        """A second author approves a pending revision, which activates it: recorded (with
        the routing it makes), the review marked approved, then the routing applied, as an
        activation is. Forbidden to the author who deployed it; Conflict unless pending."""
        registry = self.registry
        digest = await self._digest(name, revision)
        at = utc_now()
        decided: dict[str, Review] = {}

        def plan(change: str) -> Served:
            review = self._pending_review(name, revision, principal, "approve")
            decided["review"] = replace(
                review,
                status=APPROVED,
                decided_by=principal.name,
                decided_at=at,
                decision_record=change,
            )
            return registry.planned_activation(name, revision, change=change)

        def settle(change: str) -> bool:
            return registry.store.set_review(name, revision, decided["review"], expect=PENDING)

        routing = await self._change(
            "approve",
            name,
            revision,
            digest,
            principal,
            {"decision": APPROVED, "previous": registry.active_revision(name)},
            plan,
            details_of=lambda: _decided(decided["review"]),
            settle=settle,
        )
        return _reviewed(name, revision, digest, decided["review"], routing)

    async def reject(
        self, name: str, revision: int, reason: str | None, principal: Principal
    ) -> Reviewed:
        """A second author rejects a pending revision: recorded, then its review marked
        rejected; it never serves. Forbidden to the author who deployed it; Conflict unless
        pending."""
        registry = self.registry
        digest = await self._digest(name, revision)
        async with self._changing[name]:
            review = await asyncio.to_thread(
                self._pending_review, name, revision, principal, "reject"
            )
            record = new_id()
            rejected = replace(
                review,
                status=REJECTED,
                decided_by=principal.name,
                decided_at=utc_now(),
                reason=reason,
                decision_record=record,
            )
            details = {"decision": REJECTED, **_decided(rejected)}
            await self._record("reject", name, revision, digest, principal, details, record)
            try:
                stored = await asyncio.to_thread(
                    registry.store.set_review, name, revision, rejected, expect=PENDING
                )
            except Exception as exc:
                with contextlib.suppress(ServiceError):
                    await self._abandon_review(
                        name, revision, digest, record, principal, f"it could not be stored ({exc})"
                    )
                raise
            if not stored:
                await self._abandon_review(
                    name, revision, digest, record, principal, _DECIDED_ELSEWHERE
                )
                raise Conflict(_decided_elsewhere(name, revision))
        self._changed("reject", name, revision, principal)
        try:
            routing = registry.routing(name)
        except UnknownRuleset:
            routing = None
        return _reviewed(name, revision, digest, rejected, routing)

    def _pending_review(self, name: str, revision: int, principal: Principal, verb: str) -> Review:
        """The review of a revision waiting for approval, which ``principal`` may decide:
        Conflict if it is not pending, Forbidden to the author who deployed it."""
        review = self.registry.review(name, revision)
        if review is None:
            raise Conflict(
                f"revision {revision} of ruleset {name!r} is not pending approval: it was "
                "deployed while approval was not required, so there is nothing to "
                f"{verb}"
            )
        if review.status != PENDING:
            raise Conflict(
                f"revision {revision} of ruleset {name!r} is not pending approval: "
                f"{review.decided_by!r} {review.status} it at {review.decided_at}"
            )
        if principal.name == review.deployed_by:
            raise Forbidden(
                f"revision {revision} of ruleset {name!r} was deployed by {principal.name!r}, "
                f"who cannot {verb} it: another author must"
            )
        return review

    def _may_serve(self, name: str, revision: int) -> int:
        """``revision`` if it may serve (activated, canaried, shadowed): Conflict if it is
        waiting for approval or was rejected."""
        review = self.registry.review(name, revision)
        if review is not None and review.status != APPROVED:
            raise Conflict(refusal(name, revision, review))
        return revision

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
        *,
        details_of: Callable[[], dict[str, Any]] | None = None,
        settle: Callable[[str], bool] | None = None,
    ) -> Served:
        """Plan a change of what serves ``name``, record it durably with the routing it
        makes, then apply it; the routing served after it.

        ``details_of`` adds what only the plan found out to the record; ``settle`` runs
        after the record and before the routing is applied (an approval marks the review
        approved there): False, or an error, and the change is recorded as abandoned."""
        registry = self.registry
        async with self._changing[name]:
            change = new_id()
            try:
                routing = await asyncio.to_thread(plan, change)
            except UnknownRuleset as exc:
                raise NotFound(str(exc)) from None
            except RulesetRetired as exc:
                raise Conflict(str(exc), title="Ruleset retired") from None
            routing = replace(
                routing, changed_by=principal.name, changed_at=utc_now(), action=action
            )
            extra = details_of() if details_of is not None else {}
            details = {**details, **extra, "routing": recorded_routing(routing)}
            await self._record(action, name, revision, digest, principal, details, change)
            if settle is not None:
                try:
                    settled = await asyncio.to_thread(settle, change)
                except Exception as exc:
                    with contextlib.suppress(ServiceError):
                        await self._abandon(
                            name, routing, principal, f"it could not be stored ({exc})"
                        )
                    raise
                if not settled:
                    await self._abandon(name, routing, principal, _DECIDED_ELSEWHERE)
                    raise Conflict(_decided_elsewhere(name, revision))
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

    async def _abandon_review(
        self, name: str, revision: int, digest: str, decision: str, principal: Principal, why: str
    ) -> None:
        actor = Actor(principal=principal.name, role=principal.role)
        await self.recorder.append(
            review_abandoned_record(name, revision, digest, decision, actor, why)
        )

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


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """A document the engine refuses, as the service's Refused: why, and every problem
    located (a deploy and a dry run refuse alike)."""
    try:
        yield
    except Untested as exc:
        raise Refused(
            "the document's tests guard nothing: "
            + "; ".join(p.message.split(":")[0] for p in exc.errors)
            + "; deploy it with allow_untested=true if that is meant",
            title="Deploy refused",
            errors=[p.to_dict() for p in exc.errors],
        ) from None
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


def provenance_view(stored: StoredRevision) -> dict[str, Any]:
    """Who deployed a revision, when and why, as answers show them (all null for a revision
    stored before they were kept)."""
    found = stored.provenance
    return {
        "deployed_by": found.deployed_by if found is not None else None,
        "deployed_at": found.deployed_at if found is not None else None,
        "message": found.message if found is not None else None,
    }


def pending_view(
    name: str,
    revisions: list[StoredRevision],
    reviews: dict[int, Review],
    active: int | None,
    principal: Principal | None,
) -> list[dict[str, Any]]:
    """The revisions of ``name`` waiting for approval, oldest first, as answers show them."""
    texts = {r.revision: r.text for r in revisions}
    out = []
    for stored in revisions:
        review = reviews.get(stored.revision)
        if review is None or review.status != PENDING:
            continue
        before = texts.get(active, "") if active is not None else ""
        diff = difflib.unified_diff(
            before.splitlines(),
            stored.text.splitlines(),
            fromfile=f"{name} revision {active}" if active is not None else "/dev/null",
            tofile=f"{name} revision {stored.revision}",
            lineterm="",
        )
        passed = sum(bool(t.get("passed")) for t in review.tests)
        out.append(
            {
                "revision": stored.revision,
                "digest": stored.digest,
                "status": PENDING,
                "deployed_by": review.deployed_by,
                "deployed_at": review.deployed_at,
                "against": active,
                "diff": "\n".join(diff),
                "tests": {"passed": passed, "failed": len(review.tests) - passed},
                "test_results": review.tests,
                "can_review": principal is not None
                and principal.role in REVIEWERS
                and principal.name != review.deployed_by,
            }
        )
    return out


CHANGES_SHOWN = 50  # the latest changes of routing a ruleset's detail lists

# Who may approve or reject a revision (the routes admit authors, and admins everywhere).
REVIEWERS = ("author", "admin")
_DECIDED_ELSEWHERE = "the revision was approved or rejected elsewhere at the same time"


def _decided_elsewhere(name: str, revision: int | None) -> str:
    return (
        f"revision {revision} of ruleset {name!r} was approved or rejected elsewhere at the "
        "same time; this decision was recorded as abandoned; read the ruleset"
    )


def refusal(name: str, revision: int, review: Review) -> str:
    """Why a revision waiting for approval, or rejected, cannot serve (nor decide)."""
    if review.status == PENDING:
        return (
            f"revision {revision} of ruleset {name!r} needs approval: it is pending until an "
            f"author other than {review.deployed_by!r}, who deployed it, approves it "
            f"(POST /v1/rulesets/{name}/revisions/{revision}/approve)"
        )
    why = f" ({review.reason})" if review.reason else ""
    return (
        f"revision {revision} of ruleset {name!r} was rejected by {review.decided_by!r}{why} "
        "and never serves; only an approved revision does: deploy a corrected document, "
        "which needs approval again"
    )


def _decided(review: Review) -> dict[str, Any]:
    """What a decision's record says of the review beside the decision itself."""
    found = {
        "deployed_by": review.deployed_by,
        "deployed_at": review.deployed_at,
        "deploy_record": review.deploy_record,
    }
    if review.reason is not None:
        found["reason"] = review.reason
    return found


def _review_view(review: Review) -> dict[str, Any]:
    return {
        "status": review.status,
        "deployed_by": review.deployed_by,
        "deployed_at": review.deployed_at,
        "decided_by": review.decided_by,
        "decided_at": review.decided_at,
        "reason": review.reason,
    }


def _reviewed(
    name: str, revision: int, digest: str, review: Review, routing: Served | None
) -> Reviewed:
    answer = {
        "name": name,
        "revision": revision,
        "digest": digest,
        **_review_view(review),
        **(routing_view(routing) if routing is not None else _NO_ROUTING),
    }
    return msgspec.convert(answer, Reviewed)


def complete_recorded_changes(
    registry: RulesetRegistry, ledger_dir: Path, instance: str, writer: LedgerWriter
) -> list[str]:
    """At start, before anything is served: for each ruleset, the last change this instance
    recorded is applied if it never was (the server stopped between its record and its
    store), or recorded as abandoned if another change took its place meanwhile; and an
    approval or rejection this instance recorded of a revision still pending is applied to
    its review. Returns one sentence per change settled (each also logged)."""
    reader = LedgerReader(ledger_dir)
    try:
        names = set(registry.names())
        last = _last_changes(reader, names, instance)
        pending = {
            (name, revision)
            for name in names
            for revision, review in registry.store.reviews(name).items()
            if review.status == PENDING
        }
        decisions = _recorded_decisions(reader, pending, instance) if pending else {}
    finally:
        reader.close()
    said = []
    for (name, revision), record in sorted(decisions.items()):
        said.extend(_complete_decision(registry, name, revision, record))
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


def _complete_decision(
    registry: RulesetRegistry, name: str, revision: int, record: LedgerRecord
) -> list[str]:
    """Apply a recorded approval or rejection to the review of a revision still pending."""
    review = registry.store.reviews(name).get(revision)
    if review is None or review.status != PENDING:
        return []
    approved = record.data.get("action") == "approve"
    who = record.actor.principal if record.actor is not None else ""
    reason = record.data.get("reason")
    decided = replace(
        review,
        status=APPROVED if approved else REJECTED,
        decided_by=who,
        decided_at=record.recorded_at,
        reason=reason if isinstance(reason, str) else None,
        decision_record=record.id,
    )
    if not registry.store.set_review(name, revision, decided, expect=PENDING):
        return []
    sentence = (
        f"ruleset {name!r}: the {'approval' if approved else 'rejection'} of revision "
        f"{revision} by {who} recorded as {record.id} had not taken effect when the server "
        "stopped; it is applied now"
    )
    log.warning(sentence)
    return [sentence]


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
            if _abandons_routing(record) or "routing" in record.data:
                found[name] = record
        if page.next_cursor is None:
            break
        query = LedgerQuery(kind="ruleset", limit=200, cursor=page.next_cursor)
    return found


def _abandons_routing(record: LedgerRecord) -> bool:
    """An ``abandoned`` record of a change of routing (one of a rejection names no version)."""
    return record.data.get("action") == "abandoned" and "version" in record.data


def _recorded_decisions(
    reader: LedgerReader, pending: set[tuple[str, int]], instance: str
) -> dict[tuple[str, int], LedgerRecord]:
    """For each pending (ruleset, revision), the approval or rejection of it this instance
    recorded and did not record as abandoned, if any. Newest first, until each one's
    decision or deploy record is found (nothing decides a revision before its deploy)."""
    found: dict[tuple[str, int], LedgerRecord] = {}
    open_ = set(pending)
    abandoned: set[str] = set()
    query = LedgerQuery(kind="ruleset", limit=200)
    while open_:
        page = reader.page(query)
        for record in page.records:
            action = record.data.get("action")
            if action == "abandoned" and isinstance(change := record.data.get("change"), str):
                abandoned.add(change)  # newer than the record it names: seen first
            ref = record.ruleset
            key = (ref.name, ref.revision) if ref is not None else None
            if key not in open_:
                continue
            if action == "deploy":
                open_.discard(key)
            elif (
                action in ("approve", "reject")
                and record.instance == instance
                and record.id not in abandoned
            ):
                found[key] = record
                open_.discard(key)
        if page.next_cursor is None:
            break
        query = LedgerQuery(kind="ruleset", limit=200, cursor=page.next_cursor)
    return found

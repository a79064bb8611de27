"""Four eyes (FRONTLINE_REQUIRE_APPROVAL=1), in the service layer: a deploy is stored pending
and serves nobody; only another author approves it, which is recorded before it takes effect,
as every change of what serves is; a rejected revision never serves; a decision recorded and
never applied (the server died in between) is applied at the next start."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from audit.writer import LedgerError
from engine import APPROVED, PENDING, REJECTED, Review, Routing
from server.keys import Principal
from server.schemas import DecisionRequest
from server.service.errors import Conflict, Forbidden, NotFound, Unavailable
from server.service.frontline import Frontline
from tests.support.service import run, running_service
from tests.unit.server.test_ruleset_changes import FIRST, SECOND, Killed, ruleset_records

ANN = Principal("ann", "author")
BOB = Principal("bob", "author")
AUDITOR = Principal("aud", "auditor")
AGENT = Principal("a-1", "agent")
APPROVAL = {"FRONTLINE_REQUIRE_APPROVAL": "1"}
THIRD = FIRST.replace(b"offer: credit", b"offer: third-credit")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Frontline]:
    with running_service(tmp_path, APPROVAL) as built:
        yield built


def pending_second(service: Frontline) -> None:
    """``tiny`` revision 1 active (deployed by ann, approved by bob), revision 2 deployed by
    ann and waiting for approval."""
    run(service, service.rulesets.deploy(FIRST, ANN))
    run(service, service.rulesets.approve("tiny", 1, BOB))
    done, created = run(service, service.rulesets.deploy(SECOND, ANN))
    assert created and done.status == PENDING and done.revision == 2


def test_a_deploy_is_stored_pending_and_serves_nobody(service: Frontline) -> None:
    done, created = run(service, service.rulesets.deploy(FIRST, ANN))
    assert created and done.status == PENDING and not done.activated
    assert [t.name for t in done.test_results] == ["gold gets the credit"]
    assert done.tests.passed == 1
    assert service.registry.active_revision("tiny") is None
    review = service.registry.review("tiny", 1)
    assert review is not None and review.status == PENDING and review.deployed_by == "ann"
    # Deployed again: the same pending revision, nothing recorded twice.
    again, created = run(service, service.rulesets.deploy(FIRST, ANN))
    assert not created and again.status == PENDING and again.revision == 1
    [record] = ruleset_records(service.audit.ledger_dir)
    assert record.data["action"] == "deploy" and record.data["status"] == PENDING
    assert record.actor is not None and record.actor.principal == "ann"
    assert record.id == review.deploy_record


def test_the_detail_shows_the_pending_revision_its_diff_and_its_tests(service: Frontline) -> None:
    pending_second(service)
    detail = service.rulesets.read("tiny", BOB)
    (pending,) = detail.pending
    assert (pending.revision, pending.status, pending.deployed_by) == (2, PENDING, "ann")
    assert pending.against == 1 and pending.can_review
    assert "-    offer: credit" in pending.diff and "+    offer: bigger-credit" in pending.diff
    assert pending.tests.passed == 1 and pending.test_results[0].passed
    assert not service.rulesets.read("tiny", ANN).pending[0].can_review
    assert not service.rulesets.read("tiny", AUDITOR).pending[0].can_review
    reviews = {r.revision: r.review for r in detail.revisions}
    assert reviews[1] is not None and reviews[1].status == APPROVED
    assert reviews[1].decided_by == "bob"
    assert reviews[2] is not None and reviews[2].status == PENDING
    (summary,) = [r for r in service.rulesets.list(BOB).rulesets if r.name == "tiny"]
    assert [p.revision for p in summary.pending] == [2]


def test_only_another_author_approves_and_approval_activates(service: Frontline) -> None:
    pending_second(service)
    with pytest.raises(Forbidden, match="deployed by 'ann', who cannot approve it"):
        run(service, service.rulesets.approve("tiny", 2, ANN))
    assert service.registry.active_revision("tiny") == 1
    approved = run(service, service.rulesets.approve("tiny", 2, BOB))
    assert approved.status == APPROVED and approved.decided_by == "bob"
    assert approved.active_revision == 2
    assert service.registry.route("tiny", "c-1")[0].revision == 2
    with pytest.raises(Conflict, match="not pending approval"):
        run(service, service.rulesets.approve("tiny", 2, BOB))
    *_, record = ruleset_records(service.audit.ledger_dir)
    assert record.data["action"] == "approve" and record.data["decision"] == APPROVED
    assert record.data["deployed_by"] == "ann" and record.data["routing"]["active"] == 2
    assert service.registry.routing("tiny").change == record.id
    review = service.registry.review("tiny", 2)
    assert review is not None and review.decision_record == record.id


def test_a_pending_or_rejected_revision_never_serves(service: Frontline) -> None:
    pending_second(service)
    rulesets = service.rulesets
    for attempt in (
        rulesets.activate("tiny", 2, ANN),
        rulesets.canary("tiny", 2, 50, ANN),
        rulesets.shadow("tiny", 2, ANN),
    ):
        with pytest.raises(Conflict, match="needs approval"):
            run(service, attempt)
    named = DecisionRequest(ruleset="tiny", customer_id="c-1", agent_id="a-1", revision=2)
    with pytest.raises(Conflict, match="needs approval"):
        run(service, service.decisions.decide(named, AGENT))
    rejected = run(service, rulesets.reject("tiny", 2, "offers too much", BOB))
    with pytest.raises(Conflict, match="rejected by 'bob'"):
        run(service, service.decisions.decide(named, AGENT))
    assert rejected.status == REJECTED and rejected.reason == "offers too much"
    for attempt in (
        rulesets.activate("tiny", 2, ANN),
        rulesets.canary("tiny", 2, 50, BOB),
        rulesets.approve("tiny", 2, BOB),
        rulesets.deploy(SECOND, ANN),
    ):
        with pytest.raises(Conflict):
            run(service, attempt)
    assert service.registry.routing("tiny").active == 1
    *_, record = ruleset_records(service.audit.ledger_dir)
    assert record.data["action"] == "reject" and record.data["reason"] == "offers too much"
    assert record.actor is not None and record.actor.principal == "bob"


def test_unknown_rulesets_and_revisions_are_not_found(service: Frontline) -> None:
    pending_second(service)
    for attempt in (
        service.rulesets.approve("tiny", 9, BOB),
        service.rulesets.reject("nothing", 1, None, BOB),
    ):
        with pytest.raises(NotFound):
            run(service, attempt)


def test_a_rollback_to_a_revision_that_served_is_allowed(service: Frontline) -> None:
    pending_second(service)
    run(service, service.rulesets.approve("tiny", 2, BOB))
    routing = run(service, service.rulesets.activate("tiny", 1, ANN))
    assert routing.active_revision == 1


def test_an_approval_the_ledger_cannot_record_changes_nothing(
    service: Frontline, monkeypatch: pytest.MonkeyPatch
) -> None:
    pending_second(service)

    async def refuse(record: object) -> None:
        raise LedgerError("the disk is full")

    monkeypatch.setattr(service.rulesets.recorder.writer, "append", refuse)
    for attempt in (
        service.rulesets.approve("tiny", 2, BOB),
        service.rulesets.reject("tiny", 2, None, BOB),
    ):
        with pytest.raises(Unavailable, match="could not be recorded"):
            run(service, attempt)
    review = service.registry.review("tiny", 2)
    assert review is not None and review.status == PENDING
    assert service.registry.routing("tiny").active == 1


def test_a_decision_made_elsewhere_first_is_recorded_abandoned(
    service: Frontline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another instance rejects the revision between this approval's record and its review
    write: the approval answers 409, is recorded as abandoned, and nothing of it serves."""
    pending_second(service)
    store = service.registry.store
    stored = store.set_review

    def overtaken(name: str, revision: int, review: Review, *, expect: str) -> bool:
        other = Review(status=REJECTED, deployed_by="ann", deployed_at="", decided_by="cy")
        assert stored(name, revision, other, expect=PENDING)
        return stored(name, revision, review, expect=expect)

    monkeypatch.setattr(store, "set_review", overtaken)
    with pytest.raises(Conflict, match="approved or rejected elsewhere"):
        run(service, service.rulesets.approve("tiny", 2, BOB))
    *_, approval, abandoned = ruleset_records(service.audit.ledger_dir)
    assert approval.data["action"] == "approve"
    assert abandoned.data["action"] == "abandoned" and abandoned.data["change"] == approval.id
    assert service.registry.routing("tiny").active == 1


@pytest.mark.parametrize("decision", [APPROVED, REJECTED])
def test_a_decision_recorded_and_never_applied_is_applied_at_the_next_start(
    tmp_path: Path, decision: str
) -> None:
    """A server killed after recording an approval (or rejection) and before writing the
    review: the next start applies it (and an approval's routing), in one sentence."""
    with running_service(tmp_path, APPROVAL) as service:
        pending_second(service)

        def die(name: str, revision: int, review: Review, *, expect: str) -> bool:
            raise Killed

        service.registry.store.set_review = die  # type: ignore[method-assign]
        if decision == APPROVED:
            decide = service.rulesets.approve("tiny", 2, BOB)
        else:
            decide = service.rulesets.reject("tiny", 2, "no", BOB)
        with pytest.raises(Killed):
            run(service, decide)
    record = ruleset_records(tmp_path / "ledger")[-1]
    assert record.data["action"] == ("approve" if decision == APPROVED else "reject")
    with structlog.testing.capture_logs() as logs, running_service(tmp_path, APPROVAL) as again:
        review = again.registry.review("tiny", 2)
        assert review is not None and review.status == decision
        assert review.decided_by == "bob" and review.decision_record == record.id
        assert again.registry.routing("tiny").active == (2 if decision == APPROVED else 1)
    said = [e["event"] for e in logs if record.id in e["event"]]
    what = "approval" if decision == APPROVED else "rejection"
    assert said[0] == (
        f"ruleset 'tiny': the {what} of revision 2 by bob recorded as {record.id} had not "
        "taken effect when the server stopped; it is applied now"
    )


def test_the_pending_state_survives_a_restart(tmp_path: Path) -> None:
    with running_service(tmp_path, APPROVAL) as service:
        pending_second(service)
    with running_service(tmp_path, APPROVAL) as again:
        (pending,) = again.rulesets.read("tiny", BOB).pending
        assert pending.revision == 2 and pending.deployed_by == "ann"
        assert again.registry.route("tiny", "c-1")[0].revision == 1
        run(again, again.rulesets.approve("tiny", 2, BOB))
        assert again.registry.route("tiny", "c-1")[0].revision == 2


def test_without_the_setting_deploys_serve_at_once(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        done, created = run(service, service.rulesets.deploy(FIRST, ANN))
        assert created and done.activated and done.status is None
        assert service.registry.review("tiny", 1) is None
        assert service.rulesets.read("tiny", BOB).pending == []
        with pytest.raises(Conflict, match="not pending approval"):
            run(service, service.rulesets.approve("tiny", 1, BOB))
        served = service.registry.routing("tiny")
        assert served == Routing(
            active=1,
            version=1,
            change=served.change,
            changed_by="ann",
            changed_at=served.changed_at,
            action="deploy",
        )

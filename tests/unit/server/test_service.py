"""The service layer without HTTP: each use case called directly on a service built by the
factory (embedded stores, a ledger in a temporary directory), its refusals as domain errors,
and the one rule for who may act on what."""

from __future__ import annotations

from typing import Any, TypeVar

import pytest

from audit.index import LedgerIndex
from audit.segments import SegmentLog
from server.keys import Principal
from server.schemas import DecisionRequest, InteractionRequest
from server.service.answers import DocumentProblem
from server.service.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Refused,
    TooLarge,
    Unavailable,
)
from server.service.frontline import Frontline
from tests.support.documents import TINY
from tests.support.service import run

T = TypeVar("T")

AGENT = Principal("a-1", "agent")
OTHER_AGENT = Principal("a-2", "agent")
AUTHOR = Principal("author-1", "author")
AUDITOR = Principal("auditor-1", "auditor")
INTEGRATION = Principal("crm", "integration")

DOCUMENT = TINY.encode()


def decision(**fields: Any) -> DecisionRequest:
    base: dict[str, Any] = {
        "ruleset": "retention-desk",
        "customer_id": "c-1",
        "agent_id": "a-1",
        "context": {"customer": {"tier": "gold", "tenure_months": 30}},
    }
    return DecisionRequest(**{**base, **fields})


def start(service: Frontline, principal: Principal = AGENT) -> str:
    """An interaction of agent a-1 with customer c-1 on retention-desk; its id."""
    started = run(
        service,
        service.decisions.start_interaction(
            InteractionRequest(ruleset="retention-desk", customer_id="c-1", agent_id="a-1"),
            principal,
        ),
    )
    return started["interaction_id"]


def test_a_decision_is_answered_and_recorded(service: Frontline) -> None:
    before = service.ledger.records
    answer = run(service, service.decisions.decide(decision(), AGENT))
    assert answer["decision_id"] and answer["customer_id"] == "c-1"
    assert answer["ruleset"] == "retention-desk"
    assert service.ledger.records == before + 1


def test_an_agent_acts_only_for_itself(service: Frontline) -> None:
    with pytest.raises(Forbidden, match="cannot act on agent 'a-1'"):
        run(service, service.decisions.decide(decision(), OTHER_AGENT))
    interaction = start(service)
    # Another agent can neither decide within that interaction nor end it ...
    pinned = decision(agent_id="a-2", interaction=interaction)
    with pytest.raises(Forbidden, match=f"interaction '{interaction}'"):
        run(service, service.decisions.decide(pinned, OTHER_AGENT))
    with pytest.raises(Forbidden):
        run(service, service.decisions.end_interaction(interaction, OTHER_AGENT))
    # ... nor read the customer's context, which the agent handling the customer may.
    run(service, service.customers.replace_context("c-1", {"customer": {}}, "crm", None))
    with pytest.raises(Forbidden, match="customer 'c-1'"):
        run(service, service.customers.read_context("c-1", OTHER_AGENT))
    assert run(service, service.customers.read_context("c-1", AGENT)).customer_id == "c-1"
    run(service, service.decisions.end_interaction(interaction, AGENT))
    with pytest.raises(Forbidden):  # no live interaction any more
        run(service, service.customers.read_context("c-1", AGENT))


def test_an_interaction_pins_its_customer_ruleset_and_revision(service: Frontline) -> None:
    interaction = start(service)
    with pytest.raises(Conflict, match="is about customer 'c-1'"):
        run(
            service,
            service.decisions.decide(decision(customer_id="c-2", interaction=interaction), AGENT),
        )
    with pytest.raises(Conflict, match="runs on revision 1, not 7"):
        run(
            service,
            service.decisions.decide(decision(interaction=interaction, revision=7), AGENT),
        )
    with pytest.raises(NotFound, match="no live interaction 'gone'"):
        run(service, service.decisions.decide(decision(interaction="gone"), AGENT))
    with pytest.raises(NotFound, match="no-such"):
        run(service, service.decisions.decide(decision(ruleset="no-such"), AGENT))


def test_rulesets_deploy_test_activate_and_roll_back(service: Frontline) -> None:
    rulesets = service.rulesets
    answer, created = run(service, rulesets.deploy(DOCUMENT, AUTHOR))
    assert created and answer.revision == 1 and (answer.tests.passed, answer.tests.failed) == (1, 0)
    second = DOCUMENT.replace(b"offer: credit", b"offer: bigger-credit")
    answer, created = run(service, rulesets.deploy(second, AUTHOR))
    assert created and answer.revision == 2 and answer.activated
    rolled = run(service, rulesets.activate("tiny", 1, AUTHOR))
    assert rolled.active_revision == 1
    assert [r.revision for r in rulesets.read("tiny").revisions] == [1, 2]
    assert rulesets.document("tiny", 2).document == second.decode()
    tests = run(service, rulesets.run_tests("tiny", 2))
    assert tests.passed == 1 and tests.tests[0].name == "gold gets the credit"


CREDIT_TABLE = """\
tables:
  - id: credit
    hit: {hit}
    inputs: [customer.tier]
    outputs: [amount]
    rows:
      - ["-", 5]
      - ['"gold"', 10]
"""


def test_a_deploy_answers_the_analysis_warnings_and_refuses_its_errors(
    service: Frontline,
) -> None:
    """A row of a first table that can never win deploys, its warning located in the answer;
    overlapping rows of a unique table refuse the deploy, located like every error."""
    rulesets = service.rulesets
    shadowed = DOCUMENT + CREDIT_TABLE.replace("{hit}", "first").encode()
    answer, created = run(service, rulesets.deploy(shadowed, AUTHOR))
    assert created and answer.activated
    row = shadowed.decode().splitlines().index("      - ['\"gold\"', 10]") + 1
    assert answer.warnings == [
        DocumentProblem(
            message="table 'credit' row 2 can never win: every input that matches it "
            "matches row 1 first",
            line=row,
            column=9,
            path="tables[0].rows[1]",
            file="<request>",
        )
    ]
    overlapping = DOCUMENT + CREDIT_TABLE.replace("{hit}", "unique").encode()
    with pytest.raises(Refused, match="1 error") as refused:
        run(service, rulesets.deploy(overlapping, AUTHOR))
    assert refused.value.title == "Invalid ruleset"
    assert refused.value.errors == [
        {
            "file": "<request>",
            "line": row,
            "column": 9,
            "path": "tables[0].rows[1]",
            "message": "table 'credit' rows 1 and 2 overlap: customer.tier = \"gold\" matches both",
        }
    ]
    assert rulesets.read("tiny").active_revision == answer.revision


def test_ruleset_refusals_say_what_is_wrong(service: Frontline) -> None:
    rulesets = service.rulesets
    with pytest.raises(Invalid, match="empty"):
        run(service, rulesets.deploy(b"  \n", AUTHOR))
    with pytest.raises(Invalid, match="not UTF-8"):
        run(service, rulesets.deploy(b"\xff\xfe", AUTHOR))
    with pytest.raises(TooLarge):
        rulesets.check_size(rulesets.max_document_bytes + 1)
    failing = DOCUMENT.replace(b"[gold-credit]", b"[]")
    with pytest.raises(Refused, match="own tests failed") as refused:
        run(service, rulesets.deploy(failing, AUTHOR))
    assert refused.value.errors
    with pytest.raises(Refused, match="error"):
        run(service, rulesets.deploy(b"ruleset: Bad Name\n", AUTHOR))
    with pytest.raises(NotFound):
        run(service, rulesets.activate("no-such", 1, AUTHOR))
    with pytest.raises(NotFound):
        rulesets.document("tiny", 9)


def test_context_writes_and_events_run_the_alert_rules(service: Frontline) -> None:
    customers = service.customers
    with pytest.raises(Invalid, match="as_of 'yesterday'"):
        run(service, customers.replace_context("c-1", {}, None, "yesterday"))
    with pytest.raises(Invalid, match="nests deeper"):
        deep: dict[str, Any] = {}
        for _ in range(40):
            deep = {"x": deep}
        run(service, customers.merge_context("c-1", deep, None, None))
    stored = run(
        service, customers.replace_context("c-1", {"customer": {"tier": "gold"}}, "crm", None)
    )
    assert stored.fields["customer.tier"].source == "crm"
    assert stored.alerts_raised == []  # no live interaction
    event = run(service, customers.record_event("c-1", "payment_failed", None))
    assert event.type == "payment_failed" and event.alerts_raised == []
    with pytest.raises(NotFound):
        run(service, customers.read_context("c-9", INTEGRATION))


def test_an_alert_is_acknowledged_only_by_its_agent(service: Frontline) -> None:
    with pytest.raises(NotFound):
        run(service, service.alerts.ack("x.rule", "acknowledged", None, AGENT))
    with pytest.raises(Invalid, match="outcome must be one of"):
        run(service, service.alerts.ack("x.rule", "maybe", None, AGENT))
    with pytest.raises(Forbidden):
        service.alerts.follow(OTHER_AGENT, "a-1", None)


def test_audit_reads_what_was_decided(service: Frontline) -> None:
    answer = run(service, service.decisions.decide(decision(), AGENT))
    index = LedgerIndex(service.audit.ledger_dir)
    index.catch_up(SegmentLog(service.audit.ledger_dir, "local", readonly=True))
    index.close()
    page = run(service, service.audit.page(service.audit.query(customer_id="c-1")))
    assert [r.id for r in page.records] == [answer["decision_id"]]
    read = run(service, service.audit.read(answer["decision_id"]))
    assert read.explanation.ruleset is not None
    assert read.explanation.ruleset.name == "retention-desk"
    assert run(service, service.audit.verify()).ok is True
    with pytest.raises(NotFound):
        run(service, service.audit.read("nothing"))
    with pytest.raises(Invalid, match="since 'soon'"):
        service.audit.query(since="soon")
    with pytest.raises(Refused, match="candidate has"):
        run(service, service.audit.replay("ruleset: X\n", since=None, until=None, examples=1))


def test_a_ledger_that_cannot_sync_makes_the_service_not_ready(
    service: Frontline, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert service.readiness() == []

    def refuse(fd: int) -> None:  # the disk refuses to sync, as a full or failing one does
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("audit.segments.os.fdatasync", refuse)
    with pytest.raises(Unavailable):
        run(service, service.decisions.decide(decision(), AGENT))
    problems = service.readiness()
    assert problems and "refused to sync" in problems[0], problems

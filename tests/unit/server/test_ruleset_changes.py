"""A change of what serves is recorded before it takes effect, and a recorded change that a
crash kept from taking effect takes effect at the next start."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import structlog

from adapters.files import FileRulesetStore
from audit.query import LedgerQuery, LedgerReader
from audit.record import LedgerRecord
from audit.writer import LedgerError
from engine import Routing
from server.keys import Principal
from server.service.errors import Conflict, Unavailable
from server.service.frontline import Frontline
from server.service.rulesets import complete_recorded_changes
from tests.support.documents import TINY
from tests.support.service import run, running_service

AUTHOR = Principal("author-1", "author")
FIRST = TINY.encode()
SECOND = FIRST.replace(b"offer: credit", b"offer: bigger-credit")

Change = Callable[[Frontline], Coroutine[Any, Any, Any]]


def activate_second(service: Frontline) -> Coroutine[Any, Any, Any]:
    return service.rulesets.activate("tiny", 2, AUTHOR)


CHANGES = [
    pytest.param(lambda s: s.rulesets.deploy(SECOND, AUTHOR), id="deploy"),
    pytest.param(activate_second, id="activate"),
    pytest.param(lambda s: s.rulesets.canary("tiny", 2, 30, AUTHOR), id="rollout"),
    pytest.param(lambda s: s.rulesets.shadow("tiny", 2, AUTHOR), id="shadow"),
    pytest.param(lambda s: s.rulesets.retire("tiny", "replaced", AUTHOR), id="retire"),
]


class Killed(BaseException):
    """The process dies here (nothing after it runs, nothing catches it)."""


def deployed(service: Frontline, *, second: bool) -> Routing:
    """``tiny`` with revision 1 active and, if ``second``, revision 2 stored but not served."""
    run(service, service.rulesets.deploy(FIRST, AUTHOR))
    if second:
        run(service, service.rulesets.deploy(SECOND, AUTHOR, activate=False))
    return service.registry.routing("tiny")


def ruleset_records(ledger_dir: Path, name: str = "tiny") -> list[LedgerRecord]:
    """Every ruleset record of ``name``, oldest first."""
    reader = LedgerReader(ledger_dir)
    try:
        return list(reversed(list(reader.iterate(LedgerQuery(kind="ruleset", ruleset=name)))))
    finally:
        reader.close()


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_is_durable_in_the_ledger_before_its_routing_is_stored(
    service: Frontline, change: Change, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the store is asked to serve a routing, the record of the change that makes it is
    already in the ledger, naming that routing."""
    deployed(service, second=True)
    store = service.registry.store
    stored = store.set_routing
    seen: list[LedgerRecord | None] = []

    def set_routing(name: str, routing: Routing) -> bool:
        reader = LedgerReader(service.audit.ledger_dir)
        try:
            seen.append(reader.get(routing.change))
        finally:
            reader.close()
        return stored(name, routing)

    monkeypatch.setattr(store, "set_routing", set_routing)
    run(service, change(service))
    [record] = seen
    assert record is not None and record.kind == "ruleset"
    routing = service.registry.routing("tiny")
    assert routing.change == record.id and routing.version == 2
    assert record.data["routing"] == {
        "active": routing.active,
        "canary": routing.canary,
        "percent": routing.percent,
        "shadow": routing.shadow,
        "version": routing.version,
        "changed_by": "author-1",
        "changed_at": routing.changed_at,
        "retired": routing.retired,
        "action": routing.action,
    }


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_the_ledger_cannot_record_is_refused_and_changes_nothing(
    service: Frontline, change: Change, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ledger that refuses the record makes the change answer unavailable, and the routing
    stays as it was, in the store and in what is served."""
    before = deployed(service, second=True)

    async def refuse(record: object) -> None:
        raise LedgerError("the disk is full")

    monkeypatch.setattr(service.rulesets.recorder.writer, "append", refuse)
    with pytest.raises(Unavailable, match="could not be recorded"):
        run(service, change(service))
    assert service.registry.store.get_routing("tiny") == before
    assert service.registry.served_routing("tiny") == before
    assert service.registry.route("tiny", "c-1")[0].revision == 1


def test_a_change_another_process_overtook_answers_409_and_is_recorded_abandoned(
    service: Frontline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process stores a routing of the same version first: this change is refused,
    recorded as abandoned, and what the other process stored serves."""
    deployed(service, second=True)
    store = service.registry.store
    stored = store.set_routing

    def overtaken(name: str, routing: Routing) -> bool:
        stored(name, Routing(active=1, shadow=2, version=routing.version, change="elsewhere"))
        return stored(name, routing)

    monkeypatch.setattr(store, "set_routing", overtaken)
    with pytest.raises(Conflict, match="changed elsewhere at the same time"):
        run(service, service.rulesets.activate("tiny", 2, AUTHOR))
    *_, change, abandoned = ruleset_records(service.audit.ledger_dir)
    assert change.data["action"] == "activate" and change.data["routing"]["active"] == 2
    assert abandoned.data["action"] == "abandoned" and abandoned.data["change"] == change.id
    assert service.registry.routing("tiny").change == "elsewhere"
    assert service.registry.active("tiny").revision == 1


def crash_during(tmp_path: Path, change: Change) -> LedgerRecord:
    """Run ``change`` on a service that dies between the change's record and its store;
    the record it left."""
    with running_service(tmp_path) as service:
        deployed(service, second=True)
        registry = service.registry

        def die(name: str, routing: Routing) -> bool:
            raise Killed

        registry.apply = die  # type: ignore[method-assign]
        with pytest.raises(Killed):
            run(service, change(service))
        stored = registry.store.get_routing("tiny")
        assert stored is not None and (stored.active, stored.version) == (1, 1)
    last = ruleset_records(tmp_path / "ledger")[-1]
    assert "routing" in last.data
    return last


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_recorded_and_never_stored_is_applied_at_the_next_start(
    tmp_path: Path, change: Change
) -> None:
    """A server killed after recording a change and before storing its routing: the next
    start serves the recorded routing, and says so in one sentence."""
    record = crash_during(tmp_path, change)
    with structlog.testing.capture_logs() as logs, running_service(tmp_path) as again:
        routing = again.registry.routing("tiny")
        assert routing.change == record.id
        assert again.registry.served_routing("tiny") == routing
        assert {
            "active": routing.active,
            "canary": routing.canary,
            "percent": routing.percent,
            "shadow": routing.shadow,
            "version": routing.version,
            "changed_by": "author-1",
            "changed_at": routing.changed_at,
            "retired": routing.retired,
            "action": routing.action,
        } == record.data["routing"]
    said = [e["event"] for e in logs if record.id in e["event"]]
    assert said == [
        f"ruleset 'tiny': the {record.data['action']} by author-1 recorded as {record.id} had "
        f"not taken effect when the server stopped; it is applied now (version 2)"
    ]
    with running_service(tmp_path) as third:  # applied once: a later start finds nothing to do
        assert third.registry.routing("tiny") == routing
    assert ruleset_records(tmp_path / "ledger")[-1].id == record.id


def test_a_recorded_change_another_instance_overtook_while_down_is_recorded_abandoned(
    tmp_path: Path,
) -> None:
    """If another instance changed the ruleset (to the same version) while the one that
    recorded a change was down, the recorded change is not applied over it: it is recorded
    as abandoned at the next start."""
    record = crash_during(tmp_path, activate_second)
    store = FileRulesetStore(tmp_path / "rulesets")  # as another instance sharing it would
    assert store.set_routing("tiny", Routing(active=1, shadow=2, version=2, change="elsewhere"))
    with running_service(tmp_path) as again:
        assert again.registry.routing("tiny").change == "elsewhere"
    last = ruleset_records(tmp_path / "ledger")[-1]
    assert last.data["action"] == "abandoned" and last.data["change"] == record.id


def test_records_of_another_instance_and_settled_changes_are_left_alone(
    tmp_path: Path,
) -> None:
    """Settling looks at this instance's records only, and a change already stored is not
    applied again."""
    with running_service(tmp_path) as service:
        deployed(service, second=True)
        run(service, service.rulesets.activate("tiny", 2, AUTHOR))
        routing = service.registry.routing("tiny")
        ledger_dir, ledger = service.audit.ledger_dir, service.ledger
        for instance in ("another-instance", ledger.instance):
            assert complete_recorded_changes(service.registry, ledger_dir, instance, ledger) == []
        assert service.registry.routing("tiny") == routing

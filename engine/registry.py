"""The revision registry: deploy (compile, test, store), activate, roll back.

    deploy(text) ──compile──▶ run the document's tests ──▶ store.put_revision ──▶ activate
                      │ RulesetError           │ DeployRefused
                      ▼                        ▼
                 nothing changes: the active revision keeps serving

A deploy's compile is strict: overlapping rows of a ``unique`` table refuse it. A stored
revision is compiled again (after a restart, or once let go) without that: it was accepted
when it was deployed, perhaps before the analysis existed, and must keep serving.

    a change of routing:  planned_activation / planned_rollout / planned_shadow
                          (the routing it would make, next version; nothing changes)
                          ──▶ the caller records it ──▶ apply (store, then serve)

A change is planned and applied in two steps so that a caller can make it durable elsewhere in
between (the service records it in the ledger first); ``activate``, ``rollout`` and ``shadow``
do both at once.

Compiled revisions are cached by (name, revision); activation swaps one dict entry, so a
reader sees the old revision or the new one, never a mix. Revisions are immutable: a stored
text always compiles to the same digest.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from engine.compiler import compile_ruleset
from engine.errors import DeployRefused, FrontlineError, Problem, StoreCorrupt, Untested
from engine.ports import Provenance, Review, Routing, RulesetStore, StoredRevision
from engine.ruleset import CompiledRuleset
from engine.testing import Coverage, TestResult


class UnknownRuleset(FrontlineError):
    """No such ruleset, or no such revision of it."""


class RulesetRetired(FrontlineError):
    """The ruleset was retired: it serves nobody until a revision is activated again."""

    def __init__(self, name: str, routing: Routing) -> None:
        when = f" at {routing.changed_at}" if routing.changed_at else ""
        who = f" by {routing.changed_by}" if routing.changed_by else ""
        super().__init__(
            f"ruleset {name!r} was retired{when}{who} ({routing.retired}) and serves no "
            "decisions; an author brings it back by activating a revision"
        )


class RoutingSuperseded(FrontlineError):
    """The store already holds a routing as new as the one being applied: another process
    changed the ruleset at the same time. Nothing of this change serves."""


@dataclass(frozen=True)
class Deployment:
    """What a deploy did: the revision it stored or found, and the document's test results."""

    name: str
    revision: int
    digest: str
    created: bool
    activated: bool
    tests: list[TestResult] = field(default_factory=list)
    # What the analysis found that refuses nothing, located (CompiledRuleset.warnings).
    warnings: tuple[Problem, ...] = ()
    # What the document's tests reached of it, and what they did not.
    coverage: Coverage = field(default_factory=lambda: Coverage.of(None, []))


@dataclass(frozen=True)
class Checked:
    """What a dry run of a deploy found: the document's name and digest, its tests' results,
    the analysis's warnings and its tests' coverage. Nothing was stored."""

    name: str
    digest: str
    tests: list[TestResult]
    warnings: tuple[Problem, ...]
    coverage: Coverage


# What a ruleset serves: its routing and the compiled active, canary and shadow revisions.
_State = tuple[Routing, CompiledRuleset, CompiledRuleset | None, CompiledRuleset | None]

KEEP_IDLE = 8  # compiled revisions kept beyond those being served


class RulesetRegistry:
    """Compiled revisions by name, over a RulesetStore. Safe to use from many threads."""

    def __init__(
        self,
        store: RulesetStore,
        *,
        keep_idle: int = KEEP_IDLE,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock  # times a deploy's tests against their budget, when given
        # Revisions compiled lately, the least recently used first. Those being served are
        # held by ``_state`` as well; of the others at most ``keep_idle`` stay compiled (a
        # large document's compiled form weighs megabytes), and one asked for again (by an
        # interaction that started on it) is compiled again from its stored text.
        self._compiled: OrderedDict[tuple[str, int], CompiledRuleset] = OrderedDict()
        self._keep_idle = keep_idle
        # name → (routing, active, canary, shadow), replaced whole on every change.
        self._state: dict[str, _State] = {}
        self._lock = threading.Lock()

    @property
    def store(self) -> RulesetStore:
        return self._store

    @property
    def compiled(self) -> int:
        """How many revisions are held compiled: those served, and at most ``keep_idle``
        more."""
        return len(self._compiled)

    def deploy(
        self,
        text: str | bytes,
        *,
        filename: str | None = None,
        activate: bool = True,
        review: Review | None = None,
        allow_untested: bool = True,
        provenance: Provenance | None = None,
    ) -> Deployment:
        """Compile and test ``text``, store it as a revision, and (by default) activate it.
        A new revision is stored with ``review``, if given (its tests' results filled in):
        one waiting for a second author's approval; and with ``provenance``: who deployed it,
        when and why.

        Raises RulesetError when it does not compile, DeployRefused when a test fails, and
        Untested when (without ``allow_untested``) the tests guard nothing; either way nothing
        is stored and the active revision is untouched.
        """
        compiled, results = self._checked(text, filename, allow_untested)
        source = text.decode("utf-8") if isinstance(text, bytes) else text
        if review is not None:
            review = replace(review, tests=[r.to_dict() for r in results])
        stored, created = self._store.put_revision(
            compiled.name, compiled.digest, source, review, provenance
        )
        compiled = self._remember(
            (stored.name, stored.revision), compiled.at_revision(stored.revision)
        )
        activated = False
        if activate and self.active_revision(stored.name) != stored.revision:
            self.activate(stored.name, stored.revision)
            activated = True
        return Deployment(
            stored.name,
            stored.revision,
            stored.digest,
            created,
            activated,
            results,
            (*compiled.warnings, *compiled.untested),
            Coverage.of(compiled.model, results),
        )

    def check(
        self, text: str | bytes, *, filename: str | None = None, allow_untested: bool = True
    ) -> Checked:
        """Everything a deploy of ``text`` does before it stores anything (compile, analyse,
        run its tests), and nothing after: a dry run. Raises what ``deploy`` raises."""
        compiled, results = self._checked(text, filename, allow_untested)
        return Checked(
            compiled.name,
            compiled.digest,
            results,
            (*compiled.warnings, *compiled.untested),
            Coverage.of(compiled.model, results),
        )

    def _checked(
        self, text: str | bytes, filename: str | None, allow_untested: bool
    ) -> tuple[CompiledRuleset, list[TestResult]]:
        """``text`` compiled strictly, and its tests' results: RulesetError, Untested or
        DeployRefused if it may not be deployed."""
        compiled = compile_ruleset(text, filename=filename)
        if compiled.untested and not allow_untested:
            raise Untested(list(compiled.untested))
        results = compiled.run_tests(self._clock)
        failed = [r for r in results if not r.passed]
        if failed:
            raise DeployRefused(
                [
                    Problem(f"test {r.name!r} failed: {'; '.join(r.failures)}", file=filename)
                    for r in failed
                ]
            )
        return compiled, results

    def get(self, name: str, revision: int) -> CompiledRuleset:
        """One revision, compiled from its stored text (once while it is served or used)."""
        state = self._state.get(name)
        if state is not None:
            for served in state[1:]:
                if served is not None and served.revision == revision:
                    return served
        with self._lock:
            found = self._compiled.get((name, revision))
            if found is not None:
                self._compiled.move_to_end((name, revision))
                return found
        stored = self._store.get_revision(name, revision)
        if stored is None:
            raise UnknownRuleset(f"ruleset {name!r} has no revision {revision}")
        compiled = compile_ruleset(stored.text, filename=f"{name}@{revision}", strict=False)
        if compiled.digest != stored.digest:
            raise StoreCorrupt(
                f"revision {revision} of ruleset {name!r} no longer matches its digest "
                f"{stored.digest}: its text was changed outside Frontline; restore it, or "
                "deploy the change as a new revision"
            )
        return self._remember((name, revision), compiled.at_revision(revision))

    def _remember(self, key: tuple[str, int], compiled: CompiledRuleset) -> CompiledRuleset:
        """Keep ``compiled`` (or the one another thread kept first); let the least recently
        used go beyond the revisions served and ``keep_idle`` others."""
        with self._lock:
            kept = self._compiled.setdefault(key, compiled)
            self._compiled.move_to_end(key)
            self._trim(key)
            return kept

    def _trim(self, keep: tuple[str, int] | None = None) -> None:
        """Let go of the least recently used compiled revisions beyond those served, ``keep``
        (just compiled, about to be served) and ``keep_idle`` others. Under the lock."""
        served = {
            (name, c.revision)
            for name, state in self._state.items()
            for c in state[1:]
            if c is not None
        }
        idle = [k for k in self._compiled if k not in served and k != keep]
        for old in idle[: max(0, len(idle) - self._keep_idle)]:
            del self._compiled[old]

    def planned_activation(self, name: str, revision: int, *, change: str = "") -> Routing:
        """The routing that makes ``revision`` the active one (also how a rollback is done);
        nothing changes until it is applied.

        A canary of another revision ends (its customers return to the active revision); a
        shadow keeps running unless it is the revision now activated.
        """
        self.get(name, revision)
        previous = self._store.get_routing(name)
        shadow = previous.shadow if previous and previous.shadow != revision else None
        return Routing(active=revision, shadow=shadow, version=_next(previous), change=change)

    def planned_retirement(self, name: str, reason: str, *, change: str = "") -> Routing:
        """The routing that retires ``name``: no canary, no shadow, nothing served; ``active``
        keeps the revision it served last. Activating a revision brings it back."""
        routing = self._routing(name)
        return Routing(routing.active, version=_next(routing), change=change, retired=reason)

    def planned_rollout(
        self, name: str, revision: int, percent: int, *, change: str = ""
    ) -> Routing:
        """The routing that serves ``revision`` to ``percent`` of the customers and the
        active one to the others. ``percent`` 0 ends the canary; 100 is the same as
        activating."""
        if not 0 <= percent <= 100:
            raise ValueError("percent must be between 0 and 100")
        if percent == 100:
            return self.planned_activation(name, revision, change=change)
        self.get(name, revision)
        routing = self._serving_routing(name)
        canary = revision if percent > 0 and revision != routing.active else None
        return Routing(
            routing.active,
            canary,
            percent if canary else 0,
            routing.shadow,
            version=_next(routing),
            change=change,
        )

    def planned_shadow(self, name: str, revision: int | None, *, change: str = "") -> Routing:
        """The routing that evaluates ``revision`` beside the served one on every decision
        (None stops the shadow)."""
        if revision is not None:
            self.get(name, revision)
        routing = self._serving_routing(name)
        return Routing(
            routing.active,
            routing.canary,
            routing.percent,
            revision,
            version=_next(routing),
            change=change,
        )

    def apply(self, name: str, routing: Routing) -> bool:
        """Store ``routing`` and serve it; False when the store holds a routing of its version
        or newer (another process's change came first: that one is served, this one never)."""
        state = self._compiled_state(name, routing)  # compiled before anything is written
        if self._store.set_routing(name, routing):
            self._swap(name, state)
            return True
        self.refresh(name)
        return False

    def activate(self, name: str, revision: int) -> CompiledRuleset:
        """Make ``revision`` the active one now (``planned_activation``, applied)."""
        self._apply(name, self.planned_activation(name, revision))
        return self.get(name, revision)

    def rollout(self, name: str, revision: int, percent: int) -> Routing:
        """Serve ``revision`` to ``percent`` of the customers now (``planned_rollout``,
        applied)."""
        return self._apply(name, self.planned_rollout(name, revision, percent))

    def shadow(self, name: str, revision: int | None) -> Routing:
        """Shadow ``revision`` now (``planned_shadow``, applied)."""
        return self._apply(name, self.planned_shadow(name, revision))

    def _apply(self, name: str, routing: Routing) -> Routing:
        if not self.apply(name, routing):
            raise RoutingSuperseded(
                f"ruleset {name!r} was changed elsewhere at the same time; nothing of this "
                "change serves"
            )
        return routing

    def routing(self, name: str) -> Routing:
        """Which revisions serve ``name`` now."""
        return self._routing(name)

    def route(self, name: str, customer_id: str) -> tuple[CompiledRuleset, CompiledRuleset | None]:
        """The revision that serves this customer, and the shadow revision, if any;
        RulesetRetired if the ruleset was retired."""
        routing, active, canary, shadow = self._served(name)
        if routing.retired is not None:
            raise RulesetRetired(name, routing)
        if canary is not None and in_canary(name, customer_id, routing.percent):
            return canary, shadow
        return active, shadow

    def refresh(self, name: str) -> CompiledRuleset | None:
        """Re-read the store's routing (another instance may have changed it)."""
        routing = self._store.get_routing(name)
        if routing is None:
            return None
        self._install(name, routing)
        return self._state[name][1]

    def served_routing(self, name: str) -> Routing | None:
        """The routing this registry serves now (the store's may be newer)."""
        state = self._state.get(name)
        return state[0] if state is not None else None

    def active(self, name: str) -> CompiledRuleset:
        """The active revision (what customers outside a canary get)."""
        return self._served(name)[1]

    def _served(self, name: str) -> _State:
        state = self._state.get(name)
        if state is None:
            self.refresh(name)
            state = self._state.get(name)
            if state is None:
                raise UnknownRuleset(f"no active revision of ruleset {name!r}")
        return state

    def check_serving(self, name: str) -> None:
        """RulesetRetired if ``name`` was retired (from memory once it is served here)."""
        try:
            routing = self._served(name)[0]
        except UnknownRuleset:
            return
        if routing.retired is not None:
            raise RulesetRetired(name, routing)

    def active_revision(self, name: str) -> int | None:
        state = self._state.get(name)
        if state is not None:
            return state[0].active
        routing = self._store.get_routing(name)
        return routing.active if routing is not None else None

    def serving(self) -> list[CompiledRuleset]:
        """Every revision this registry serves now (active, canary, shadow), from memory: no
        store is read."""
        found = []
        for _, active, canary, shadow in list(self._state.values()):
            found.append(active)
            found.extend(r for r in (canary, shadow) if r is not None)
        return found

    def names(self) -> list[str]:
        return self._store.names()

    def review(self, name: str, revision: int) -> Review | None:
        """The review of a revision deployed while approval was required (None otherwise)."""
        return self._store.reviews(name).get(revision)

    def revisions(self, name: str) -> list[StoredRevision]:
        found = self._store.revisions(name)
        if not found:
            raise UnknownRuleset(f"unknown ruleset {name!r}")
        return found

    def _routing(self, name: str) -> Routing:
        routing = self._store.get_routing(name)
        if routing is None:
            if not self._store.revisions(name):
                raise UnknownRuleset(f"unknown ruleset {name!r}")
            raise UnknownRuleset(f"ruleset {name!r} has no active revision")
        return routing

    def _serving_routing(self, name: str) -> Routing:
        """The stored routing of ``name``; RulesetRetired if it retires it (a canary or a
        shadow needs a revision served first)."""
        routing = self._routing(name)
        if routing.retired is not None:
            raise RulesetRetired(name, routing)
        return routing

    def _install(self, name: str, routing: Routing) -> None:
        self._swap(name, self._compiled_state(name, routing))

    def _compiled_state(self, name: str, routing: Routing) -> _State:
        return (
            routing,
            self.get(name, routing.active),
            self.get(name, routing.canary) if routing.canary is not None else None,
            self.get(name, routing.shadow) if routing.shadow is not None else None,
        )

    def _swap(self, name: str, state: _State) -> None:
        # Compiled first, then one dict entry swapped: a reader sees the old state or the new.
        self._state[name] = state
        with self._lock:
            self._trim()  # what this routing no longer serves may go


def _next(routing: Routing | None) -> int:
    """The version of the routing that follows ``routing``."""
    return (routing.version if routing is not None else 0) + 1


def in_canary(name: str, customer_id: str, percent: int) -> bool:
    """Whether a customer falls in a ruleset's canary: stable across calls and instances.

    The ruleset name salts the hash, so the canaries of two rulesets reach different customers.
    """
    if percent <= 0:
        return False
    digest = hashlib.sha256(f"{name}\x00{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100 < percent

"""The revision registry: deploy (compile, test, store), activate, roll back.

    deploy(text) ──compile──▶ run the document's tests ──▶ store.put_revision ──▶ activate
                      │ RulesetError           │ DeployRefused
                      ▼                        ▼
                 nothing changes: the active revision keeps serving

Compiled revisions are cached by (name, revision); activation swaps one dict entry, so a
reader sees the old revision or the new one, never a mix. Revisions are immutable: a stored
text always compiles to the same digest.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from engine.compiler import compile_ruleset
from engine.errors import DeployRefused, FrontlineError, Problem
from engine.ports import RulesetStore, StoredRevision
from engine.ruleset import CompiledRuleset
from engine.testing import TestResult


class UnknownRuleset(FrontlineError):
    """No such ruleset, or no such revision of it."""


@dataclass(frozen=True)
class Deployment:
    """What a deploy did: the revision it stored or found, and the document's test results."""

    name: str
    revision: int
    digest: str
    created: bool
    activated: bool
    tests: list[TestResult] = field(default_factory=list)


class RulesetRegistry:
    """Compiled revisions by name, over a RulesetStore. Safe to use from many threads."""

    def __init__(self, store: RulesetStore) -> None:
        self._store = store
        self._compiled: dict[tuple[str, int], CompiledRuleset] = {}
        self._active: dict[str, CompiledRuleset] = {}
        self._lock = threading.Lock()

    @property
    def store(self) -> RulesetStore:
        return self._store

    def deploy(
        self, text: str | bytes, *, filename: str | None = None, activate: bool = True
    ) -> Deployment:
        """Compile and test ``text``, store it as a revision, and (by default) activate it.

        Raises RulesetError when it does not compile and DeployRefused when a test fails;
        either way nothing is stored and the active revision is untouched.
        """
        compiled = compile_ruleset(text, filename=filename)
        results = compiled.run_tests()
        failed = [r for r in results if not r.passed]
        if failed:
            raise DeployRefused(
                [
                    Problem(f"test {r.name!r} failed: {'; '.join(r.failures)}", file=filename)
                    for r in failed
                ]
            )
        source = text.decode("utf-8") if isinstance(text, bytes) else text
        stored, created = self._store.put_revision(compiled.name, compiled.digest, source)
        compiled.revision = stored.revision
        with self._lock:
            compiled = self._compiled.setdefault((stored.name, stored.revision), compiled)
        activated = False
        if activate and self.active_revision(stored.name) != stored.revision:
            self.activate(stored.name, stored.revision)
            activated = True
        return Deployment(stored.name, stored.revision, stored.digest, created, activated, results)

    def get(self, name: str, revision: int) -> CompiledRuleset:
        """One revision, compiled (once) from its stored text."""
        found = self._compiled.get((name, revision))
        if found is not None:
            return found
        stored = self._store.get_revision(name, revision)
        if stored is None:
            raise UnknownRuleset(f"ruleset {name!r} has no revision {revision}")
        compiled = compile_ruleset(stored.text, filename=f"{name}@{revision}")
        compiled.revision = revision
        with self._lock:
            return self._compiled.setdefault((name, revision), compiled)

    def activate(self, name: str, revision: int) -> CompiledRuleset:
        """Make ``revision`` the active one (also how a rollback is done)."""
        compiled = self.get(name, revision)
        self._store.set_active(name, revision)
        self._active[name] = compiled
        return compiled

    def refresh(self, name: str) -> CompiledRuleset | None:
        """Re-read the store's active pointer (another instance may have moved it)."""
        revision = self._store.get_active(name)
        if revision is None:
            return None
        compiled = self.get(name, revision)
        self._active[name] = compiled
        return compiled

    def active(self, name: str) -> CompiledRuleset:
        found = self._active.get(name)
        if found is None:
            found = self.refresh(name)
        if found is None:
            raise UnknownRuleset(f"no active revision of ruleset {name!r}")
        return found

    def active_revision(self, name: str) -> int | None:
        found = self._active.get(name)
        return found.revision if found is not None else self._store.get_active(name)

    def names(self) -> list[str]:
        return self._store.names()

    def revisions(self, name: str) -> list[StoredRevision]:
        found = self._store.revisions(name)
        if not found:
            raise UnknownRuleset(f"unknown ruleset {name!r}")
        return found


class MemoryRulesetStore:
    """A RulesetStore in memory: the test double, and the store of a one-process setup."""

    def __init__(self) -> None:
        self._revisions: dict[str, list[StoredRevision]] = {}
        self._active: dict[str, int] = {}
        self._lock = threading.Lock()

    def put_revision(self, name: str, digest: str, text: str) -> tuple[StoredRevision, bool]:
        with self._lock:
            existing = self._revisions.setdefault(name, [])
            for stored in existing:
                if stored.digest == digest:
                    return stored, False
            stored = StoredRevision(name, len(existing) + 1, digest, text)
            existing.append(stored)
            return stored, True

    def get_revision(self, name: str, revision: int) -> StoredRevision | None:
        existing = self._revisions.get(name, [])
        return existing[revision - 1] if 0 < revision <= len(existing) else None

    def revisions(self, name: str) -> list[StoredRevision]:
        return list(self._revisions.get(name, []))

    def names(self) -> list[str]:
        return sorted(self._revisions)

    def set_active(self, name: str, revision: int) -> None:
        self._active[name] = revision

    def get_active(self, name: str) -> int | None:
        return self._active.get(name)

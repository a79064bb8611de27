"""The RulesetStore contract, run against every implementation."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from adapters.files import FileRulesetStore
from adapters.memory import MemoryRulesetStore
from adapters.redis import RedisRulesetStore
from engine import (
    APPROVED,
    PENDING,
    REJECTED,
    Provenance,
    Review,
    Routing,
    RulesetStore,
    StoredRevision,
)
from tests.support.redis import URL


@pytest.fixture(params=["memory", "file", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RulesetStore]:
    if request.param == "memory":
        yield MemoryRulesetStore()
    elif request.param == "file":
        yield FileRulesetStore(tmp_path / "rulesets")
    else:
        client = redis.Redis.from_url(URL)
        yield RedisRulesetStore(client, prefix=request.getfixturevalue("redis_prefix"))
        client.close()


def test_a_distinct_digest_is_a_new_revision_and_a_repeated_one_is_not(
    store: RulesetStore,
) -> None:
    first, created = store.put_revision("desk", "sha256:a", "ruleset: desk  # a\n")
    assert (first.revision, created) == (1, True)
    again, created = store.put_revision("desk", "sha256:a", "ruleset: desk  # a\n")
    assert (again.revision, created) == (1, False)
    second, created = store.put_revision("desk", "sha256:b", "ruleset: desk  # b\n")
    assert (second.revision, created) == (2, True)
    assert [r.revision for r in store.revisions("desk")] == [1, 2]
    stored = store.get_revision("desk", 2)
    assert stored is not None and stored.text == "ruleset: desk  # b\n"
    assert stored.digest == "sha256:b"
    assert store.get_revision("desk", 3) is None
    assert store.get_revision("other", 1) is None
    assert store.revisions("other") == []
    assert store.names() == ["desk"]


def test_text_is_kept_verbatim(store: RulesetStore) -> None:
    text = "# comment ünïcode\nruleset: desk\r\n\ttabs: kept\n"
    store.put_revision("desk", "sha256:x", text)
    stored = store.get_revision("desk", 1)
    assert stored is not None and stored.text == text


def test_routing_is_replaced_whole(store: RulesetStore) -> None:
    store.put_revision("desk", "sha256:a", "a")
    store.put_revision("desk", "sha256:b", "b")
    assert store.get_routing("desk") is None
    first = Routing(active=1, canary=2, percent=10, shadow=None, version=1, change="r-1")
    assert store.set_routing("desk", first)
    assert store.get_routing("desk") == first
    assert store.set_routing("desk", Routing(active=2, version=2))
    assert store.get_routing("desk") == Routing(2, version=2)


@pytest.mark.parametrize("version", [pytest.param(1, id="older"), pytest.param(2, id="same")])
def test_a_routing_never_replaces_one_of_its_version_or_newer(
    store: RulesetStore, version: int
) -> None:
    store.put_revision("desk", "sha256:a", "a")
    newer = Routing(active=1, version=2, change="r-2")
    assert store.set_routing("desk", newer)
    assert not store.set_routing("desk", Routing(active=1, shadow=1, version=version))
    assert store.get_routing("desk") == newer


def test_concurrent_routings_of_one_version_store_one(store: RulesetStore) -> None:
    """Two changes planned from the same routing: the store takes exactly one of them."""
    store.put_revision("desk", "sha256:a", "a")
    won: list[str] = []

    def put(change: str) -> None:
        if store.set_routing("desk", Routing(active=1, version=1, change=change)):
            won.append(change)

    threads = [threading.Thread(target=put, args=(f"r-{n}",)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    stored = store.get_routing("desk")
    assert stored is not None and stored.change == won[0]


def test_concurrent_deploys_of_one_digest_make_one_revision(store: RulesetStore) -> None:
    results: list[int] = []

    def put() -> None:
        stored, _ = store.put_revision("desk", "sha256:same", "text")
        results.append(stored.revision)

    threads = [threading.Thread(target=put) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [1] * 16
    assert len(store.revisions("desk")) == 1


def test_names_that_could_not_be_rulesets_are_simply_absent(store: RulesetStore) -> None:
    for name in ("../etc", "A B", "", "x" * 200):
        assert store.revisions(name) == []
        assert store.get_revision(name, 1) is None
        assert store.get_routing(name) is None


PENDING_REVIEW = Review(
    status=PENDING,
    deployed_by="ann",
    deployed_at="2026-11-01T10:00:00.000Z",
    deploy_record="r-deploy",
    tests=[{"name": "gold gets the credit", "passed": True, "failures": []}],
)


def test_a_revision_is_stored_with_its_review_and_only_a_new_one(store: RulesetStore) -> None:
    store.put_revision("desk", "sha256:a", "a")
    _, created = store.put_revision("desk", "sha256:b", "b", PENDING_REVIEW)
    assert created
    assert store.reviews("desk") == {2: PENDING_REVIEW}
    # The same digest again: the revision keeps the review it was deployed with.
    again, created = store.put_revision("desk", "sha256:a", "a", PENDING_REVIEW)
    assert (again.revision, created) == (1, False)
    assert store.reviews("desk") == {2: PENDING_REVIEW}
    assert store.reviews("other") == {}


def test_a_review_is_replaced_only_from_the_status_expected(store: RulesetStore) -> None:
    store.put_revision("desk", "sha256:a", "a", PENDING_REVIEW)
    store.put_revision("desk", "sha256:b", "b")
    approved = replace(PENDING_REVIEW, status=APPROVED, decided_by="bob")
    rejected = replace(PENDING_REVIEW, status=REJECTED, reason="no")
    assert not store.set_review("desk", 2, approved, expect=PENDING)  # it has none
    assert not store.set_review("desk", 3, approved, expect=PENDING)  # no such revision
    assert not store.set_review("other", 1, approved, expect=PENDING)
    assert store.set_review("desk", 1, approved, expect=PENDING)
    assert not store.set_review("desk", 1, rejected, expect=PENDING)
    assert store.reviews("desk") == {1: approved}


def test_concurrent_decisions_on_one_review_store_one(store: RulesetStore) -> None:
    """Two authors decide the same pending revision at once: exactly one decision holds."""
    store.put_revision("desk", "sha256:a", "a", PENDING_REVIEW)
    won: list[str] = []

    def decide(who: str) -> None:
        review = replace(PENDING_REVIEW, status=APPROVED, decided_by=who)
        if store.set_review("desk", 1, review, expect=PENDING):
            won.append(who)

    threads = [threading.Thread(target=decide, args=(f"author-{n}",)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    assert store.reviews("desk")[1].decided_by == won[0]


def test_the_file_store_ignores_a_review_left_by_a_cut_write(tmp_path: Path) -> None:
    """A review written for a revision whose list was never written is not that revision's,
    and the next revision of that number replaces it (or drops it, having none)."""
    root = tmp_path / "rulesets"
    store = FileRulesetStore(root)
    store.put_revision("desk", "sha256:a", "a")
    store._write_reviews("desk", {2: PENDING_REVIEW})  # as a write cut short would leave it
    assert store.reviews("desk") == {}
    store.put_revision("desk", "sha256:b", "b")
    assert store.reviews("desk") == {}
    assert store._reviews("desk") == {}


def test_a_revision_keeps_who_deployed_it_when_and_why(store: RulesetStore) -> None:
    """A new revision is stored with its provenance; deploying its digest again keeps the
    first one's; a retiring routing is kept whole with who made it."""
    told = Provenance("ann", "2026-12-05T02:00:00.000000Z", "credit for gold")
    stored, _ = store.put_revision("desk", "sha256:a", "a", None, told)
    assert stored.provenance == told
    again, created = store.put_revision("desk", "sha256:a", "a", None, Provenance("bob", "x"))
    assert not created and again.provenance == told
    store.put_revision("desk", "sha256:b", "b")
    assert [r.provenance for r in store.revisions("desk")] == [told, None]
    found = store.get_revision("desk", 1)
    assert found is not None and found.provenance == told
    retired = Routing(1, version=1, changed_by="ann", changed_at="t", retired="replaced")
    assert store.set_routing("desk", retired)
    assert store.get_routing("desk") == retired


def test_every_routing_stored_is_kept_in_the_history(store: RulesetStore) -> None:
    """Each routing a store replaces is kept, newest first; one refused (not newer) is not;
    ``limit`` gives the latest."""
    store.put_revision("desk", "sha256:a", "a")
    assert store.history("desk") == []
    made = [
        Routing(1, version=1, changed_by="ann", changed_at="t1", action="deploy"),
        Routing(1, shadow=1, version=2, changed_by="bob", changed_at="t2", action="shadow"),
        Routing(1, version=3, changed_by="ann", changed_at="t3", action="retire", retired="x"),
    ]
    for routing in made:
        assert store.set_routing("desk", routing)
    assert not store.set_routing("desk", Routing(1, version=2))
    assert store.history("desk") == made[::-1]
    assert store.history("desk", limit=2) == made[:0:-1]
    assert store.history("other") == []


def test_the_file_store_skips_a_history_line_a_crash_cut_short(tmp_path: Path) -> None:
    root = tmp_path / "rulesets"
    store = FileRulesetStore(root)
    store.put_revision("desk", "sha256:a", "a")
    assert store.set_routing("desk", Routing(1, version=1))
    with open(root / "desk" / "history.jsonl", "ab") as history:
        history.write(b'{"active": 1, "vers')
    assert store.set_routing("desk", Routing(1, shadow=1, version=2))
    assert store.history("desk") == [Routing(1, shadow=1, version=2), Routing(1, version=1)]


def test_revisions_stored_before_provenance_was_kept_still_load(
    tmp_path: Path, redis_prefix: str
) -> None:
    """A file store's revision list and a Redis revision body of an earlier release (digest
    and text only) read as revisions without provenance."""
    root = tmp_path / "rulesets"
    (root / "desk").mkdir(parents=True)
    (root / "desk" / "1.txt").write_text("a")
    (root / "desk" / "revisions.json").write_text('[{"revision": 1, "digest": "sha256:a"}]')
    client = redis.Redis.from_url(URL)
    client.hset(f"{redis_prefix}ruleset:desk:digests", "sha256:a", 1)
    client.set(f"{redis_prefix}ruleset:desk:revision:1", b'{"digest":"sha256:a","text":"a"}')
    for store in (FileRulesetStore(root), RedisRulesetStore(client, prefix=redis_prefix)):
        assert store.revisions("desk") == [StoredRevision("desk", 1, "sha256:a", "a")]
    client.close()


def test_the_file_store_keeps_everything_across_restarts(tmp_path: Path) -> None:
    root = tmp_path / "rulesets"
    first = FileRulesetStore(root)
    first.put_revision("desk", "sha256:a", "a")
    first.set_routing("desk", Routing(active=1, shadow=1, version=1))
    first.put_revision("desk", "sha256:b", "b", PENDING_REVIEW)
    again = FileRulesetStore(root)
    assert [r.text for r in again.revisions("desk")] == ["a", "b"]
    assert again.get_routing("desk") == Routing(active=1, shadow=1, version=1)
    assert again.reviews("desk") == {2: PENDING_REVIEW}


def test_a_routing_written_before_versions_reads_as_version_0(tmp_path: Path) -> None:
    """routing.json of an earlier release (no version, no change) is read, and replaced by
    the first versioned change."""
    root = tmp_path / "rulesets"
    store = FileRulesetStore(root)
    store.put_revision("desk", "sha256:a", "a")
    (root / "desk" / "routing.json").write_text('{"active": 1, "canary": null, "percent": 0}')
    assert store.get_routing("desk") == Routing(active=1, version=0, change="")
    assert store.set_routing("desk", Routing(active=1, shadow=1, version=1))


def test_the_redis_store_reads_a_routing_written_before_versions(redis_prefix: str) -> None:
    client = redis.Redis.from_url(URL)
    store = RedisRulesetStore(client, prefix=redis_prefix)
    client.set(f"{redis_prefix}ruleset:desk:routing", b'{"active": 1, "shadow": null}')
    assert store.get_routing("desk") == Routing(active=1)
    assert store.set_routing("desk", Routing(active=1, shadow=1, version=1))
    assert store.get_routing("desk") == Routing(active=1, shadow=1, version=1)
    client.close()


def test_the_redis_store_announces_each_routing_change(redis_prefix: str) -> None:
    client = redis.Redis.from_url(URL)
    store = RedisRulesetStore(client, prefix=redis_prefix)
    listener = client.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(store.channel)
    store.put_revision("desk", "sha256:a", "a")
    store.set_routing("desk", Routing(active=1, version=1))
    message = None
    for _ in range(50):
        message = listener.get_message(timeout=0.1)
        if message is not None:
            break
    assert message is not None and message["data"] == b"desk"
    listener.close()
    client.close()

"""Builds the service once, from the settings: every part constructed with what it needs,
nothing patched on afterwards.

    ruleset store (files, or Redis) ─ registry (starter library on first start)
    ─ ledger writer (segments under the data directory) ─ its indexer process
    ─ with PostgreSQL: the shipper of the segments
    ─ context, counters, interactions, alert claims (in process, or Redis with REDIS_URL),
      a context source in front when FRONTLINE_CONTEXT_SOURCE_URL is set
    ─ the decision reads over them (one Redis round trip)
    ─ the alert bus (in process, or Redis streams) ─ recorder ─ alerts
    ─ decisions, customers, rulesets, audit ─ Frontline
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import shutil
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import structlog

from adapters.alertbus import MemoryAlertBus, RedisAlertBus
from adapters.files import FileRulesetStore, write_file
from adapters.memory import (
    MemoryAlertStore,
    MemoryContextStore,
    MemoryEventCounters,
    MemoryInteractions,
    MemoryTimers,
)
from adapters.ports import (
    AlertBus,
    AlertStore,
    ContextStore,
    DecisionReads,
    EventCounters,
    InteractionStore,
    TimerStore,
)
from adapters.reads import StoreByStore
from adapters.redis import (
    RedisAlertStore,
    RedisContextStore,
    RedisDecisionReads,
    RedisEventCounters,
    RedisInteractions,
    RedisRulesetStore,
    RedisTimers,
)
from adapters.source import HttpContextSource, SourcedContextStore
from audit.indexer import IndexFollower
from audit.masking import Masker
from audit.migrate import migrate
from audit.postgres import PostgresLedgerStore
from audit.record import hash_text
from audit.recording import ruleset_record
from audit.segments import Frame, SegmentLog, check_log, instances
from audit.shipper import LedgerShipper
from audit.signing import SigningKeyError, load_signer
from audit.writer import LedgerError, LedgerTampered, LedgerWriter, TreeRebuild, save_tree, utc_now
from engine import (
    Deployment,
    Provenance,
    RulesetError,
    RulesetRegistry,
    RulesetStore,
    StoreWriteFailed,
)
from server.ids import new_id
from server.metrics import Metrics
from server.service.alerts import Alerting
from server.service.audit import Audit
from server.service.customers import Customers
from server.service.decisions import Decisions
from server.service.frontline import Frontline
from server.service.recorder import Recorder
from server.service.rulesets import (
    Rulesets,
    abandoned_record,
    complete_recorded_changes,
    recorded_routing,
)
from server.service.timers import Timers
from server.settings import Settings

log = structlog.get_logger("frontline")


def masking_key(settings: Settings) -> bytes:
    """The configured key, or one created on first start and kept under the data directory."""
    if settings.masking_key is not None:
        return settings.masking_key
    path = settings.data_dir / "masking.key"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Whole or not at all: a key cut short by a full disk would mask with a weaker key.
        with contextlib.suppress(FileExistsError):  # another worker created it first
            write_file(path, secrets.token_bytes(32), replace=False)
    return path.read_bytes()


def seed_starter_rulesets(
    registry: RulesetRegistry, directory: Path, ledger: LedgerWriter
) -> list[Deployment]:
    """Deploy every document of ``directory`` into an empty registry, each activation recorded
    before it is applied (as every change is); return the deployments."""
    done = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            deployed = registry.deploy(
                path.read_text(encoding="utf-8"),
                filename=str(path),
                activate=False,
                provenance=Provenance(None, utc_now(), f"the starter library: {path.name}"),
            )
        except RulesetError as exc:
            log.error("starter ruleset refused", file=str(path), error=str(exc.errors[0]))
            continue
        done.append(deployed)
        if not deployed.created:
            continue  # another instance seeded it first, and activates it
        change = new_id()
        routing = replace(
            registry.planned_activation(deployed.name, deployed.revision, change=change),
            changed_at=utc_now(),
            action="deploy",
        )
        ledger.append_blocking(
            ruleset_record(
                record_id=change,
                action="deploy",
                name=deployed.name,
                revision=deployed.revision,
                digest=deployed.digest,
                actor=None,
                details={
                    "starter": True,
                    "activated": True,
                    "routing": recorded_routing(routing),
                },
            )
        )
        if not registry.apply(deployed.name, routing):
            reason = "another change of the ruleset came first"
            ledger.append_blocking(abandoned_record(deployed.name, routing, None, reason))
    return done


def redis_client(url: str, timeout: float | None = None) -> Any:
    """An asyncio Redis client; ``timeout`` bounds each command (None: the stream readers,
    which block on purpose)."""
    import redis.asyncio

    return redis.asyncio.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout or 2.0
    )


def preflight(settings: Settings) -> None:
    """Read what a server reads as it starts (on the embedded default each ruleset's routing,
    the revisions it serves, digests checked, and their reviews; every instance's ledger
    segments, each frame's hash and each signed tree head checked) and raise StoreCorrupt, LogError,
    LedgerTampered or SigningKeyError, in one sentence naming the file or record, if any of
    it is damaged."""
    rulesets = settings.data_dir / "rulesets"
    if not settings.redis_url and rulesets.is_dir():
        registry = RulesetRegistry(FileRulesetStore(rulesets), clock=time.monotonic)
        for name in registry.names():
            registry.refresh(name)
            registry.store.reviews(name)
    try:
        own = load_signer(settings.signing_key_path, create=False)[0].public_key
    except SigningKeyError:
        own = None  # no key yet: a log holding signed heads is refused below
    for instance in instances(settings.ledger_dir):
        # One read of every frame: damage, and the tree heads signed with this data
        # directory's key (every worker's instance signs with it).
        heads = TreeRebuild(instance, own, settings.ledger_dir / instance) if own else None
        signed = False

        def each(frame: Frame, heads: TreeRebuild | None = heads) -> None:
            nonlocal signed
            if heads is not None:
                heads.feed(frame.seq, frame.body, frame.leaf)
            elif not signed and b'"tree_head"' in frame.body:
                signed = True

        check_log(settings.ledger_dir / instance, each)
        if heads is not None and heads.lacking is None:
            log = SegmentLog(settings.ledger_dir, instance, readonly=True)
            try:
                save_tree(settings.ledger_dir / instance, log.head(), heads)
            finally:
                log.close()
        if signed:
            raise SigningKeyError(
                f"{settings.signing_key_path}: no signing key there, but the ledger of "
                f"instance {instance} holds signed tree heads; restore the key file, or "
                "set FRONTLINE_SIGNING_KEY to it"
            )
    if settings.database_url:
        check_shipped(settings)


def check_shipped(settings: Settings) -> None:
    """With PostgreSQL, the log here must still hold every record of this instance that was
    shipped there: LedgerTampered, in one sentence, if it was removed, cut or rewritten.
    PostgreSQL out of reach is no reason not to start (the shipper retries); it is logged."""
    assert settings.database_url is not None
    try:
        shipped = PostgresLedgerStore(settings.database_url, settings.instance)
    except psycopg.Error as exc:
        log.warning("the shipped ledger was not compared", error=str(exc).strip())
        return
    try:
        seq, hash = shipped.head()
    finally:
        shipped.close()
    if seq == 0:
        return
    instance = settings.instance
    held, found = 0, None
    if (settings.ledger_dir / instance).is_dir():
        local = SegmentLog(settings.ledger_dir, instance, readonly=True)
        try:
            held = local.head()[0]
            found = next(local.frames(after_seq=seq - 1), None)
        finally:
            local.close()
    if held < seq or found is None:
        raise LedgerTampered(
            f"PostgreSQL holds {seq} records of instance {instance}, but its log in "
            f"{settings.ledger_dir / instance} holds {held}: the log was removed or its tail "
            "cut; restore it from a backup (a new server needs its own FRONTLINE_INSTANCE)"
        )
    if hash_text(found.leaf) != hash:
        raise LedgerTampered(
            f"record {seq} of instance {instance} in {settings.ledger_dir / instance} is not "
            "the record PostgreSQL holds: the log was rewritten; restore it from a backup"
        )


def open_ledger(settings: Settings) -> tuple[RulesetRegistry, LedgerWriter]:
    """The registry and the ledger writer; on first start the starter rulesets are deployed
    and their deploys recorded. Enough for the first-start work of several workers."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store: RulesetStore
    if settings.redis_url:
        import redis

        store = RedisRulesetStore(
            redis.Redis.from_url(settings.redis_url), prefix=settings.redis_prefix
        )
    else:
        store = FileRulesetStore(settings.data_dir / "rulesets")
    registry = RulesetRegistry(store, clock=time.monotonic)
    starters = settings.starter_rulesets
    seeding = starters is not None and not store.names()
    migrate(settings.data_dir, settings.ledger_dir)  # a ledger of the earlier layout, once
    signer, _ = load_signer(settings.signing_key_path, create=settings.signing_key is None)
    ledger = LedgerWriter(
        SegmentLog(settings.ledger_dir, settings.instance),
        max_pending=settings.ledger_max_pending,
        wait_timeout=settings.ledger_wait.total_seconds(),
        signer=signer,
    )
    try:
        if starters is not None and seeding:
            seed_starter_rulesets(registry, starters, ledger)
    except (StoreWriteFailed, LedgerError):
        ledger.close()
        ledger.store.close()
        if isinstance(store, FileRulesetStore):
            # It was empty: without what this start stored (unrecorded, or a part of the
            # starters), the next start seeds it again, whole.
            shutil.rmtree(store.root, ignore_errors=True)
        raise
    # The ledger's torn last write is cut by now: a change whose record is durable and whose
    # routing was never stored (the server died in between) takes effect before anything
    # is served.
    complete_recorded_changes(registry, settings.ledger_dir, settings.instance, ledger)
    for name in registry.names():
        registry.refresh(name)
    return registry, ledger


def first_start(settings: Settings) -> None:
    """Create what the first server on a data directory needs (the masking key, the starter
    rulesets and their records) before anything listens: so workers never race to create
    them, and a disk that cannot take them stops ``frontline serve`` with one sentence. With
    several workers it is done here every time, and worker 0's chain records it."""
    first = settings
    if settings.workers > 1:
        first = dataclasses.replace(settings, instance=f"{settings.instance}-0")
    elif settings.redis_url or (settings.data_dir / "rulesets").is_dir():
        return  # one worker: its own start does the rest (opening the store once)
    masking_key(first)
    ledger = open_ledger(first)[1]
    ledger.close()
    ledger.store.close()  # let go of the log's lock: the server's own start takes it


@dataclass(frozen=True)
class _Stores:
    contexts: ContextStore
    counters: EventCounters
    interactions: InteractionStore
    reads: DecisionReads
    alerts: AlertStore
    timers: TimerStore


def _stores(settings: Settings) -> _Stores:
    if settings.redis_url:
        client = redis_client(settings.redis_url, timeout=settings.redis_timeout)
        prefix = settings.redis_prefix
        shared = RedisContextStore(
            client, prefix=prefix, cache_ttl=settings.context_cache_ttl, ttl=settings.context_ttl
        )
        events = RedisEventCounters(client, prefix=prefix)
        live = RedisInteractions(client, prefix=prefix)
        contexts: ContextStore = shared
        counters: EventCounters = events
        interactions: InteractionStore = live
        reads: DecisionReads = RedisDecisionReads(client, shared, events, live)
        alerts: AlertStore = RedisAlertStore(client, prefix=prefix, retain=settings.alert_retain)
        timers: TimerStore = RedisTimers(client, prefix=prefix)
    else:
        contexts = MemoryContextStore()
        counters = MemoryEventCounters()
        interactions = MemoryInteractions()
        alerts = MemoryAlertStore()
        timers = MemoryTimers()
    if settings.context_source_url:
        contexts = SourcedContextStore(
            contexts,
            HttpContextSource(settings.context_source_url, timeout=settings.context_source_timeout),
            refresh=settings.context_source_refresh,
        )
    if not settings.redis_url or settings.context_source_url:
        # In process there is no round trip to save; a context source is asked on its own.
        reads = StoreByStore(contexts, counters, interactions)
    return _Stores(contexts, counters, interactions, reads, alerts, timers)


def alert_bus(settings: Settings) -> AlertBus:
    """In process, or on Redis streams shared by every instance (with REDIS_URL)."""
    if settings.redis_url:
        return RedisAlertBus(
            redis_client(settings.redis_url),  # no command timeout: its XREAD blocks
            prefix=settings.redis_prefix,
            history=settings.alert_history,
            retain=settings.alert_retain,
        )
    return MemoryAlertBus(settings.alert_history)


def build(
    settings: Settings,
    *,
    metrics: Metrics | None = None,
    follow_index: bool = True,
) -> Frontline:
    """Frontline for ``settings``, its figures in ``metrics``. ``follow_index`` starts the
    ledger's indexer process (what a server does). The alert bus is started by the caller
    (``await frontline.alerts.bus.start()``), in its event loop."""
    registry, ledger = open_ledger(settings)
    stores = _stores(settings)
    key = masking_key(settings)
    masker = Masker(key, clear=settings.clear_classifications)
    # What agents are shown: pii masked with the ledger's key (so a mask an agent sees is the
    # one the ledger holds), whatever the ledger keeps in clear, unless told otherwise.
    shown = Masker(key, clear={"pii"} if settings.show_pii_to_agents else ())
    recorder = Recorder(ledger)
    alerts = Alerting(
        registry,
        stores.reads,
        recorder,
        stores.alerts,
        alert_bus(settings),
        stores.interactions,
        masker=masker,
        shown=shown,
        repeat_after=settings.alert_repeat,
        retain=settings.alert_retain,
        history=settings.alert_history,
        streams_per_agent=settings.streams_per_agent,
        max_streams=settings.max_streams,
    )
    indexer = None
    if follow_index:
        indexer = IndexFollower(settings.ledger_dir, settings.instance)
        ledger.on_commit(indexer.notify)
    shipper = (
        LedgerShipper(
            settings.ledger_dir,
            settings.instance,
            partial(PostgresLedgerStore, settings.database_url, settings.instance),
        )
        if settings.database_url
        else None
    )
    timers = Timers(registry, stores.reads, stores.timers, alerts)
    return Frontline(
        decisions=Decisions(
            registry,
            stores.reads,
            stores.counters,
            stores.interactions,
            recorder,
            alerts,
            timers,
            masker,
            shown,
            metrics,
        ),
        customers=Customers(registry, stores.contexts, stores.interactions, alerts, masker, shown),
        alerts=alerts,
        timers=timers,
        rulesets=Rulesets(
            registry,
            recorder,
            metrics,
            settings.max_ruleset_bytes,
            require_approval=settings.require_approval,
        ),
        audit=Audit(
            settings.ledger_dir,
            settings.max_ruleset_bytes,
            ledger.public_key,
            writer=ledger,
            masker=masker,
            shipped=(
                partial(PostgresLedgerStore, settings.database_url, settings.instance)
                if settings.database_url
                else None
            ),
            registry=registry,
        ),
        registry=registry,
        contexts=stores.contexts,
        ledger=ledger,
        metrics=metrics,
        indexer=indexer,
        shipper=shipper,
    )

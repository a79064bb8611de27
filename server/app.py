"""The Litestar application: ``create_app(settings)`` wires the collaborators and the routes.

startup   keys ─ masking key ─ ruleset registry (starter library on first start)
          ─ ledger writer (segments under the data directory) and its indexer process
          ─ context, counters,
          interactions, alert claims (in process, or in Redis with REDIS_URL) ─ Frontline
          ─ alerting over Litestar channels (in process, or Redis streams)
          ─ with Redis: a listener that drops cached contexts and re-reads rulesets that
            another instance changed
serving   routes in server/routes/*: agents, customers, alerts, rulesets, audit, operations
shutdown  alert deliveries finish; the ledger drains: every accepted record is committed
          before the process exits
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import structlog
from litestar import Litestar, Request, get
from litestar.channels import ChannelsPlugin
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Response

from adapters.channels import KeptHistoryMemoryBackend, ResilientStreamBackend
from adapters.files import FileRulesetStore
from adapters.memory import (
    MemoryAlertStore,
    MemoryContextStore,
    MemoryEventCounters,
    MemoryInteractions,
)
from adapters.reads import StoreByStore
from adapters.redis import (
    Invalidations,
    RedisAlertStore,
    RedisContextStore,
    RedisDecisionReads,
    RedisEventCounters,
    RedisInteractions,
    RedisRulesetStore,
)
from adapters.source import HttpContextSource, SourcedContextStore
from audit.indexer import IndexFollower
from audit.masking import Masker
from audit.migrate import migrate
from audit.postgres import PostgresLedgerStore
from audit.recording import ruleset_record
from audit.retention import apply_retention
from audit.segments import SegmentLog
from audit.shipper import LedgerShipper
from audit.writer import LedgerWriter
from engine import (
    ContextStore,
    DecisionReads,
    EventCounters,
    InteractionStore,
    RulesetError,
    RulesetRegistry,
    RulesetStore,
)
from server import lifecycle
from server.admission import Gate
from server.alerting import Alerting
from server.core import Frontline
from server.edge import Edge
from server.http import on_error, on_http_exception, service
from server.ids import new_id
from server.keys import KeyRing
from server.logs import configure as configure_logging
from server.metrics import LedgerCollector, Metrics, metrics_endpoint
from server.ratelimit import Limits
from server.routes import agents, alerts, audit, customers, pages, rulesets
from server.settings import Settings

log = structlog.get_logger("frontline")


def load_keys(settings: Settings) -> tuple[KeyRing, dict[str, str]]:
    """The key ring, and the keys to print if they were just created."""
    if settings.api_keys:
        return KeyRing.parse(settings.api_keys), {}
    return KeyRing.load_or_create(settings.data_dir / "keys.json")


def masking_key(settings: Settings) -> bytes:
    """The configured key, or one created on first start and kept under the data directory."""
    if settings.masking_key is not None:
        return settings.masking_key
    path = settings.data_dir / "masking.key"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another worker created it first
            return path.read_bytes()
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    return path.read_bytes()


def seed_starter_rulesets(registry: RulesetRegistry, directory: Path) -> list[Any]:
    """Deploy every document of ``directory`` into an empty registry; return the deployments."""
    done = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            done.append(registry.deploy(path.read_text(encoding="utf-8"), filename=str(path)))
        except RulesetError as exc:
            log.error("starter ruleset refused", file=str(path), error=str(exc.errors[0]))
    return done


def build_frontline(settings: Settings) -> Frontline:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store: RulesetStore
    if settings.redis_url:
        import redis

        store = RedisRulesetStore(
            redis.Redis.from_url(settings.redis_url), prefix=settings.redis_prefix
        )
    else:
        store = FileRulesetStore(settings.data_dir / "rulesets")
    registry = RulesetRegistry(store)
    seeded = []
    if not store.names() and settings.starter_rulesets is not None:
        seeded = seed_starter_rulesets(registry, settings.starter_rulesets)
    for name in registry.names():
        registry.refresh(name)
    migrate(settings.data_dir, settings.ledger_dir)  # a ledger of the earlier layout, once
    ledger = LedgerWriter(
        SegmentLog(settings.ledger_dir, settings.instance),
        max_pending=settings.ledger_max_pending,
        wait_timeout=settings.ledger_wait.total_seconds(),
    )
    for done in seeded:
        if not done.created:
            continue  # another instance seeded it first
        ledger.append_blocking(
            ruleset_record(
                record_id=new_id(),
                action="deploy",
                name=done.name,
                revision=done.revision,
                digest=done.digest,
                actor=None,
                details={"starter": True, "activated": done.activated},
            )
        )
    contexts: ContextStore
    counters: EventCounters
    interactions: InteractionStore
    reads: DecisionReads
    client = None
    if settings.redis_url:
        client = redis_client(settings.redis_url, timeout=settings.redis_timeout)
        prefix = settings.redis_prefix
        shared = RedisContextStore(
            client, prefix=prefix, cache_ttl=settings.context_cache_ttl, ttl=settings.context_ttl
        )
        counters = RedisEventCounters(client, prefix=prefix)
        interactions = RedisInteractions(client, prefix=prefix)
        contexts = shared
        reads = RedisDecisionReads(client, shared, counters, interactions)
    else:
        contexts = MemoryContextStore()
        counters = MemoryEventCounters()
        interactions = MemoryInteractions()
    if settings.context_source_url:
        contexts = SourcedContextStore(
            contexts,
            HttpContextSource(settings.context_source_url, timeout=settings.context_source_timeout),
            refresh=settings.context_source_refresh,
        )
    if not settings.redis_url or settings.context_source_url:
        # In process there is no round trip to save; a context source is asked on its own.
        reads = StoreByStore(contexts, counters, interactions)
    frontline = Frontline(
        registry=registry,
        contexts=contexts,
        counters=counters,
        interactions=interactions,
        reads=reads,
        ledger=ledger,
        masker=Masker(masking_key(settings), clear=settings.clear_classifications),
        max_ruleset_bytes=settings.max_ruleset_bytes,
        redis=client,
    )
    return frontline


@get("/healthz", tags=["operations"], include_in_schema=True)
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@get(
    "/readyz",
    tags=["operations"],
    responses={
        503: ResponseSpec(
            data_container=dict[str, Any],
            description="Not ready: the problems are listed",
            generate_examples=False,
        )
    },
)
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """Readiness: rulesets are active and the ledger accepts records."""
    frontline = service(request)
    problems = frontline.readiness()
    body: dict[str, Any] = {"status": "ready" if not problems else "not ready"}
    if problems:
        body["problems"] = problems
    return Response(body, status_code=200 if not problems else 503)


def redis_client(url: str, timeout: float | None = None) -> Any:
    """An asyncio Redis client; ``timeout`` bounds each command (None: the stream readers,
    which block on purpose)."""
    import redis.asyncio

    return redis.asyncio.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout or 2.0
    )


async def follow_changes(frontline: Frontline, settings: Settings) -> None:
    """Drop cached contexts other instances changed; re-read rulesets they changed."""
    contexts = frontline.contexts
    if isinstance(contexts, SourcedContextStore):
        contexts = contexts.inner
    registry = frontline.registry
    assert isinstance(contexts, RedisContextStore) and settings.redis_url

    async def ruleset_changed(name: str) -> None:
        await asyncio.to_thread(registry.refresh, name)
        log.info("ruleset changed elsewhere", ruleset=name, active=registry.active_revision(name))

    async def reconnected() -> None:
        contexts.invalidate()  # anything may have changed while the channel was down
        for name in await asyncio.to_thread(registry.names):
            await asyncio.to_thread(registry.refresh, name)

    await Invalidations(
        redis_client(settings.redis_url),
        {
            contexts.channel: contexts.invalidate,
            f"{settings.redis_prefix}rulesets-changed": ruleset_changed,
        },
        on_reconnect=reconnected,
    ).run()


RETENTION_EVERY = 3600.0


async def prune_forever(frontline: Frontline, settings: Settings) -> None:
    """Apply the retention setting to this instance's chain now and then every hour."""
    assert settings.retention is not None
    while True:
        try:
            # With PostgreSQL, only what has been shipped may go from the spool.
            keep_from = frontline.shipper.status().shipped_seq + 1 if frontline.shipper else None
            result = await asyncio.to_thread(
                apply_retention,
                settings.ledger_dir,
                frontline.ledger,
                older_than=settings.retention,
                now=datetime.now(UTC),
                keep_from=keep_from,
            )
            if result.deleted:
                log.info(
                    "retention applied",
                    deleted=result.deleted,
                    through=result.through,
                    cutoff=result.cutoff,
                )
        except Exception as exc:  # a failed run is retried next time; serving goes on
            log.error("retention failed", error=str(exc))
        await asyncio.sleep(RETENTION_EVERY)


ROUTING_POLL = 0.25


async def poll_routing(frontline: Frontline) -> None:
    """Workers sharing a ruleset directory: serve what another worker activated (a quarter of
    a second later at most). With Redis, change announcements do this instead."""
    registry = frontline.registry
    store = registry.store
    while True:
        await asyncio.sleep(ROUTING_POLL)
        try:
            for name in store.names():
                if store.get_routing(name) != registry.served_routing(name):
                    await asyncio.to_thread(registry.refresh, name)
        except Exception as exc:  # the next poll tries again
            log.error("ruleset routing not re-read", error=str(exc))


def create_app(settings: Settings | None = None, frontline: Frontline | None = None) -> Litestar:
    """The application. Collaborators are built at startup unless ``frontline`` is given."""
    settings = settings or Settings.from_env()

    configure_logging(settings.log_level)
    metrics = Metrics(settings.instance)
    gate = Gate(settings.max_concurrency, target=settings.admission_delay)
    limits = Limits(
        settings.rate_limit_per_minute,
        redis_client(settings.redis_url, timeout=settings.redis_timeout)
        if settings.redis_url
        else None,
        settings.redis_prefix,
    )

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        built = frontline or build_frontline(settings)
        built.metrics = metrics
        built.alerting = Alerting(
            built,
            RedisAlertStore(built.redis, prefix=settings.redis_prefix)
            if built.redis is not None
            else MemoryAlertStore(),
            channels,
            repeat_after=settings.alert_repeat,
            retain=settings.alert_retain,
            history=settings.alert_history,
        )
        app.state.frontline = built
        lifecycle.on_exit(built.alerting.stop_streams)
        following = (
            asyncio.create_task(follow_changes(built, settings))
            if settings.redis_url and built.redis is not None
            else asyncio.create_task(poll_routing(built))
            if settings.workers > 1
            else None
        )
        indexer = IndexFollower(settings.ledger_dir, settings.instance)
        built.ledger.on_commit(indexer.notify)
        built.indexer = indexer
        shipper = (
            LedgerShipper(
                settings.ledger_dir,
                settings.instance,
                partial(PostgresLedgerStore, settings.database_url, settings.instance),
            )
            if settings.database_url
            else None
        )
        built.shipper = shipper
        metrics.watch(
            LedgerCollector(built.ledger, gate, settings.instance, shipper, settings.ledger_dir)
        )
        pruning = (
            asyncio.create_task(prune_forever(built, settings)) if settings.retention else None
        )
        watching = asyncio.create_task(gate.watch())
        log.info(
            "frontline ready",
            rulesets=built.registry.names(),
            ledger=str(settings.ledger_dir),
            instance=settings.instance,
        )
        try:
            yield
        finally:
            watching.cancel()
            if pruning is not None:
                pruning.cancel()
            if following is not None:
                following.cancel()
            await built.alerting.drain()
            built.ledger.close()
            await asyncio.to_thread(indexer.close)
            if shipper is not None:
                await asyncio.to_thread(shipper.close, 10.0)
            log.info("frontline stopped", ledger_records=built.ledger.records)

    keys, _ = load_keys(settings)
    edge = Edge(gate, keys, limits)
    channels = ChannelsPlugin(
        backend=ResilientStreamBackend(
            settings.alert_history,
            redis=redis_client(settings.redis_url),
            key_prefix=f"{settings.redis_prefix}alerts",
            stream_ttl=settings.alert_retain,
            stream_sleep_no_subscriptions=200,  # ms an XREAD blocks before new channels join
        )
        if settings.redis_url
        else KeptHistoryMemoryBackend(settings.alert_history),
        arbitrary_channels_allowed=True,
        subscriber_max_backlog=1000,
        subscriber_backlog_strategy="dropleft",
    )
    return Litestar(
        route_handlers=[
            healthz,
            readyz,
            *agents.ROUTES,
            *customers.ROUTES,
            *alerts.ROUTES,
            *rulesets.ROUTES,
            *audit.ROUTES,
            metrics_endpoint,
            *pages.ROUTES,
        ],
        middleware=[edge],
        plugins=[channels],
        logging_config=None,  # server/logs.py configures logging once, for everything
        lifespan=[lifespan],
        state=State({"keyring": keys, "settings": settings, "metrics": metrics, "edge": edge}),
        exception_handlers={
            HTTPException: on_http_exception,
            Exception: on_error,
        },
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Frontline",
            version="0.1.0",
            description="Decisioning for contact-center agent desktops.",
            path="/schema",
        ),
    )

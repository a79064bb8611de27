"""The Litestar application: ``create_app(settings)`` wires the service to HTTP.

startup   keys ─ the service, built once (server/service/factory.py): registry, ledger and
          its indexer, stores, the alert bus (in process, or Redis streams), use cases
          ─ with Redis: a listener that drops cached contexts and re-reads rulesets
          another instance changed ─ retention, if configured
serving   the edge middleware (admission, keys, rate limits) ─ routes in server/routes/*,
          which translate HTTP to one service call and back
shutdown  alert deliveries finish; the ledger drains: every accepted record is committed
          before the process exits
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from litestar import Litestar, Request, get
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Response

from adapters.redis import Invalidations, RedisContextStore
from adapters.source import SourcedContextStore
from audit.retention import apply_retention
from server import lifecycle
from server.admission import Gate
from server.edge import Edge
from server.http import on_error, on_http_exception, service
from server.keys import KeyFile, KeyListError, KeyRing, StreamTickets
from server.logs import configure as configure_logging
from server.metrics import AlertCollector, LedgerCollector, Metrics, metrics_endpoint
from server.ratelimit import Limits
from server.routes import agents, alerts, audit, customers, docs, pages, rulesets
from server.service.answers import Health, Readiness
from server.service.factory import build, masking_key, redis_client
from server.service.frontline import Frontline
from server.settings import Settings

log = structlog.get_logger("frontline")


def load_keys(settings: Settings) -> tuple[KeyRing, dict[str, str]]:
    """The key ring, and the keys to print if they were just created."""
    if settings.api_keys:
        return KeyRing.parse(settings.api_keys), {}
    return KeyRing.load_or_create(settings.data_dir / "keys.json")


@get("/healthz", summary="Liveness", tags=["operations"], include_in_schema=True)
async def healthz() -> Health:
    """Liveness: the process answers (no key needed)."""
    return Health()


@get(
    "/readyz",
    summary="Readiness",
    tags=["operations"],
    responses={
        503: ResponseSpec(
            data_container=Readiness,
            description="Not ready: the problems are listed",
            generate_examples=False,
        )
    },
)
async def readyz(request: Request[Any, Any, Any]) -> Response[Readiness]:
    """Readiness: rulesets are active and the ledger accepts records (no key needed); 503
    lists what is missing, for a load balancer to route around this instance."""
    problems = service(request).readiness()
    body = (
        Readiness(status="not ready", problems=problems) if problems else Readiness(status="ready")
    )
    return Response(body, status_code=503 if problems else 200)


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


KEY_FILE_POLL = 1.0


async def follow_key_file(app: Litestar, edge: Edge, watcher: KeyFile) -> None:
    """Serve the keys ``frontline keys create`` adds to the key file, a second later at most."""
    while True:
        await asyncio.sleep(KEY_FILE_POLL)
        try:
            ring = watcher.changed()
        except KeyListError as exc:  # looked at again next time; the keys read before serve
            log.error("key file not re-read", error=str(exc))
            continue
        if ring is not None:
            edge.keyring = app.state.keyring = ring
            log.info("key file re-read", keys=len(ring), path=str(watcher.path))


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


def create_app(settings: Settings | None = None) -> Litestar:
    """The application; the service is built at startup (``server.service.factory``)."""
    settings = settings or Settings.from_env()

    configure_logging(settings.log_level)
    # Several workers: one view of them all, from the directory server/run.py shares.
    shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR") if settings.workers > 1 else None
    metrics = Metrics(settings.instance, Path(shared) if shared else None)
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
        built = build(settings, metrics=metrics)
        await built.alerts.bus.start()
        app.state.frontline = built
        lifecycle.on_exit(built.alerts.stop_streams)
        following = (
            asyncio.create_task(follow_changes(built, settings))
            if settings.redis_url
            else asyncio.create_task(poll_routing(built))
            if settings.workers > 1
            else None
        )
        metrics.watch(AlertCollector(built.alerts, settings.instance, built.timers))
        metrics.watch(
            LedgerCollector(
                built.ledger, gate, settings.instance, built.shipper, settings.ledger_dir
            )
        )
        pruning = (
            asyncio.create_task(prune_forever(built, settings)) if settings.retention else None
        )
        # The key file's changes (generated keys), and the live figures the other workers'
        # scrapes read (several workers).
        chores = [
            asyncio.create_task(chore)
            for chore in (
                follow_key_file(app, edge, key_file) if key_file is not None else None,
                metrics.publish_forever() if metrics.shared else None,
            )
            if chore is not None
        ]
        watching = asyncio.create_task(gate.watch())
        escalating = asyncio.create_task(built.alerts.watch_acks())
        timing = asyncio.create_task(built.timers.run())
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
            escalating.cancel()
            built.timers.stop()
            timing.cancel()
            if pruning is not None:
                pruning.cancel()
            for chore in chores:
                chore.cancel()
            metrics.withdraw()
            if following is not None:
                following.cancel()
            await built.alerts.drain()
            await built.alerts.bus.stop()
            built.ledger.close()
            if built.indexer is not None:
                await asyncio.to_thread(built.indexer.close)
            if built.shipper is not None:
                await asyncio.to_thread(built.shipper.close, 10.0)
            log.info("frontline stopped", ledger_records=built.ledger.records)

    # Looked at before the keys are read, so that no change in between goes unnoticed.
    key_file = None if settings.api_keys else KeyFile(settings.data_dir / "keys.json")
    keys, _ = load_keys(settings)
    tickets = StreamTickets(masking_key(settings))
    edge = Edge(gate, keys, limits, tickets)
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
            *docs.ROUTES,
        ],
        middleware=[edge],
        logging_config=None,  # server/logs.py configures logging once, for everything
        lifespan=[lifespan],
        state=State(
            {
                "keyring": keys,
                "tickets": tickets,
                "settings": settings,
                "metrics": metrics,
                "edge": edge,
            }
        ),
        exception_handlers={
            HTTPException: on_http_exception,
            Exception: on_error,
        },
        request_max_body_size=settings.max_body_bytes,
        openapi_config=docs.openapi_config(),
    )

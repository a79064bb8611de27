"""Customer context fetched from the system that owns it, when the cache does not have it.

    get(customer) ─▶ cached (inner store) and fresh? ─▶ it
                  └▶ missing, or its fetched fields older than ``refresh``:
                       GET <url template with {customer_id}>  (bounded by ``timeout``)
                       200 ─▶ written to the inner store (source, as_of now) ─▶ it
                       404 ─▶ nothing is known of the customer ─▶ the cached copy or None
                       failure, timeout, breaker open ─▶ the cached copy marked degraded
                                                          (or an empty one, degraded)

A breaker stops calling a failing source for ``cooldown`` seconds after ``failures``
consecutive failures; concurrent reads of one customer share one fetch.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import structlog
from cachetools import TTLCache

from adapters.ports import ContextStore, CustomerContext
from engine.times import format_time, parse_time

log = structlog.get_logger("frontline")


class SourceFailed(Exception):
    """The source did not answer usefully in time."""


class HttpContextSource:
    """``GET`` of a URL template such as ``http://crm.internal/customers/{customer_id}``,
    answering the customer's context values as one JSON object (404: unknown customer)."""

    def __init__(self, url_template: str, *, timeout: float = 0.2) -> None:
        if "{customer_id}" not in url_template:
            raise ValueError("the context source URL must contain {customer_id}")
        self.url_template = url_template
        self.timeout = timeout
        self._client = httpx.AsyncClient(timeout=timeout)

    async def fetch(self, customer_id: str) -> dict[str, Any] | None:
        url = self.url_template.replace("{customer_id}", quote(customer_id, safe=""))
        try:
            response = await asyncio.wait_for(self._client.get(url), self.timeout)
        except (httpx.HTTPError, TimeoutError) as exc:
            raise SourceFailed(f"{type(exc).__name__} from {url}") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise SourceFailed(f"{url} answered {response.status_code}")
        try:
            values = response.json()
        except ValueError as exc:
            raise SourceFailed(f"{url} did not answer JSON") from exc
        if not isinstance(values, dict):
            raise SourceFailed(f"{url} answered {type(values).__name__}, not an object")
        return values

    async def close(self) -> None:
        await self._client.aclose()


class SourcedContextStore:
    """A ContextStore that fills itself from a source; writes go to the inner store."""

    def __init__(
        self,
        inner: ContextStore,
        source: HttpContextSource,
        *,
        name: str = "source",
        refresh: timedelta | None = None,
        failures: int = 3,
        cooldown: float = 5.0,
        unknown_ttl: float = 30.0,
    ) -> None:
        self.inner = inner
        self.source = source
        self.name = name
        self.refresh = refresh
        self.failures_to_open = failures
        self.cooldown = cooldown
        self._failures = 0
        self._open_until = 0.0
        self._inflight: dict[str, asyncio.Future[CustomerContext | None]] = {}
        self.fetches = 0
        # Customers the source said it does not know, not asked again for a while.
        self._unknown: TTLCache[str, bool] = TTLCache(100_000, unknown_ttl)

    @property
    def breaker_open(self) -> bool:
        return time.monotonic() < self._open_until

    async def get(self, customer_id: str) -> CustomerContext | None:
        cached = await self.inner.get(customer_id)
        if cached is not None and (cached.degraded or self._fresh(cached)):
            return cached
        if cached is None and customer_id in self._unknown:
            return None
        running = self._inflight.get(customer_id)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[CustomerContext | None] = asyncio.get_running_loop().create_future()
        self._inflight[customer_id] = future
        try:
            found = await self._fill(customer_id, cached)
            future.set_result(found)
            return found
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            del self._inflight[customer_id]

    def _fresh(self, cached: CustomerContext) -> bool:
        if self.refresh is None:
            return True
        times = [
            parse_time(when)
            for path, when in cached.as_of.items()
            if cached.sources.get(path) == self.name
        ]
        fetched = [t for t in times if t is not None]
        if not fetched:
            return True  # written by integrations only: theirs to keep current
        return datetime.now(UTC) - max(fetched) < self.refresh

    async def _fill(
        self, customer_id: str, cached: CustomerContext | None
    ) -> CustomerContext | None:
        if self.breaker_open:
            return _degraded(customer_id, cached)
        try:
            values = await self.source.fetch(customer_id)
        except SourceFailed as exc:
            self._failures += 1
            if self._failures >= self.failures_to_open:
                self._open_until = time.monotonic() + self.cooldown
            log.warning("context source failed", customer_id=customer_id, error=str(exc))
            return _degraded(customer_id, cached)
        self._failures = 0
        self.fetches += 1
        if values is None:
            self._unknown[customer_id] = True
            return cached
        return await self.inner.patch(
            customer_id, values, self.name, format_time(datetime.now(UTC))
        )

    async def put(
        self, customer_id: str, values: dict[str, Any], source: str | None, as_of: str | None
    ) -> CustomerContext:
        return await self.inner.put(customer_id, values, source, as_of)

    async def patch(
        self, customer_id: str, values: dict[str, Any], source: str | None, as_of: str | None
    ) -> CustomerContext:
        return await self.inner.patch(customer_id, values, source, as_of)


def _degraded(customer_id: str, cached: CustomerContext | None) -> CustomerContext:
    if cached is None:
        return CustomerContext(customer_id, {}, {}, {}, degraded=True)
    return CustomerContext(customer_id, cached.values, cached.sources, cached.as_of, True)

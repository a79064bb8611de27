"""The service layer built by its factory on the embedded default, in a temporary directory,
with an event loop of its own: for tests that call use cases without HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from server.service.factory import build
from server.service.frontline import Frontline
from server.settings import Settings

T = TypeVar("T")

_LOOPS: dict[int, asyncio.AbstractEventLoop] = {}


@contextmanager
def running_service(data_dir: Path, env: Mapping[str, str] | None = None) -> Iterator[Frontline]:
    """A service started as a server starts it (with ``env``'s settings too), and stopped as
    it stops it."""
    settings = Settings.from_env(
        {"FRONTLINE_DATA_DIR": str(data_dir), "FRONTLINE_MASKING_KEY": "k" * 32, **(env or {})}
    )
    loop = asyncio.new_event_loop()
    built = build(settings, follow_index=False)
    loop.run_until_complete(built.alerts.bus.start())
    _LOOPS[id(built)] = loop
    try:
        yield built
    finally:
        loop.run_until_complete(built.alerts.drain())
        loop.run_until_complete(built.alerts.bus.stop())
        built.ledger.close()
        built.ledger.store.close()  # its lock, as the process's exit would let it go
        loop.close()
        del _LOOPS[id(built)]


def run(service: Frontline, coro: Coroutine[Any, Any, T]) -> T:
    """Run a use case on the service's own event loop (as a server would)."""
    return _LOOPS[id(service)].run_until_complete(coro)

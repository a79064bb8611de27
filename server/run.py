"""Running the app under uvicorn: one process, or several sharing one listening socket.

Each worker is its own ledger instance (``<instance>-<n>``), so every worker keeps its own
hash chain and no two processes ever hand out the same ``seq``; their metrics are one view
(``server.metrics.share_between_workers``), whichever worker a scrape reaches.
"""

from __future__ import annotations

import dataclasses
import fcntl
import gc
import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import IO, Any

import uvicorn

from server import lifecycle
from server.metrics import share_between_workers
from server.settings import Settings
from server.wire import protocol_for

AppFactory = Callable[[], Any]


# Objects allocated between two young-generation collections (CPython's default is 700).
GC_YOUNG_THRESHOLD = 10_000


class _Server(uvicorn.Server):
    """uvicorn's server, telling the app at once when it is asked to stop, and collecting
    garbage the way a long-lived server should (``tune_gc``)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        tune_gc()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        lifecycle.exiting()
        super().handle_exit(sig, frame)


def tune_gc() -> None:
    """Once the app has started: move everything built so far (routes, compiled rulesets,
    schemas: about 90,000 objects) out of the collector's sight with ``gc.freeze``, and
    collect the young generation every 10,000 allocations instead of 700. A decision
    allocates a few hundred objects, so the default collected several times a request and
    walked the app's objects at every older collection: 30-40 µs of a decision's CPU
    (docs/decisions.md). Reference counting still frees everything that is not a cycle.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def _config(settings: Settings, app_factory: AppFactory | None = None) -> uvicorn.Config:
    from server.app import create_app
    from server.fastpath import with_fast_path

    return uvicorn.Config(
        app_factory() if app_factory is not None else with_fast_path(create_app(settings)),
        host=settings.host,
        port=settings.port,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http=protocol_for(settings),  # uvicorn's httptools protocol, with limits on the head
        timeout_keep_alive=settings.idle_timeout,
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=30,
        ws_per_message_deflate=False,  # alerts are small: compressing costs more than it saves
    )


class DataDirBusy(Exception):
    """Another server holds the data directory."""


_HELD: list[IO[str]] = []  # the data directory's lock, held for the life of the process


def hold_data_dir(data_dir: Path) -> None:
    """Lock ``data_dir`` for this server (``server.lock``, an exclusive ``flock`` held until
    the process ends), or raise DataDirBusy naming the server that holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = open(data_dir / "server.lock", "a+", encoding="utf-8")  # noqa: SIM115 (held)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        pid = lock.read().strip()
        lock.close()
        holder = f" (pid {pid})" if pid.isdigit() else ""
        raise DataDirBusy(
            f"another Frontline server{holder} is using the data directory {data_dir}; "
            "stop it, or give this one its own --data-dir"
        ) from None
    try:
        os.ftruncate(lock.fileno(), 0)
        os.pwrite(lock.fileno(), f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:
        lock.close()
        raise OSError(exc.errno, exc.strerror, str(data_dir / "server.lock")) from None
    _HELD.append(lock)


def listen(settings: Settings) -> socket.socket:
    """The server's listening socket, bound now: a busy port fails here, before anything
    starts or says ready (OSError)."""
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(
    settings: Settings, app_factory: AppFactory | None = None, sock: socket.socket | None = None
) -> int:
    """Serve on ``sock`` (bound from the settings if not given) until SIGINT or SIGTERM; the
    ledger of every worker drains before it exits.

    ``app_factory`` replaces Frontline's app (the benchmarks' bare baseline uses it).
    """
    if sock is None:
        sock = listen(settings)
    if settings.workers == 1:
        _Server(_config(settings, app_factory)).run(sockets=[sock])
        return 0
    if app_factory is None:
        share_between_workers(settings.data_dir)  # one /metrics for them all
    context = multiprocessing.get_context("spawn")
    workers = []
    for n in range(settings.workers):
        own = dataclasses.replace(settings, instance=f"{settings.instance}-{n}")
        process = context.Process(
            target=_worker, args=(own, sock, app_factory), name=f"frontline-{n}"
        )
        process.start()
        workers.append(process)

    def stop(signum: int, _: FrameType | None) -> None:
        for process in workers:
            if process.is_alive() and process.pid is not None:
                process.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    for process in workers:
        process.join()
        code = code or (process.exitcode or 0)
    sock.close()
    return code


def _worker(settings: Settings, sock: socket.socket, app_factory: AppFactory | None) -> None:
    _Server(_config(settings, app_factory)).run(sockets=[sock])

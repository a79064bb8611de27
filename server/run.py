"""Running the app under uvicorn: one process, or several sharing one listening socket.

Each worker is its own ledger instance (``<instance>-<n>``), so every worker keeps its own
hash chain and no two processes ever hand out the same ``seq``.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import signal
import socket
import sys
from types import FrameType

import uvicorn

from server.settings import Settings


def _config(settings: Settings) -> uvicorn.Config:
    from server.app import create_app

    return uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=30,
    )


def serve(settings: Settings) -> int:
    """Serve until SIGINT or SIGTERM; the ledger of every worker drains before it exits."""
    if settings.workers == 1:
        uvicorn.Server(_config(settings)).run()
        return 0
    # First-start work (starter rulesets, masking key) happens once, here, before any worker
    # exists, so workers never race to create them; it is recorded in worker 0's chain.
    from server.app import build_frontline

    build_frontline(dataclasses.replace(settings, instance=f"{settings.instance}-0")).ledger.close()
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    context = multiprocessing.get_context("spawn")
    workers = []
    for n in range(settings.workers):
        own = dataclasses.replace(settings, instance=f"{settings.instance}-{n}")
        process = context.Process(target=_worker, args=(own, sock), name=f"frontline-{n}")
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


def _worker(settings: Settings, sock: socket.socket) -> None:
    uvicorn.Server(_config(settings)).run(sockets=[sock])

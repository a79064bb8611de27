"""What must happen as soon as the server is told to stop, before connections drain.

uvicorn waits for open connections to finish before it runs the app's shutdown; an alert
stream never finishes on its own, so each would hold the shutdown until uvicorn's timeout.
``server.run`` calls ``exiting()`` from its signal handling; the app registers what ends its
long-lived responses (the desktops reconnect to another instance and resume).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

_hooks: list[tuple[asyncio.AbstractEventLoop, Callable[[], None]]] = []


def on_exit(callback: Callable[[], None]) -> None:
    """Run ``callback`` on the current event loop when the server is told to stop."""
    _hooks.append((asyncio.get_running_loop(), callback))


def exiting() -> None:
    """Called from signal handling: schedule every hook on its loop (thread-safe)."""
    for loop, callback in _hooks:
        if not loop.is_closed():
            loop.call_soon_threadsafe(callback)

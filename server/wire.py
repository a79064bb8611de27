"""Limits on the wire: what a request's head may weigh and how long it may take to arrive.

uvicorn's httptools protocol takes a head of any size (an 8 MB header was accepted) and waits
for it as long as the client likes (twenty unfinished 10 MB heads held 208 MB, slow clients
were never closed). This protocol is uvicorn's, with three checks added:

    connection made, or a request begins ─▶ the head must be complete within
        ``head_timeout`` seconds, or the answer is 408 and the connection is closed (one
        sweep over the open connections every tenth of the timeout, at most every second)
    each header (and the URL) ─▶ more than ``max_head_bytes`` in all, or more than
        ``max_headers`` headers: 431 and the connection is closed, before the rest is read

Between requests uvicorn's own keep-alive timeout closes an idle connection
(``FRONTLINE_IDLE_TIMEOUT``, seconds). docs/configuration.md lists the settings.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.settings import Settings

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class _HeadTooLarge(Exception):
    """Raised inside the parser's callback; the parser turns it into an HttpParserError."""


class LimitedHttpTools(HttpToolsProtocol):
    max_head_bytes = 16_384
    max_headers = 100
    head_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._head_count = 0
        self._refusal: tuple[int, str] | None = None
        self._head_since: float | None = None  # when the head now awaited began to be awaited

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_since = self.loop.time()
        _watch(self)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = self._head_count = 0
        if self._head_since is None:
            self._head_since = self.loop.time()

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        if self._head_bytes > self.max_head_bytes:
            self._refuse_head()
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        self._head_count += 1
        if self._head_bytes > self.max_head_bytes or self._head_count > self.max_headers:
            self._refuse_head()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_since = None
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if self._refusal is None:
            super().send_400_response(msg)
            return
        status, text = self._refusal
        self._close_with(status, text)

    # -- the parts -------------------------------------------------------------------------

    def _refuse_head(self) -> None:
        if self._head_bytes > self.max_head_bytes:
            text = f"the request's head is larger than {self.max_head_bytes} bytes"
        else:
            text = f"the request has more than {self.max_headers} headers"
        self._refusal = (431, text)
        raise _HeadTooLarge  # the parser stops; uvicorn answers through send_400_response

    def late(self, now: float) -> bool:
        """Whether the head awaited has taken longer than ``head_timeout`` (then closed)."""
        since = self._head_since
        if since is None or now - since <= self.head_timeout or self.transport.is_closing():
            return False
        if self.cycle is not None and not self.cycle.response_complete:
            return False  # a response is under way: the next head may wait for it
        self._close_with(408, f"the request's head did not arrive within {self.head_timeout:g} s")
        return True

    def _close_with(self, status: int, text: str) -> None:
        body = text.encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, _REASONS[status], len(body), body)
        )
        self.transport.close()


# One sweep a tenth of the head timeout (at most every second) over the open connections,
# rather than a timer set and cancelled for every request.
_WATCHED: weakref.WeakSet[LimitedHttpTools] = weakref.WeakSet()
_SWEEPING: set[asyncio.AbstractEventLoop] = set()


def _watch(protocol: LimitedHttpTools) -> None:
    _WATCHED.add(protocol)
    loop = protocol.loop
    if loop not in _SWEEPING:
        _SWEEPING.add(loop)
        period = min(1.0, protocol.head_timeout / 10)
        loop.call_later(period, _sweep, loop, period)


def _sweep(loop: asyncio.AbstractEventLoop, period: float) -> None:
    now = loop.time()
    for protocol in list(_WATCHED):
        if protocol.loop is loop:
            protocol.late(now)
    if loop.is_closed():
        _SWEEPING.discard(loop)
        return
    loop.call_later(period, _sweep, loop, period)


def protocol_for(settings: Settings) -> type[LimitedHttpTools]:
    """The protocol class with the limits of ``settings``."""
    return type(
        "LimitedHttpTools",
        (LimitedHttpTools,),
        {
            "max_head_bytes": settings.max_head_bytes,
            "max_headers": settings.max_headers,
            "head_timeout": settings.head_timeout,
        },
    )

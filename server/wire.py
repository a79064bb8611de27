"""Limits on the wire: what a request's head may weigh and how long it may take to arrive.

uvicorn's httptools protocol takes a head of any size (an 8 MB header was accepted) and waits
for it as long as the client likes (twenty unfinished 10 MB heads held 208 MB, slow clients
were never closed). This protocol is uvicorn's, with three checks added:

    connection made, or a request begins ─▶ the head must be complete within
        ``head_timeout`` seconds, or the answer is 408 and the connection is closed
    each header (and the URL) ─▶ more than ``max_head_bytes`` in all, or more than
        ``max_headers`` headers: 431 and the connection is closed, before the rest is read

Between requests uvicorn's own keep-alive timeout closes an idle connection
(``FRONTLINE_IDLE_TIMEOUT``, seconds). docs/configuration.md lists the settings.
"""

from __future__ import annotations

import asyncio
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
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = self._head_count = 0
        if self._head_timer is None:
            self._arm()

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        self._check()
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        self._head_count += 1
        self._check()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if self._refusal is None:
            super().send_400_response(msg)
            return
        status, text = self._refusal
        self._close_with(status, text)

    # -- the parts -------------------------------------------------------------------------

    def _check(self) -> None:
        if self._head_bytes > self.max_head_bytes:
            self._refusal = (431, f"the request's head is larger than {self.max_head_bytes} bytes")
            raise _HeadTooLarge
        if self._head_count > self.max_headers:
            self._refusal = (431, f"the request has more than {self.max_headers} headers")
            raise _HeadTooLarge

    def _arm(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _too_slow(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a response is under way: this is not a head that is late
        self._close_with(408, f"the request's head did not arrive within {self.head_timeout:g} s")

    def _close_with(self, status: int, text: str) -> None:
        body = text.encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, _REASONS[status], len(body), body)
        )
        self.transport.close()


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

"""Logging: structlog, one JSON object per line on stderr, configured once at startup.

Frontline's own events and those of uvicorn and Litestar (standard ``logging``) leave through
the same renderer. Lines logged while a request is handled carry its ``request_id`` (taken
from ``X-Request-ID`` when the caller sends a sane one) and, for decisions, ``decision_id``:
both are bound as context variables.

Every request also leaves one access line when it is answered (``log_access``), in the same
shape: ``{"event": "request", "method", "path", "status", "duration_ms", "request_id",
"level": "info", "timestamp", "logger": "frontline.access"}``. The path is without its query
string, where a key (``access_token=``) or a stream ticket may be. It is encoded by msgspec
and written whole, not through structlog's processors: 1.5 µs instead of 17 µs, on every
decision (docs/configuration.md).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import structlog

from server.ids import request_id as new_request_id

_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# A credential in a URL (uvicorn logs a WebSocket's path with its query string).
_IN_URL = re.compile(r"((?:access_token|ticket)=)[^&\s\"']+")


class Redact(logging.Filter):
    """Keys and stream tickets in URLs never reach a log line: ``access_token=[redacted]``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "access_token=" in message or "ticket=" in message:
            record.msg, record.args = _IN_URL.sub(r"\1[redacted]", message), None
        return True


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LEVELS["error"] = logging.ERROR

# The key of a request's id in its ASGI scope, once the outermost layer has chosen it.
REQUEST_ID = "frontline.request_id"

_encode = msgspec.json.Encoder().encode


class _Access:
    """Where access lines go: ``write`` is None below the log level, or before ``configure``."""

    write: Callable[[bytes], None] | None = None


_ACCESS = _Access()


def _line_writer(stream: Any) -> Callable[[bytes], None]:
    """Writes one line, whole, to ``stream`` (stderr), beside what logging writes there."""
    buffer = getattr(stream, "buffer", None)

    def write(line: bytes) -> None:
        try:
            if buffer is not None:
                buffer.write(line)
                buffer.flush()
            else:
                stream.write(line.decode())
                stream.flush()
        except (OSError, ValueError):  # a log line never fails a request
            pass

    return write


def log_access(method: str, path: str, status: int, started: float, request_id: str) -> None:
    """The access line of a request answered ``status``, begun at ``started``
    (``time.perf_counter()``)."""
    write = _ACCESS.write
    if write is not None:
        write(
            _encode(
                {
                    "event": "request",
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    "request_id": request_id,
                    "level": "info",
                    "timestamp": datetime.now(UTC),
                    "logger": "frontline.access",
                }
            )
            + b"\n"
        )


def configure(level: str = "info") -> None:
    numeric = _LEVELS.get(level, logging.INFO)
    _ACCESS.write = _line_writer(sys.stderr) if numeric <= logging.INFO else None
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(Redact())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True


def bind_request(header: str | None) -> str:
    """Bind this request's id (the caller's, if sane, else a new one) to the log context."""
    request_id = header if header and _SANE.match(header) else new_request_id()
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    return request_id


def bind_request_once(scope: Any, header: str | None) -> None:
    """``bind_request``, unless the outermost layer (server/fastpath.py) has bound the
    request's id already: then it is the one its answer carries in ``X-Request-ID``."""
    if REQUEST_ID not in scope:
        bind_request(header)

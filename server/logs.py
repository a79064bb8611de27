"""Logging: structlog, one JSON object per line on stderr, configured once at startup.

Frontline's own events and those of uvicorn and Litestar (standard ``logging``) leave through
the same renderer. Lines logged while a request is handled carry its ``request_id`` (taken
from ``X-Request-ID`` when the caller sends a sane one) and, for decisions, ``decision_id``:
both are bound as context variables.
"""

from __future__ import annotations

import logging
import re
import sys

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


def configure(level: str = "info") -> None:
    numeric = _LEVELS.get(level, logging.INFO)
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

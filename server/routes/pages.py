"""The pages the server serves itself: the agent's desktop, the author's rulesets view and the
auditor's view, plus the desktop plugin they are built on (``/static/frontline-desktop.js``).

Plain HTML, CSS and ES modules from server/static: no build step, nothing downloaded. Each page
asks for a key and keeps it in the tab's sessionStorage; every call goes through the same API
and guards as any other client.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Router, get
from litestar.handlers import HTTPRouteHandler
from litestar.response import File
from litestar.static_files import create_static_files_router

STATIC = Path(__file__).resolve().parents[1] / "static"


def _page(name: str) -> File:
    return File(
        STATIC / f"{name}.html",
        media_type="text/html",
        content_disposition_type="inline",
    )


@get("/desktop", include_in_schema=False)
async def desktop_page() -> File:
    """The agent's desktop."""
    return _page("desktop")


@get("/rulesets", include_in_schema=False)
async def rulesets_page() -> File:
    """The rule author's view."""
    return _page("rulesets")


@get("/audit", include_in_schema=False)
async def audit_page() -> File:
    """The auditor's view."""
    return _page("audit")


static_files = create_static_files_router(
    path="/static", directories=[STATIC], include_in_schema=False
)

ROUTES: list[HTTPRouteHandler | Router] = [desktop_page, rulesets_page, audit_page, static_files]

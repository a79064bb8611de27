"""The pages the server serves itself: a landing page (``/``) linking the others, the agent's
desktop, the author's rulesets view and the auditor's view, plus the desktop plugin they are
built on (``/static/frontline-desktop.js``).

Plain HTML, CSS and ES modules from server/static: no build step, nothing downloaded. Each page
asks for a key and keeps it in the tab's sessionStorage; every call goes through the same API
and guards as any other client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Router, get
from litestar.handlers import HTTPRouteHandler
from litestar.response import File, Response
from litestar.static_files import create_static_files_router

STATIC = Path(__file__).resolve().parents[1] / "static"

# The pages load only their own scripts, styles and API: nothing inline, nothing from
# elsewhere, never framed by another site.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def _page(name: str) -> File:
    return File(
        STATIC / f"{name}.html",
        media_type="text/html",
        content_disposition_type="inline",
        headers=SECURITY_HEADERS,
    )


@get("/", include_in_schema=False)
async def home_page() -> File:
    """Where each page is, and who it is for."""
    return _page("home")


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


@get("/audit/explanation", include_in_schema=False)
async def explanation_page() -> File:
    """One decision's explanation pack, laid out to print (``?id=<decision id>``)."""
    return _page("explanation")


async def secured(response: Response[Any]) -> Response[Any]:
    response.headers.update(SECURITY_HEADERS)
    return response


static_files = create_static_files_router(
    path="/static",
    directories=[STATIC],
    include_in_schema=False,
    after_request=secured,
)

ROUTES: list[HTTPRouteHandler | Router] = [
    home_page,
    desktop_page,
    rulesets_page,
    audit_page,
    explanation_page,
    static_files,
]

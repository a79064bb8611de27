"""The API's own documentation, readable without the internet: the OpenAPI document at
``/schema/openapi.json`` (and ``.yaml``), and Swagger UI at ``/schema`` (also
``/schema/swagger`` and ``/docs``).

    /docs ─▶ /schema ─ server/static/api.html ─▶ /vendor/swagger-ui/*  the swagger-ui-py package
                                             └▶ /schema/openapi.json  this server's routes

Litestar's own viewers load their scripts from a CDN and run inline scripts, so on a machine
without the internet they show a blank page, and the pages' CSP would refuse them anyway. The
page here is a static file under the same CSP as the other pages; Swagger UI's files come from
the ``swagger-ui-py`` package installed with the server.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Any

from litestar import Request, Router, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Tag
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from server.http import BEARER
from server.routes.pages import SECURITY_HEADERS, STATIC, secured


def swagger_ui_files() -> Path:
    """Swagger UI's files in the installed ``swagger-ui-py`` package, found without importing
    it (its module imports Jinja2 and its framework adapters, none of which is needed)."""
    spec = find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed: pip install swagger-ui-py")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


class SwaggerPage(OpenAPIRenderPlugin):
    """Serves server/static/api.html, which loads Swagger UI and the document by URL: the
    page is the same bytes whatever the document says."""

    def __init__(self) -> None:
        super().__init__(path="/swagger")
        self.page = (STATIC / "api.html").read_bytes()

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return self.page


DESCRIPTION = """Decisioning for contact-center agent desktops.

Every operation but health and readiness needs `Authorization: Bearer <key>` (press
**Authorize**), and a key of a role that may call it; an admin key may call all of them but
the agents' and supervisors' own streams:

| role | calls |
|---|---|
| agent | decisions and interactions, its own alert stream, acknowledgements |
| supervisor | its own escalation stream |
| integration | customers' context and events |
| author | ruleset deploys, activation, rollouts, approvals; replays |
| auditor | the ledger, its proofs and explanations; rulesets and contexts, read only; replays |
| admin | everything above, and erasures |
"""


# The groups of operations, in the order the docs show them, each saying who calls it.
TAGS = [
    Tag(name="decisions", description="For agents' desktops: decisions and interactions."),
    Tag(name="alerts", description="For agents and supervisors: live alerts, escalations, acks."),
    Tag(name="customers", description="For integrations: customers' cached context and events."),
    Tag(
        name="rulesets", description="For rule authors: deploy, read, activate, roll out, approve."
    ),
    Tag(name="audit", description="For auditors: the ledger, its proofs, explanations, replays."),
    Tag(name="keys", description="For every role: whom a key belongs to."),
    Tag(name="operations", description="For load balancers and operators: liveness, readiness."),
]


def openapi_config() -> OpenAPIConfig:
    """The OpenAPI document's settings, new for each app (Litestar adds the viewer's routes to
    the router it is given)."""
    return OpenAPIConfig(
        title="Frontline",
        version="0.1.0",
        description=DESCRIPTION,
        tags=TAGS,
        use_handler_docstrings=True,
        components=Components(
            security_schemes={
                BEARER: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="An API key of a role: agent, supervisor, author, auditor, "
                    "integration or admin (FRONTLINE_API_KEYS, or the keys printed at first "
                    "start).",
                )
            }
        ),
        render_plugins=[SwaggerPage(), JsonRenderPlugin(), YamlRenderPlugin()],
        openapi_router=Router(
            "/schema", route_handlers=[], include_in_schema=False, response_headers=SECURITY_HEADERS
        ),
    )


@get("/docs", include_in_schema=False)
async def docs_page() -> Redirect:
    """The API docs, under the name other services use for them."""
    return Redirect("/schema")


swagger_ui = create_static_files_router(
    path="/vendor/swagger-ui",
    directories=[swagger_ui_files()],
    name="swagger-ui",
    include_in_schema=False,
    after_request=secured,
)

ROUTES: list[HTTPRouteHandler | Router] = [docs_page, swagger_ui]

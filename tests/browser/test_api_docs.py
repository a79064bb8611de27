"""The landing page and the API docs in a real Chromium that may reach nothing but the server:
every request to another origin is refused and recorded, and the docs must still show the
operations from the server's own copy of Swagger UI, within the pages' CSP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.live_server import KEYS, LiveServer

# How long Swagger UI may take to show the operations: it parses 1.5 MB of script, which
# took more than the usual 5 s on a shared machine under load.
RENDER = 30_000


class Offline:
    """A browser context whose requests to anywhere but ``origin`` are aborted and listed, and
    whose pages' CSP refusals are listed too."""

    def __init__(self, browser: Any, origin: str) -> None:
        self.origin = origin
        self.elsewhere: list[str] = []
        self.refused: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", self._console)

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(self.origin + "/"):
            route.continue_()
        else:
            self.elsewhere.append(url)
            route.abort("internetdisconnected")

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text:
            self.refused.append(message.text)


@pytest.fixture
def offline(browser: Any, server: LiveServer) -> Iterator[Offline]:
    found = Offline(browser, server.url)
    errors: list[str] = []
    found.page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield found
    found.context.close()
    assert not errors, f"the page raised: {errors}"


def operations(server: LiveServer) -> list[tuple[str, str]]:
    """The operations of the server's OpenAPI document."""
    document = httpx.get(server.url + "/schema/openapi.json").json()
    return [
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]


@pytest.mark.parametrize("path", ["/schema", "/schema/swagger", "/docs"])
def test_the_api_docs_show_the_operations_without_the_internet(
    offline: Offline, server: LiveServer, path: str
) -> None:
    """The viewer, its scripts and the document all come from the server: the operations are
    listed and one opens with its description, nothing left for another host, and the page's
    CSP refused nothing."""
    page = offline.page
    page.goto(server.url + path)
    decide = page.locator(".opblock-post:has(.opblock-summary-path[data-path='/v1/decisions'])")
    expect(decide).to_be_visible(timeout=RENDER)
    expect(page.locator(".opblock")).to_have_count(len(operations(server)))
    decide.locator(".opblock-summary").click()
    expect(decide.locator(".opblock-description").first).to_contain_text("durable")
    expect(page.locator(".btn.authorize")).to_be_visible()
    assert offline.elsewhere == []
    assert offline.refused == []


def test_an_operation_is_called_from_the_docs_with_a_key(
    offline: Offline, server: LiveServer
) -> None:
    """Authorize with an author's key, then Try it out on GET /v1/rulesets: the server's answer,
    200 with the starter rulesets, shows under the operation."""
    page = offline.page
    page.goto(server.url + "/docs")
    page.locator(".btn.authorize").click(timeout=RENDER)
    page.locator(".auth-container input").fill(KEYS["author"][1])
    page.locator(".auth-btn-wrapper .btn.authorize").click()
    page.locator(".btn-done").click()
    listing = page.locator(".opblock-get:has(.opblock-summary-path[data-path='/v1/rulesets'])")
    listing.locator(".opblock-summary").click()
    listing.locator(".try-out__btn").click()
    listing.locator(".btn.execute").click()
    answer = listing.locator(".live-responses-table .response")
    expect(answer.locator(".response-col_status")).to_contain_text("200", timeout=RENDER)
    expect(answer).to_contain_text("retention-desk")
    assert offline.elsewhere == []


# each link of the landing page → the page it opens, and what that page shows
DESTINATIONS = [
    ("Desktop", "/desktop", "h1", "Frontline desktop"),
    ("Rulesets", "/rulesets", "h1", "Frontline rulesets"),
    ("Audit", "/audit", "h1", "Frontline audit"),
    ("API docs", "/schema", "[data-path='/v1/decisions']", "/v1/decisions"),
    ("Metrics", "/metrics", "body", "frontline_"),
]


def test_the_landing_page_leads_to_every_page(offline: Offline, server: LiveServer) -> None:
    """From /, each link opens its page (the API docs through /docs), each says who it is for,
    and the server's readiness shows."""
    page = offline.page
    page.goto(server.url + "/")
    expect(page.locator("#status")).to_have_text("ready")
    items = page.locator("#pages li")
    expect(items).to_have_count(len(DESTINATIONS))
    for name, path, selector, text in DESTINATIONS:
        item = items.filter(has=page.get_by_role("link", name=name, exact=True))
        expect(item).to_contain_text(" for ")
        item.get_by_role("link").click()
        page.wait_for_url(f"{server.url}{path}")
        expect(page.locator(selector).first).to_contain_text(text, timeout=RENDER)
        page.go_back()
        page.wait_for_url(f"{server.url}/")
    assert offline.elsewhere == []
    assert offline.refused == []

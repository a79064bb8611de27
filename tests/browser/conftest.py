"""Browser tests: the server's pages in Debian's Chromium, driven by Playwright.

`make test` installs Chromium (as root, with apt-get) when it is missing. Without it these
tests skip with the command that installs it, or fail under CI (FRONTLINE_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.live_server import LiveServer

CHROMIUM = os.environ.get("FRONTLINE_CHROMIUM", "/usr/bin/chromium")


# Module scope, not session: Playwright's synchronous API keeps an event loop running in this
# thread while it is open, and the rest of the suite needs the thread's loop free.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        message = f"Chromium is not at {CHROMIUM}: sudo apt-get install chromium (make test does)"
        if os.environ.get("FRONTLINE_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        found = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield found
        found.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(tmp_path_factory.mktemp("frontline")) as live:
        yield live


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    found = context.new_page()
    errors: list[str] = []
    found.on("pageerror", lambda exc: errors.append(str(exc)))
    yield found
    context.close()
    assert not errors, f"the page raised: {errors}"

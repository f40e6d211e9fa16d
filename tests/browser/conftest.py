"""The market page in a real headless Chromium: Debian's `chromium` driven by Playwright
(never a browser of Playwright's own). Tests skip, saying why, where either is missing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.harness import (
    CHROMIUM,
    Opener,
    start_market_server,
    watched_pages,
)
from tests.e2e.server import Server


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One Chromium for these tests, closed after them: Playwright's sync API keeps an
    event loop running while it is open, which the asyncio tests elsewhere cannot share."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; "
                    "TICKWIRE_CHROMIUM names another)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="Playwright is not installed (the dev extra)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def market_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_market_server(tmp_path_factory.mktemp("market"))
    yield server
    server.stop()


@pytest.fixture
def open_page(browser: Any, market_server: Server) -> Iterator[Opener]:
    """Opens the market page (`path` under the server) in a fresh browser context."""
    yield from watched_pages(browser, market_server)

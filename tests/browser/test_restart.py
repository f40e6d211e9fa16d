"""The market page through a server restart (same port, same data dir): it says it is
reconnecting, comes back by itself with live prices, and a product's chart loads again."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.harness import (
    FILLERS,
    Opener,
    loaded_chart,
    start_market_server,
    table_rows,
    until,
    watched_pages,
)
from tests.e2e.server import Server

pytestmark = pytest.mark.slow

REFUSED = [re.compile(p) for p in (
    r"net::ERR_CONNECTION_REFUSED",
    r"WebSocket connection to 'ws://127\.0\.0\.1:\d+/ws' failed",
)]
"""What Chromium logs while the server is down: connections refused."""


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    """The server, then the one started in its place."""
    running = [start_market_server(tmp_path)]
    yield running
    running[-1].stop()


@pytest.fixture
def open_page(browser: Any, servers: list[Server]) -> Iterator[Opener]:
    yield from watched_pages(browser, servers[0])


def test_the_page_comes_back_after_a_restart(open_page: Opener, servers: list[Server],
                                             tmp_path: Path) -> None:
    watch = open_page()
    page = watch.page
    status = page.locator("#status")
    until(lambda: len(table_rows(watch)) == FILLERS + 4 and status.text_content() == "live",
          "the table, live")
    watch.tolerated = REFUSED
    first = servers[0]
    first.stop()
    until(lambda: status.get_attribute("data-state") == "reconnecting", "reconnecting shown")
    prices = dict(table_rows(watch))
    assert all(prices.values())  # the last prices stay on view
    servers.append(start_market_server(tmp_path, port=first.port, data_dir=first.data_dir))
    until(lambda: status.text_content() == "live", "live again", 30)

    def moved() -> int:
        changed = sum(prices[code] != price for code, price in table_rows(watch))
        return changed if changed >= 20 else 0

    until(moved, "prices moving again", 15)
    page.click("#quotes tbody tr:first-child td.name a")
    assert loaded_chart(watch, "1m")["code"] == "btcusdt"
    assert len(watch.sockets) >= 2  # one at a time: the first closed with the server

"""What the browser tests share: a real tickwire server of 24/7 crypto products (nothing
depends on the hour), pages that are watched, and ways to read the page.

Every page a test opens is watched: no console error, no page error, no dialog, no request
to another origin, one WebSocket, and no refusal by the server's rate limits or WebSocket
cap; the watch fails the test otherwise.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.server import Server, start_server

CHROMIUM = Path(os.environ.get("TICKWIRE_CHROMIUM", "/usr/bin/chromium"))
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
FILLERS = 96
"""Products added to the crypto category so that a hundred of them tick at once."""
HOSTILE_NAME = "<img src=x onerror=alert(1)>"

MAIN = [  # code, name, precision, depth, price
    ("btcusdt", "比特币", 2, 10, 98250.0),
    ("ethusdt", "以太坊", 2, 10, 3425.8),
    ("xrpusdt", "瑞波币", 4, 10, 2.315),
]
OTHER = [  # category 2, 24/7 too: one with a book, one without
    ("goldusd", "现货黄金", 2, 5, 2650.0),
    ("nodepth", "无深度测试", 2, 0, 50.0),
]


def _product(code: str, name: str, category: str, precision: int, depth: int,
             price: float) -> str:
    return (f'[[products]]\ncode = "{code}"\nname = "{name}"\ncategory = "{category}"\n'
            f"precision = {precision}\ndepth = {depth}\nhours = \"24/7\"\nprice = {price}\n"
            f"volatility = 0.03\nlot = 0.5\nvolume_precision = 4\n\n")


def write_catalogue(path: Path) -> Path:
    """Crypto (category 4, first) with a hundred products, and a second category."""
    text = '[[categories]]\nid = "4"\nname = "数字货币"\n\n'
    text += '[[categories]]\nid = "2"\nname = "国际期货"\n\n'
    for code, name, precision, depth, price in MAIN:
        text += _product(code, name, "4", precision, depth, price)
    for i in range(1, FILLERS + 1):
        text += _product(f"coin{i:03d}", f"测试币{i:03d}", "4", 3, 5, 10.0 + i)
    for code, name, precision, depth, price in OTHER:
        text += _product(code, name, "2", precision, depth, price)
    path.write_text(text, encoding="utf-8")
    return path


def server_config(catalogue: Path) -> str:
    """The catalogue, the hostile product added with `[[products]]`, the protocol's default
    limits (the page must keep to them); the fillers tick slower than the rest."""
    main = [code for code, *_ in MAIN + OTHER]
    return (f'catalogue = "{catalogue}"\n\n'
            f'[[feeds]]\nkind = "sim"\nrate = 5.0\ncodes = {main!r}\n\n'
            '[[feeds]]\nkind = "sim"\nrate = 1.0\n\n'
            f'[[products]]\ncode = "evil"\nname = "{HOSTILE_NAME}"\ncategory = "4"\n'
            "precision = 2\nprice = 10.0\n").replace("'", '"')


def start_market_server(workdir: Path, port: int | None = None,
                        data_dir: Path | None = None) -> Server:
    catalogue = write_catalogue(workdir / "catalogue.toml")
    workdir.mkdir(parents=True, exist_ok=True)
    return start_server(workdir, server_config(catalogue), data_dir=data_dir, port=port)


def refusals(server: Server) -> dict[str, float]:
    """`tickwire_refused_total` by kind, from `/metrics`."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {kind: float(value) for kind, value in
            re.findall(r'^tickwire_refused_total\{kind="(\w+)"\} ([0-9.e+]+)$', text, re.M)}


@dataclass
class Watch:
    """One page and what it did that it should not have."""

    page: Any
    origin: str
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    """Requests the Content-Security-Policy stopped before they were sent."""
    tolerated: list[re.Pattern[str]] = field(default_factory=list)
    """Console errors expected for a while (the server down: connections refused)."""

    def error(self, text: str) -> None:
        if not any(p.search(text) for p in self.tolerated):
            self.errors.append(text)

    def request(self, url: str) -> None:
        if not (url.startswith(self.origin + "/") or url == self.origin):
            self.foreign.append(url)

    def socket(self, url: str) -> None:
        self.sockets.append(url)
        self.request(url.replace("ws://", "http://", 1))


Opener = Callable[..., Watch]


_listed_at = [0.0]
LIMIT_WINDOW = 1.05
"""Each page lists the categories as it starts, within the server's limits; the limits
are per IP and second, so a page starts a second after the one before has listed them."""


def _after_the_last_listing() -> None:
    wait = _listed_at[0] + LIMIT_WINDOW - time.monotonic()
    if wait > 0:
        time.sleep(wait)


def _listed(page: Any) -> None:
    page.wait_for_function("() => window.tickwireMarket?.catalogue.complete", timeout=20_000)
    _listed_at[0] = time.monotonic()


def watched_pages(browser: Any, server: Server) -> Iterator[Opener]:
    watches: list[Watch] = []
    contexts: list[Any] = []
    before = refusals(server)

    def open_(path: str = "/market?debug", viewport: dict[str, int] | None = None,
              color_scheme: str = "light", server_: Server = server) -> Watch:
        context = browser.new_context(viewport=viewport or DESKTOP, color_scheme=color_scheme)
        contexts.append(context)
        page = context.new_page()
        watch = Watch(page, server_.url)
        page.on("console", lambda m: watch.error(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: watch.errors.append(f"page error: {e}"))
        page.on("dialog", lambda d: (watch.dialogs.append(d.message), d.dismiss()))
        page.on("request", lambda r: watch.request(r.url))
        page.on("websocket", lambda ws: watch.socket(ws.url))
        page.on("requestfailed", lambda r: watch.blocked.append(r.url)
                if r.failure == "csp" else None)  # Chromium's net::ERR_BLOCKED_BY_CSP
        page.on("response", lambda r: watch.error(f"{r.status} {r.url}")
                if r.status >= 400 else None)
        _after_the_last_listing()
        page.goto(server_.url + path)
        _listed(page)
        watches.append(watch)
        return watch

    yield open_
    for context in contexts:
        context.close()
    for watch in watches:
        assert watch.errors == [], watch.errors
        assert watch.dialogs == [], watch.dialogs
        assert watch.foreign == [], watch.foreign
        if not watch.tolerated:  # a restart reconnects: more than one socket in turn
            assert len(watch.sockets) <= 1, watch.sockets
    after = refusals(server)
    for kind in ("rate_limited", "ws_cap", "ws_flood", "bad_request"):
        assert after.get(kind, 0) == before.get(kind, 0), f"the page was refused: {kind}"


def cjk_fonts_installed() -> list[str]:
    """CJK fonts fontconfig knows of (none on a bare machine)."""
    if shutil.which("fc-list") is None:
        return []
    listed = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True,
                            text=True, timeout=30, check=False)
    return [line for line in listed.stdout.splitlines() if line.strip()]


ARTIFACTS = Path(os.environ.get("TICKWIRE_ARTIFACTS",
                                Path(__file__).resolve().parents[2] / "test-artifacts"))
"""Where the browser tests write their screenshots (`screenshots/` under it)."""


ROWS = """() => [...document.querySelectorAll('#quotes tbody tr')]
    .map(r => [r.dataset.code, r.querySelector('td.price').textContent])"""
CHART = "() => window.tickwireMarket.chart()"


def until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Polls `check` until it returns something true; its last answer is the failure's."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {answer!r})")
        time.sleep(0.25)


TEST_ADDRESS = "127.0.0.2"
"""The tests' own requests come from here: the rate limits are per IP, and the page's
budget at 127.0.0.1 is the page's alone."""


def klines(server: Server, code: str, interval: str, rows: int,
           end: int | None = None) -> list[list[Any]]:
    """redis.php's bars, oldest first, as the chart holds them: without the time string."""
    path = f"/redis.php?code={code}&time={interval}&rows={rows}"
    if end is not None:
        path += f"&end={end}"
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5,
                                            source_address=(TEST_ADDRESS, 0))
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        assert response.status == 200, response.read()
        bars = json.loads(response.read())
    finally:
        connection.close()
    return sorted([b[0], b[1], b[2], b[3], b[4], b[6]] for b in bars)


def table_rows(watch: Watch) -> list[list[str]]:
    rows: list[list[str]] = watch.page.evaluate(ROWS)
    return rows


def drawn_bars(watch: Watch) -> list[list[Any]]:
    """The chart's bars as drawn: `[open_ms, open, high, low, close, volume]`, oldest first."""
    bars: list[list[Any]] = watch.page.evaluate(CHART)["bars"]
    return bars


def loaded_chart(watch: Watch, interval: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        chart: dict[str, Any] = watch.page.evaluate(CHART)
        done = chart["interval"] == interval and not chart["loading"] and chart["bars"]
        return chart if done else None

    found: dict[str, Any] = until(ready, f"the {interval} chart drawn")
    return found



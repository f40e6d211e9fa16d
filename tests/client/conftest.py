"""Real servers for the SDK's tests, and helpers to watch a client's events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.e2e.conftest import GENEROUS_LIMITS, small_config
from tests.e2e.server import Server, start_server
from tickwire import Event

SMALL_CODES = ("fx_seurusd", "fx_susdjpy", "hf_GC", "nf_AU0", "nf_RB0", "btcusdt", "ethusdt",
               "xrpusdt", "HX_HSI", "TW_TXF", "nodepth")
"""Every product of the small test catalogue."""


DEEP_BARS = {"1m": 1500, "5m": 200}
"""Bars of btcusdt stored older than the filled history in `live`, so history pages back."""


def seed_older_bars(data_dir: Path, code: str, counts: dict[str, int]) -> None:
    """Store `counts[interval]` contiguous bars before the oldest one of each interval."""
    steps = {"1m": 60_000, "5m": 300_000}
    with contextlib.closing(sqlite3.connect(data_dir / "tickwire.sqlite3")) as conn, conn:
        for interval, count in counts.items():
            (oldest,) = conn.execute("SELECT min(open_ms) FROM bars WHERE code=? AND "
                                     "interval=?", (code, interval)).fetchone()
            step = steps[interval]
            conn.executemany("INSERT INTO bars VALUES (?,?,?,?,?,?,?,?)", [
                (code, interval, oldest - (i + 1) * step, 100.0 + i, 101.0 + i, 99.0 + i,
                 100.5 + i, float(i)) for i in range(count)])


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A small-catalogue server with rate limits out of the way, shared by read-only tests;
    btcusdt has more stored history than one request serves (`DEEP_BARS`)."""
    workdir = tmp_path_factory.mktemp("client-live")
    first = start_server(workdir, small_config(GENEROUS_LIMITS))
    first.stop()
    seed_older_bars(first.data_dir, "btcusdt", DEEP_BARS)
    srv = start_server(workdir, small_config(GENEROUS_LIMITS), data_dir=first.data_dir)
    wait_for_live_books(srv)
    yield srv
    srv.stop()


def wait_for_live_books(server: Server, timeout: float = 10) -> None:
    """Until btcusdt's quote has a book again: a restarted server first serves the quote
    restored from its store, which has no depth until the feed's next update."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{server.url}/getQuote.php?code=btcusdt", timeout=5) as r:
            if json.loads(r.read())["data"]["body"]["Depth"]:
                return
        time.sleep(0.05)
    raise AssertionError("btcusdt has no book after restart")


@pytest.fixture(scope="session")
def protocol_limits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The protocol's own limits: 3 quotes and 5 K-lines per code, 2 lists per second."""
    srv = start_server(tmp_path_factory.mktemp("protocol-limits"), small_config())
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def vendorish(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server configured the other way: gzip on, K-lines oldest first. No test leaves a
    WebSocket open on it, so a test may count its connections."""
    srv = start_server(tmp_path_factory.mktemp("client-vendorish"), small_config(
        'gzip = true\nkline_order = "oldest_first"\n' + GENEROUS_LIMITS))
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers inside a test (each stopped at its end, SIGCONT first if stopped)."""
    started: list[Server] = []

    def start(extra: str = "", **kwargs: object) -> Server:
        srv = start_server(tmp_path / f"srv{len(started)}", small_config(extra),
                           **kwargs)  # type: ignore[arg-type]
        started.append(srv)
        return srv

    yield start
    import signal

    for srv in started:
        if srv.proc.poll() is None:
            srv.proc.send_signal(signal.SIGCONT)
            srv.stop()


@pytest.fixture
def silent_url(silent_address: str) -> str:
    """The URL of a socket that accepts connections and never answers."""
    return f"http://{silent_address}"


class Events(list[Event]):
    """An `on_event` handler that keeps every event, for asserting on them."""

    def __call__(self, event: Event) -> None:
        self.append(event)

    def of(self, kind: str) -> list[Event]:
        return [e for e in self if e.kind == kind]

    async def wait_for(self, kind: str, count: int = 1, timeout: float = 10.0) -> Event:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.of(kind)) < count:
            if loop.time() > deadline:
                raise AssertionError(f"no {count} {kind!r} events in {timeout} s: "
                                     f"{[(e.kind, e.message) for e in self]}")
            await asyncio.sleep(0.01)
        return self.of(kind)[count - 1]


@contextlib.asynccontextmanager
async def fake_server(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` (a stand-in for another server of the protocol) on a free port; its URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()

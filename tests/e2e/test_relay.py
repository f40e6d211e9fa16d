"""A chain over real sockets: tickwire A (simulator) -> tickwire B (a relay of A, every
product) -> an SDK client and a raw WebSocket client of B.

B lists what A lists, pushes what A pushes byte for byte, keeps within A's rate limits while
its own clients hammer it, and its closed bars equal A's, across a SIGKILL of A for 20 s
that B's clients never notice but B's health does.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import GENEROUS_LIMITS, small_config
from tests.e2e.server import Server, free_port, http_stub, start_server
from tickwire import AsyncClient
from tickwire.client.events import Event
from tickwire.feeds.relay import RECONCILE_AFTER

WATCHED = ["btcusdt", "ethusdt", "fx_seurusd"]
OUTAGE = 20.0
TESTER = "127.0.0.9"
"""The test's own requests to A come from here, so they never count against B's limits
(A limits each client address)."""


def relay_config(upstream: Server) -> str:
    return GENEROUS_LIMITS + f"""
[[feeds]]
kind = "relay"
http_url = "{upstream.url}"
codes = "all"
connections = 2
"""


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path / "a", small_config())  # the protocol's default limits
    yield srv
    srv.stop()


@pytest.fixture
def relay(tmp_path: Path, upstream: Server) -> Iterator[Server]:
    srv = start_server(tmp_path / "b", relay_config(upstream))
    yield srv
    srv.stop()


@pytest.fixture
async def tester() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(local_addr=(TESTER, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


async def get(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
        assert resp.status == 200, (url, resp.status, await resp.text())
        return await resp.json(content_type=None)


async def listing(session: aiohttp.ClientSession, server: Server) -> list[Any]:
    categories = (await get(session, f"{server.url}/getCategory.php"))["data"]["list"]
    symbols = []
    for category in categories:
        await asyncio.sleep(0.5)  # 2 symbol lists a second
        page = await get(session, f"{server.url}/getSymbolList.php?category={category['id']}"
                                  "&page=1&pageSize=100")
        symbols.append(page["data"])
    return [categories, symbols]


async def closed_bars(session: aiohttp.ClientSession, server: Server, code: str,
                      interval: str, before_ms: int) -> list[Any]:
    rows = 600 if interval == "1m" else 300
    bars = await get(session, f"{server.url}/redis.php?code={code}&time={interval}"
                              f"&rows={rows}")
    return [bar for bar in bars if bar[0] < before_ms]


async def metric(session: aiohttp.ClientSession, server: Server, name: str) -> float:
    async with session.get(f"{server.url}/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


async def feed_state(session: aiohttp.ClientSession, server: Server) -> dict[str, Any]:
    async with session.get(f"{server.url}/healthz") as resp:
        health: dict[str, Any] = await resp.json()
    feed: dict[str, Any] = health["feeds"][0]
    return {"status": health["status"], **feed}


async def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not {what} within {timeout} s"
        await asyncio.sleep(0.2)


async def pushes(url: str, codes: list[str], seconds: float) -> list[bytes]:
    """The bodies pushed to a plain WebSocket client of `url` in `seconds`."""
    bodies: list[bytes] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str(json.dumps({"Key": ",".join(codes)}))
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = await ws.receive(timeout=left)
            except TimeoutError:
                break
            if message.type is aiohttp.WSMsgType.TEXT and '"body"' in message.data:
                bodies.append(message.data.encode())
    return bodies


def body_of(message: bytes) -> bytes:
    """The `body` of a push, as the bytes on the wire (`{"body":{...}}`)."""
    assert message.startswith(b'{"body":') and message.endswith(b"}")
    return message[len(b'{"body":'):-1]


async def compare_closed_bars(session: aiohttp.ClientSession, a: Server, b: Server,
                              codes: list[str]) -> int:
    """Every closed 1m and 5m bar of every code: A's equal B's. Returns how many."""
    now = int(time.time() * 1000)
    compared = 0
    for code in codes:
        for interval, span in (("1m", 60_000), ("5m", 300_000)):
            before = now // span * span  # the current bar is still forming
            ours = await closed_bars(session, a, code, interval, before)
            theirs = await closed_bars(session, b, code, interval, before)
            assert theirs == ours, (code, interval, [
                (x, y) for x, y in zip(ours, theirs, strict=False) if x != y][:3])
            compared += len(ours)
            await asyncio.sleep(0.25)  # within A's 5 K-line requests a second per code
    return compared


async def after_next_reconcile() -> None:
    """Sleep until the 1m bar closing next has been reconciled with the upstream's."""
    now = time.time()
    await asyncio.sleep(60 - now % 60 + RECONCILE_AFTER + 3)


@pytest.mark.timeout(400)
async def test_a_relay_chain_over_real_sockets(tmp_path: Path, upstream: Server,
                                               relay: Server,
                                               tester: aiohttp.ClientSession) -> None:
    a, b = upstream, relay
    # what B lists is what A lists
    assert await listing(tester, b) == await listing(tester, a)
    codes = [s["code"] for page in (await listing(tester, a))[1] for s in page["list"]]

    # clients of B: the SDK and a plain WebSocket, and a plain one of A to compare
    events: list[Event] = []
    async with AsyncClient(b.url, on_event=events.append) as client, \
            client.stream(WATCHED) as stream:
        await stream.ready()
        from_a, from_b = await asyncio.gather(pushes(a.ws_url, WATCHED, 6),
                                              pushes(b.ws_url, WATCHED, 7))
        assert len(from_a) > 20
        # every push A made reaches B's client with an equal body (the first and last
        # moments of the windows aside: the two clients did not start at the same instant)
        relayed = {body_of(m) for m in from_b}
        middle = from_a[len(from_a) // 10: -len(from_a) // 10]
        missing = [m for m in middle if body_of(m) not in relayed]
        assert not missing, missing[:2]
        sdk = [q.raw_json for q in [await stream.get(5) for _ in range(10)] if q is not None]
        assert len(sdk) == 10 and all(body.startswith(b'{"StockCode"') for body in sdk)

        # 50 clients hammer B's getQuote.php: A sees no quote request and refuses nothing
        quotes_before = await metric(tester, a, 'tickwire_requests_total{path="getQuote.php"}')
        refused_before = await metric(tester, a, 'tickwire_refused_total{kind="rate_limited"}')
        served = 0

        async def hammer() -> None:
            nonlocal served
            async with aiohttp.ClientSession() as session:
                stop = time.monotonic() + 5
                while time.monotonic() < stop:
                    body = await get(session, f"{b.url}/getQuote.php?code=btcusdt,ethusdt")
                    served += len(body["data"])

        await asyncio.gather(*(hammer() for _ in range(50)))
        assert served > 1000
        assert await metric(tester, a, 'tickwire_requests_total{path="getQuote.php"}') \
            == quotes_before
        assert await metric(tester, a, 'tickwire_refused_total{kind="rate_limited"}') \
            == refused_before

        # closed bars equal, once B has reconciled a bar it built from pushes
        await after_next_reconcile()
        assert await compare_closed_bars(tester, a, b, codes) > 1000

        # A dies for 20 s: B's clients stay, B says its feed is down
        a.kill()
        down_since = time.monotonic()

        async def feed_down() -> bool:
            state = await feed_state(tester, b)
            return bool(state["state"] == "down" and state["status"] == "degraded")

        await wait_for(feed_down, 15, "down in B's health")
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(b.ws_url) as plain:
            await plain.send_str(json.dumps({"Key": ",".join(WATCHED)}))
            latest = await get(session, f"{b.url}/getQuote.php?code=btcusdt")
            assert latest["data"]["body"]["StockCode"] == "btcusdt"  # the last quote, kept
            await asyncio.sleep(OUTAGE - (time.monotonic() - down_since))
            restarted = start_server(tmp_path / "a", small_config(), data_dir=a.data_dir,
                                     port=a.port)
            try:
                async def feed_live() -> bool:
                    return bool((await feed_state(tester, b))["state"] == "live")

                await wait_for(feed_live, 60, "live again in B's health")
                message = await plain.receive(timeout=10)
                assert message.type is aiohttp.WSMsgType.TEXT, message
                assert not plain.closed
                assert client.connection_state == "connected"
                assert not [e for e in events if e.kind in ("disconnected", "dead")], events
                # after recovery, B's closed bars for the whole period equal A's
                await after_next_reconcile()
                assert await compare_closed_bars(tester, restarted, b, codes) > 1000
            finally:
                restarted.stop()


def test_an_upstream_that_answers_html_is_a_clear_error_at_start(tmp_path: Path) -> None:
    """A relay pointed at something that is no server of this protocol does not start, and
    says why, naming the upstream."""
    page = b"<html><body>Welcome to nginx!</body></html>"
    with http_stub(lambda path: (200, page)) as where:
        config = tmp_path / "relay.toml"
        config.write_text(f'[server]\nport = {free_port()}\ndata_dir = "{tmp_path / "d"}"\n'
                          f'[[feeds]]\nkind = "relay"\nhttp_url = "http://{where}"\n')
        done = subprocess.run([sys.executable, "-m", "tickwire", "serve", "--config",
                               str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert f"cannot list the products of http://{where}" in done.stderr
    assert "Traceback" not in done.stderr


async def test_a_relay_restarted_while_its_upstream_is_down(
        tmp_path: Path, tester: aiohttp.ClientSession) -> None:
    """It starts from what it stored (the upstream's lists, bars, last quotes), serves them,
    says why its feed is down, and relays again once the upstream is back."""
    a = start_server(tmp_path / "a", small_config())
    b = start_server(tmp_path / "b", relay_config(a))
    try:
        stored = await get(tester, f"{b.url}/redis.php?code=btcusdt&time=5m&rows=300")
    finally:
        b.stop()
        a.stop()
    b = start_server(tmp_path / "b", relay_config(a), data_dir=b.data_dir, port=b.port,
                     ready=False)
    try:
        async def down_saying_why() -> bool:
            state = await feed_state(tester, b)
            return bool(state["state"] == "down"
                        and f"127.0.0.1:{a.port}" in (state.get("error") or ""))

        await wait_for(down_saying_why, 30, "down, naming the upstream")
        served = await get(tester, f"{b.url}/redis.php?code=btcusdt&time=5m&rows=300")
        assert served[1:] == stored[1:]  # the closed bars it stored
        quote = await get(tester, f"{b.url}/getQuote.php?code=btcusdt")
        assert quote["data"]["body"]["StockCode"] == "btcusdt"
        a = start_server(tmp_path / "a", small_config(), data_dir=a.data_dir, port=a.port)

        async def live() -> bool:
            async with tester.get(f"{b.url}/healthz") as resp:
                return resp.status == 200 and (await feed_state(tester, b))["state"] == "live"

        await wait_for(live, 60, "live once the upstream is back")
    finally:
        b.stop()
        a.stop()


def test_an_upstream_that_refuses_this_address_is_a_clear_error_at_start(
        tmp_path: Path) -> None:
    """The upstream answers 403 (this server's address is not on its allow-list): the start
    stops with the upstream's own words."""
    upstream = start_server(tmp_path / "a", small_config(
        '[access]\nallow = ["127.0.0.9/32"]\n'), ready=False)
    try:
        config = tmp_path / "relay.toml"
        config.write_text(f'[server]\nport = {free_port()}\ndata_dir = "{tmp_path / "d"}"\n'
                          + relay_config(upstream))
        done = subprocess.run([sys.executable, "-m", "tickwire", "serve", "--config",
                               str(config)], capture_output=True, text=True, timeout=60)
    finally:
        upstream.stop()
    assert done.returncode != 0
    assert f"cannot list the products of {upstream.url}" in done.stderr
    assert "IP 127.0.0.1 is not authorized" in done.stderr
    assert "Traceback" not in done.stderr

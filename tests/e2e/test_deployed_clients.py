"""What clients already deployed against the vendor's service need (PROTOCOL sections 1, 7
and 8): no frame but `body` (and the pong asked for) on a plain `/ws`, error replies only on
`/ws?errors=1`, the root answering health checks (a redirect to the market page) and
WebSocket upgrades, and the codes those clients default to."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import GENEROUS_LIMITS, small_config
from tests.e2e.server import Server, start_server

LISTEN_SECONDS = 60.0
"""How long the misbehaving clients are watched."""

BAD_MESSAGES: list[str | bytes] = [
    '{"Key":"btcusdt,nosuch"}', "this is not json", '{"hello":1}', '{"Key":5}', "[1,2]",
    b"\x00\x01",
]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("deployed"), small_config(GENEROUS_LIMITS))
    yield srv
    srv.stop()


async def listen(url: str, seconds: float) -> list[dict[str, Any]]:
    """Send the bad messages, then heartbeats every 10 s; every text frame received."""
    received: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        for message in BAD_MESSAGES:
            if isinstance(message, bytes):
                await ws.send_bytes(message)
            else:
                await ws.send_str(message)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        next_ping = loop.time()
        while (left := deadline - loop.time()) > 0:
            if loop.time() >= next_ping:
                await ws.send_str(json.dumps({"ping": int(time.time())}))
                next_ping += 10
            try:
                msg = await ws.receive(timeout=min(left, max(next_ping - loop.time(), 0.01)))
            except TimeoutError:
                continue
            if msg.type == aiohttp.WSMsgType.TEXT:
                received.append(json.loads(msg.data))
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                              aiohttp.WSMsgType.ERROR):
                raise AssertionError(f"the server closed the connection: {msg}")
    return received


def metric(server: Server, name: str) -> float:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    assert found, name
    return float(found[1])


@pytest.mark.slow
async def test_plain_ws_sends_only_bodies_and_pongs_and_errors_1_sends_the_errors(
        deployed: Server) -> None:
    plain, opted_in, root = await asyncio.gather(
        listen(deployed.ws_url, LISTEN_SECONDS),
        listen(deployed.ws_url + "?errors=1", LISTEN_SECONDS),
        listen(f"ws://127.0.0.1:{deployed.port}/", 3))
    for frames in (plain, root):
        assert frames and all(set(f) in ({"body"}, {"pong"}) for f in frames), \
            [f for f in frames if "body" not in f][:5]
        assert {f["body"]["StockCode"] for f in frames if "body" in f} == {"btcusdt"}
        assert sum("pong" in f for f in frames) >= 1
    assert sum("pong" in f for f in plain) == 6  # one heartbeat every 10 s for a minute
    errors = [f for f in opted_in if "code" in f]
    assert {"code": 404, "msg": "unknown code: nosuch"} in errors
    assert [f["code"] for f in errors].count(400) == 5  # the other five bad messages
    assert {f["body"]["StockCode"] for f in opted_in if "body" in f} == {"btcusdt"}
    assert metric(deployed, "tickwire_ws_ignored_total") >= 2 * len(BAD_MESSAGES)


def test_the_root_answers_health_checks(deployed: Server) -> None:
    """A redirect to the market page, which answers 200 (PROTOCOL section 1)."""
    for method in ("GET", "HEAD"):
        connection = http.client.HTTPConnection("127.0.0.1", deployed.port, timeout=5)
        connection.request(method, "/")
        first = connection.getresponse()
        assert (first.status, first.getheader("Location")) == (302, "market")
        connection.close()
        request = urllib.request.Request(deployed.url, method=method)
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert resp.status == 200 and resp.url == f"{deployed.url}/market"
            assert resp.headers["Content-Type"].startswith("text/html")


async def test_an_upgrade_on_the_root_streams_like_ws(deployed: Server) -> None:
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(f"ws://127.0.0.1:{deployed.port}") as ws:
        await ws.send_str('{"Key":"ethusdt"}')
        first = await ws.receive_json(timeout=10)
        assert first["body"]["StockCode"] == "ethusdt"
        await ws.send_str('{"ping":7}')
        while "pong" not in (reply := await ws.receive_json(timeout=10)):
            assert set(reply) == {"body"}
        assert reply == {"pong": 7}


@pytest.mark.parametrize("code", ["RT_AU", "RT_AG"])
async def test_the_codes_deployed_clients_default_to_quote_and_stream(server: Server,
                                                                      code: str) -> None:
    with urllib.request.urlopen(f"{server.url}/getQuote.php?code={code}", timeout=5) as resp:
        body = json.loads(resp.read())["data"]["body"]
    assert body["StockCode"] == code and body["Price"] > 0
    async with aiohttp.ClientSession() as session, session.ws_connect(server.ws_url) as ws:
        await ws.send_str(json.dumps({"Key": code}))
        pushed = await ws.receive_json(timeout=10)
    assert pushed["body"]["StockCode"] == code

"""PROTOCOL section 8: the WebSocket, over real sockets against a real server."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.e2e.server import Server

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def ws(server: Server) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A connection that opted in to error replies (`?errors=1`, PROTOCOL section 8)."""
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(server.ws_url + "?errors=1") as sock:
        yield sock


async def receive_json(sock: aiohttp.ClientWebSocketResponse, timeout: float = 5) -> Any:
    message = await sock.receive(timeout)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    return json.loads(message.data)


async def collect(sock: aiohttp.ClientWebSocketResponse, seconds: float) -> list[Any]:
    out: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            message = await sock.receive(left)
        except TimeoutError:
            break
        if message.type != aiohttp.WSMsgType.TEXT:
            out.append(message)
            break
        out.append(json.loads(message.data))
    return out


def codes_of(messages: list[Any]) -> list[str]:
    return [m["body"]["StockCode"] for m in messages if isinstance(m, dict) and "body" in m]


async def test_ping_is_echoed_with_its_type(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_str('{"ping":1689303517}')
    assert await receive_json(ws) == {"pong": 1689303517}
    await ws.send_str('{"ping":"1689303517"}')
    assert await receive_json(ws) == {"pong": "1689303517"}
    await ws.send_str('{"ping":1.5}')
    assert await receive_json(ws) == {"pong": 1.5}


async def test_key_gives_a_snapshot_per_code_then_updates(
    ws: aiohttp.ClientWebSocketResponse,
) -> None:
    await ws.send_str('{"Key":"btcusdt,ethusdt,xrpusdt"}')
    first = [await receive_json(ws) for _ in range(3)]
    assert codes_of(first) == ["btcusdt", "ethusdt", "xrpusdt"]
    later = await collect(ws, 2.0)
    assert set(codes_of(later)) == {"btcusdt", "ethusdt", "xrpusdt"}
    assert len(later) >= 10  # 5 updates per product per second by default


async def test_push_body_is_the_quote_object(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_str('{"Key":"btcusdt"}')
    message = await receive_json(ws)
    assert list(message) == ["body"]
    assert list(message["body"]) == [
        "StockCode", "Price", "Open", "LastClose", "High", "Low", "Time", "LastTime", "BP1",
        "BV1", "SP1", "SV1", "TotalVol", "Depth", "BS", "Info", "lastSize", "Diff", "DiffRate",
    ]


async def test_key_is_additive_and_extra_keys_are_ignored(
    ws: aiohttp.ClientWebSocketResponse,
) -> None:
    await ws.send_str('{"Key":"btcusdt","event":"REG","extra":{"a":1}}')
    assert codes_of([await receive_json(ws)]) == ["btcusdt"]
    await ws.send_str('{"Key":"ethusdt"}')
    received = await collect(ws, 2.0)
    assert {"btcusdt", "ethusdt"} <= set(codes_of(received))


async def test_codes_are_trimmed_and_sent_once(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_str('{"Key":" btcusdt , btcusdt,,btcusdt "}')
    assert codes_of([await receive_json(ws)]) == ["btcusdt"]
    await ws.send_str('{"Key":"btcusdt"}')  # already subscribed: no second snapshot stream
    received = await collect(ws, 1.0)
    assert all(c == "btcusdt" for c in codes_of(received))
    # one push per update: never the same LastTime+Price twice in a row from duplicates
    bodies = [m["body"] for m in received if "body" in m]
    pairs = list(itertools.pairwise(bodies))
    assert not any(a == b for a, b in pairs)


async def test_unknown_code_gets_404_and_known_ones_still_subscribe(
    ws: aiohttp.ClientWebSocketResponse,
) -> None:
    await ws.send_str('{"Key":"nosuch,btcusdt"}')
    messages = [await receive_json(ws) for _ in range(2)]
    assert {"code": 404, "msg": "unknown code: nosuch"} in messages
    assert codes_of(messages) == ["btcusdt"]


async def test_unkey_stops_updates(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_str('{"Key":"btcusdt,ethusdt"}')
    await collect(ws, 0.5)
    await ws.send_str('{"UnKey":"btcusdt"}')
    await collect(ws, 0.3)  # whatever was already in flight
    received = await collect(ws, 1.5)
    assert codes_of(received) and set(codes_of(received)) == {"ethusdt"}


@pytest.mark.parametrize(("frame", "msg"), [
    ("not json", "malformed JSON"),
    ("[1,2,3]", "a message must be a JSON object"),
    ("42", "a message must be a JSON object"),
    ('{"hello":1}', "unknown message"),
    ('{"Key":123}', "Key must be a string"),
])
async def test_bad_messages_get_400_and_the_connection_stays(
    ws: aiohttp.ClientWebSocketResponse, frame: str, msg: str,
) -> None:
    await ws.send_str(frame)
    reply = await receive_json(ws)
    assert reply["code"] == 400 and msg in reply["msg"]
    await ws.send_str('{"ping":7}')
    assert await receive_json(ws) == {"pong": 7}


async def test_binary_frames_get_400(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_bytes(b'{"ping":1}')
    reply = await receive_json(ws)
    assert reply["code"] == 400 and "binary" in reply["msg"]


async def test_a_frame_over_64k_closes_with_1009(server: Server) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(server.ws_url) as sock:
        await sock.send_str('{"Key":"' + "a" * 70_000 + '"}')
        message = await sock.receive(5)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert sock.close_code == 1009


async def test_frames_without_body_are_safe_for_clients(
    ws: aiohttp.ClientWebSocketResponse,
) -> None:
    """Clients ignore frames without `body`: every push has it, control messages don't."""
    await ws.send_str('{"Key":"btcusdt"}')
    await ws.send_str('{"ping":1}')
    received = await collect(ws, 1.0)
    for message in received:
        assert ("body" in message) != ("pong" in message or "code" in message)


async def test_updates_follow_the_quote_endpoint(server: Server,
                                                 ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_str('{"Key":"ethusdt"}')
    await receive_json(ws)
    pushed = (await receive_json(ws))["body"]
    url = f"{server.url}/getQuote.php?code=ethusdt"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        polled = (await resp.json())["data"]["body"]
    assert int(polled["LastTime"]) >= int(pushed["LastTime"])
    assert list(polled) == list(pushed)

"""A WebSocket after its handshake: the socket handed from aiohttp to a `Connection` of its
own. Nothing of aiohttp's request is kept, the place under the cap per IP is given back
however the socket ends, messages are handled in the order sent, and a client that does
not answer our close is cut."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.e2e import rawws
from tests.e2e.server import SMALL_CATALOGUE
from tests.e2e.test_ws_fuzz import frame
from tests.engine.test_redis import eventually
from tests.gateway.test_fanout import Silent, body
from tickwire.config import load_config
from tickwire.gateway import wsconn
from tickwire.gateway.state import GATEWAY
from tickwire.server import Server, build

CAP = 3


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Server, TestClient]]:  # type: ignore[type-arg]
    config = load_config(None, {
        "server.data_dir": str(tmp_path / "data"), "server.catalogue": str(SMALL_CATALOGUE),
        "access.ws_connections_per_ip": CAP,
    }, environ={})
    server = build(config, feeds=[Silent()])
    async with TestClient(TestServer(server.app)) as client:
        yield server, client


async def raw(client: TestClient,  # type: ignore[type-arg]
              recv_buffer: int | None = None) -> socket.socket:
    """A bare socket past its handshake (blocking: use it from a thread); a small
    `recv_buffer` makes one that soon stops taking what the server sends."""
    assert client.port is not None
    sock = await asyncio.to_thread(rawws.connect, client.port, "127.0.0.1", recv_buffer)
    sock.settimeout(5)
    return sock


async def test_nothing_of_aiohttps_request_is_kept_after_the_handshake(
        served: tuple[Server, TestClient]) -> None:  # type: ignore[type-arg]
    server, client = served
    hub = server.app[GATEWAY].hub
    sockets = [await client.ws_connect("/ws") for _ in range(CAP)]
    for ws in sockets:
        await ws.send_str('{"Key":"btcusdt"}')
    await eventually(lambda: hub.subscription_count == CAP, "subscribed")
    assert client.server.runner is not None and client.server.runner.server is not None
    assert client.server.runner.server.connections == []  # aiohttp holds none of them
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, web.BaseRequest)]
    server.engine.publish([("btcusdt", body("btcusdt", 1))])
    for ws in sockets:
        pushed = json.loads((await ws.receive(5)).data)["body"]
        assert pushed["N"] == 1
        await ws.close()


async def test_the_place_under_the_cap_is_given_back_however_the_socket_ends(
        served: tuple[Server, TestClient]) -> None:  # type: ignore[type-arg]
    server, client = served
    hub = server.app[GATEWAY].hub
    closing = await client.ws_connect("/ws")  # ends with a close frame
    cut = await raw(client)  # ends with the socket cut, no close frame
    kept = await client.ws_connect("/ws")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws")
    assert refused.value.status == 429
    await closing.close()
    assert closing.close_code == 1000
    cut.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    cut.close()  # a reset
    await eventually(lambda: len(hub.connections) == 1, "both gone from the hub")
    again = [await client.ws_connect("/ws") for _ in range(CAP - 1)]  # both places back
    for ws in (kept, *again):
        await ws.close()


async def test_messages_are_handled_in_the_order_sent(
        served: tuple[Server, TestClient]) -> None:  # type: ignore[type-arg]
    server, client = served
    hub = server.app[GATEWAY].hub
    sock = await raw(client)
    messages = ['{"Key":"btcusdt,ethusdt"}', '{"UnKey":"btcusdt"}', '{"Key":"xrpusdt"}',
                '{"UnKey":"xrpusdt"}', '{"Key":"fx_seurusd"}']
    # one message cut into three frames with a ping between them, then the rest, one write
    first = messages[0].encode()
    data = (frame(0x1, first[:5], fin=False) + frame(0x9, b"hb") + frame(0x0, first[5:9], fin=False)
            + frame(0x0, first[9:]) + b"".join(frame(0x1, m.encode()) for m in messages[1:]))
    await asyncio.to_thread(sock.sendall, data)
    assert await asyncio.to_thread(rawws.read_frame, sock) == (0xA, b"hb")  # the pong
    (conn,) = hub.connections
    await eventually(lambda: conn.codes == {"ethusdt", "fx_seurusd"}, f"in order: {conn.codes}")
    sock.close()


async def test_a_client_that_does_not_answer_our_close_is_cut(
        served: tuple[Server, TestClient], monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[type-arg]
    server, client = served
    monkeypatch.setattr(wsconn, "CLOSE_TIMEOUT", 0.2)
    hub = server.app[GATEWAY].hub
    sock = await raw(client)
    await eventually(lambda: len(hub.connections) == 1, "connected")
    hub.close_unallowed(lambda ip: False)  # the allow-list changed under it
    assert await asyncio.to_thread(rawws.read_frame, sock) == (
        0x8, struct.pack("!H", 1008) + b"IP 127.0.0.1 is not authorized")
    # it sends on and never answers: its socket is cut all the same
    await asyncio.to_thread(sock.sendall, frame(0x1, b'{"ping":1}'))
    assert await asyncio.to_thread(sock.recv, 100) == b""
    sock.close()
    assert not hub.connections


async def test_a_client_close_is_answered_and_the_socket_closed(
        served: tuple[Server, TestClient]) -> None:  # type: ignore[type-arg]
    server, client = served
    sock = await raw(client)
    await asyncio.to_thread(sock.sendall, frame(0x8, struct.pack("!H", 1001) + b"bye"))
    assert await asyncio.to_thread(rawws.read_frame, sock) == (0x8, struct.pack("!H", 1000))
    assert await asyncio.to_thread(sock.recv, 100) == b""
    sock.close()
    await eventually(lambda: not server.app[GATEWAY].hub.connections, "gone")


async def test_a_fault_of_ours_in_a_message_ends_that_connection_only(
        served: tuple[Server, TestClient], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[type-arg]
    server, client = served
    hub = server.app[GATEWAY].hub
    other = await client.ws_connect("/ws")
    await other.send_str('{"Key":"btcusdt"}')
    await eventually(lambda: hub.subscription_count == 1, "the other subscribed")

    async def broken(conn: object, text: str) -> None:
        raise ValueError("a bug")

    monkeypatch.setattr(hub, "handle_text", broken)
    faulty = await client.ws_connect("/ws")
    await faulty.send_str('{"Key":"ethusdt"}')
    closed = await faulty.receive(5)
    assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 1011
    assert "handling a client message failed" in caplog.text
    server.engine.publish([("btcusdt", body("btcusdt", 7))])
    assert json.loads((await other.receive(5)).data)["body"]["N"] == 7
    await other.close()


async def test_pings_from_a_client_that_never_reads_are_bounded(
        served: tuple[Server, TestClient]) -> None:  # type: ignore[type-arg]
    server, client = served
    hub = server.app[GATEWAY].hub
    sock = await raw(client, recv_buffer=4096)
    await eventually(lambda: len(hub.connections) == 1, "connected")
    (conn,) = hub.connections
    pings = frame(0x9, b"p" * 125) * 30_000  # 3.9 MB of pongs asked for, none read
    await asyncio.to_thread(sock.sendall, pings)
    await eventually(lambda: conn.transport.get_write_buffer_size() > 0, "pongs waiting")
    await asyncio.sleep(0.3)
    bound = 2 * hub.settings.max_pending_bytes  # room for the replies of a slow reader
    assert conn.transport.get_write_buffer_size() <= bound + 131
    sock.close()


async def test_the_place_is_held_until_the_socket_closes_and_a_stuck_one_is_cut(
        served: tuple[Server, TestClient], monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[type-arg]
    server, client = served
    monkeypatch.setattr(wsconn, "CLOSE_TIMEOUT", 3.0)  # room for the checks below
    hub = server.app[GATEWAY].hub
    stuck = await raw(client, recv_buffer=4096)
    await asyncio.to_thread(rawws.send_text, stuck, '{"Key":"btcusdt"}')
    await eventually(lambda: hub.subscription_count == 1, "subscribed")
    (conn,) = hub.connections
    for n in range(40):  # more than its socket takes: it stops reading
        server.engine.publish([("btcusdt", body("btcusdt", n, pad=60_000))])
        await asyncio.sleep(0)
    await eventually(lambda: conn.transport.get_write_buffer_size() > 0, "a full socket")
    await asyncio.to_thread(stuck.sendall, frame(0x8, struct.pack("!H", 1000)))
    await eventually(lambda: conn.closing, "its close read")
    others = [await client.ws_connect("/ws") for _ in range(CAP - 1)]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:  # still counted
        await client.ws_connect("/ws")
    assert refused.value.status == 429
    await eventually(lambda: conn.gone, "cut after CLOSE_TIMEOUT")
    freed = await client.ws_connect("/ws")  # its place is given back
    await freed.close()
    stuck.close()
    for ws in others:
        await ws.close()


async def test_bytes_sent_with_the_handshake_are_read(
        served: tuple[Server, TestClient]) -> None:  # type: ignore[type-arg]
    server, client = served
    hub = server.app[GATEWAY].hub
    assert client.port is not None
    sock = socket.create_connection(("127.0.0.1", client.port))
    sock.settimeout(5)
    head = (b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n")
    await asyncio.to_thread(sock.sendall, head + frame(0x1, b'{"Key":"ethusdt"}'))
    answer = await asyncio.to_thread(sock.recv, 4096)
    assert answer.startswith(b"HTTP/1.1 101 ")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in answer
    await eventually(lambda: hub.subscription_count == 1, "the early Key read")
    sock.close()


async def test_a_handshake_while_shutting_down_is_refused(
        served: tuple[Server, TestClient]) -> None:  # type: ignore[type-arg]
    server, client = served
    server.app[GATEWAY].hub.closed = True
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws")
    assert refused.value.status == 503

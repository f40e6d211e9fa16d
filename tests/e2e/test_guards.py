"""Guards over real sockets: connection caps, liveness, slow readers, floods, hostile input.

Short timeouts are configured so that each rule shows in a second or two.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.e2e import rawws
from tests.e2e.conftest import GENEROUS_LIMITS, small_config
from tests.e2e.server import Server, start_server

GUARDED = GENEROUS_LIMITS + """
[websocket]
ping_interval = 1
idle_timeout = 2.5
max_pending_bytes = 65536
slow_timeout = 3
messages_per_second = 20
flood_timeout = 3
[[feeds]]
kind = "sim"
rate = 40.0
"""
ALL_CODES = ("fx_seurusd,fx_susdjpy,hf_GC,nf_RB0,nf_AU0,btcusdt,ethusdt,xrpusdt,HX_HSI,TW_TXF,"
             "nodepth")


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("guards"),
                       small_config("http_idle_timeout = 2\n" + GUARDED))
    yield srv
    srv.stop()


def metric(server: Server, name: str, labels: str = "") -> float:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    match = re.search(rf"^{re.escape(name + labels)} ([0-9.e+]+)$", text, re.M)
    return float(match[1]) if match else 0.0


async def served_normally(server: Server) -> None:
    """A well-behaved client right after: a quote over HTTP and a push over the WebSocket."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/getQuote.php?code=btcusdt") as resp:
            assert resp.status == 200
        async with session.ws_connect(server.ws_url) as ws:
            await ws.send_str('{"Key":"ethusdt"}')
            message = json.loads((await ws.receive(5)).data)
            assert message["body"]["StockCode"] == "ethusdt"


def session_from(ip: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(ip, 0)))


# connection cap ---------------------------------------------------------------------------

async def test_seventh_connection_refused_and_admitted_after_one_closes(guarded: Server) -> None:
    async with session_from("127.0.0.4") as session:
        sockets = [await session.ws_connect(guarded.ws_url) for _ in range(6)]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(guarded.ws_url)
        assert refused.value.status == 429
        async with session.get(guarded.ws_url.replace("ws://", "http://"),
                               headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                        "Sec-WebSocket-Version": "13"}) as resp:
            body = await resp.json(content_type=None)
            assert resp.status == 429 and body["code"] == 429
            assert "at most 6" in body["msg"] and "127.0.0.4" in body["msg"]
        async with session_from("127.0.0.5") as other, other.ws_connect(guarded.ws_url):
            pass  # another IP is not affected
        await sockets[0].close()
        seventh = await session.ws_connect(guarded.ws_url)
        await seventh.send_str('{"ping":7}')
        assert json.loads((await seventh.receive(5)).data) == {"pong": 7}
        for ws in [*sockets[1:], seventh]:
            await ws.close()


# liveness ---------------------------------------------------------------------------------

def test_silent_connection_closed_while_a_ping_answering_one_stays(guarded: Server) -> None:
    silent = rawws.connect(guarded.port)
    silent.settimeout(10)

    async def quiet_but_alive() -> int:
        async with aiohttp.ClientSession() as session, session.ws_connect(
            guarded.ws_url, autoping=True
        ) as ws:
            await ws.send_str('{"Key":"btcusdt"}')
            pushes = 0
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                message = await ws.receive(deadline - time.monotonic() + 0.1)
                assert message.type == aiohttp.WSMsgType.TEXT, message
                pushes += 1
            assert not ws.closed
            return pushes

    began = time.monotonic()
    pushes = asyncio.run(quiet_but_alive())  # never sends a heartbeat, only answers pings
    closed = rawws.read_until_close(silent)
    silent.close()
    assert pushes > 20
    assert closed == (1001, "idle: nothing received for 2.5 s")
    assert time.monotonic() - began < 10


# slow readers -----------------------------------------------------------------------------

STOPPED_READER = f"""
import sys, time
sys.path.insert(0, {os.getcwd()!r})
from tests.e2e import rawws
sock = rawws.connect(int(sys.argv[1]), recv_buffer=4096)
rawws.send_text(sock, '{{"Key":"{ALL_CODES}"}}')
rawws.read_frame(sock)
print("reading", flush=True)
while True:
    rawws.read_frame(sock)
"""


def test_stopped_reader_is_closed_and_does_not_slow_others(guarded: Server) -> None:
    reader = subprocess.Popen([sys.executable, "-c", STOPPED_READER, str(guarded.port)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "reading"
        closed_before = closed_by_server(guarded)

        async def healthy(seconds: float) -> tuple[list[float], int]:
            """Heartbeat round trips and pushes received by a healthy reader."""
            rtts, pushes = [], 0
            async with aiohttp.ClientSession() as session, session.ws_connect(
                    guarded.ws_url) as ws:
                await ws.send_str('{"Key":"' + ALL_CODES + '"}')
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    sent = time.monotonic()
                    await ws.send_str(json.dumps({"ping": sent}))
                    while True:
                        data = json.loads((await ws.receive(5)).data)
                        if "pong" in data:
                            rtts.append(time.monotonic() - sent)
                            break
                        pushes += 1
                    await asyncio.sleep(0.05)
            return rtts, pushes

        before, pushes_before = asyncio.run(healthy(2))
        rss_before = guarded.rss_kib()
        reader.send_signal(signal.SIGSTOP)
        during, pushes_during = asyncio.run(healthy(6))
        rss_during = guarded.rss_kib()
        deadline = time.monotonic() + 10
        while closed_by_server(guarded) == closed_before:  # idle or slow, whichever is first
            assert time.monotonic() < deadline, "stopped reader never closed"
            time.sleep(0.2)
    finally:
        reader.send_signal(signal.SIGCONT)
        reader.kill()
        reader.wait()
    p99 = statistics.quantiles(during, n=100)[98]
    assert p99 < max(3 * statistics.quantiles(before, n=100)[98], 0.05)
    assert pushes_during / 6 > 0.7 * pushes_before / 2
    assert rss_during - rss_before < 16 * 1024  # KiB: the bound is 64 KiB a connection


def closed_by_server(server: Server) -> float:
    return sum(metric(server, "tickwire_ws_closed_total", f'{{reason="{reason}"}}')
               for reason in ("slow_reader", "idle"))


def test_reader_that_stays_behind_is_closed_with_1008(guarded: Server) -> None:
    """Alive (it sends heartbeats) but never reads: the slow-reader rule, not the idle one."""
    sock = rawws.connect(guarded.port, recv_buffer=4096)
    rawws.send_text(sock, '{"Key":"' + ALL_CODES + '"}')
    before = metric(guarded, "tickwire_ws_closed_total", '{reason="slow_reader"}')
    began = time.monotonic()
    while metric(guarded, "tickwire_ws_closed_total", '{reason="slow_reader"}') == before:
        assert time.monotonic() - began < 20, "a reader that stays behind was never closed"
        rawws.send_text(sock, '{"ping":1}')
        time.sleep(0.3)
    sock.settimeout(5)
    closed = rawws.read_until_close(sock)
    sock.close()
    if closed is not None:  # the close frame may be cut off with the socket: then no frame
        code, reason = closed
        assert code == 1008 and reason.startswith("slow reader: more than 65536 bytes")


# message floods ---------------------------------------------------------------------------

async def test_a_thousand_messages_a_second_are_dropped_then_the_flood_closed(
    guarded: Server,
) -> None:
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(guarded.ws_url + "?errors=1") as ws:
        for i in range(1000):
            await ws.send_str(json.dumps({"ping": i}))
        pongs, warnings = 0, []
        while True:
            message = await ws.receive(5)
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "pong" in data:
                pongs += 1
            elif data.get("code") == 429:
                warnings.append(data["msg"])
            if pongs + len(warnings) >= 21:
                break
        assert pongs <= 21 and warnings
        assert "too many messages: at most 20 a second" in warnings[0]
        # keep flooding past flood_timeout: closed with 1008
        closed = None
        for _ in range(800):
            if ws.closed:
                break
            await ws.send_str('{"ping":1}')
            try:
                message = await ws.receive(0.01)
                if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    closed = message
                    break
            except TimeoutError:
                pass
        else:
            pytest.fail("a flood past flood_timeout was not closed")
        assert ws.close_code == 1008
        assert closed is None or "message flood" in (closed.extra or "")
    await served_normally(guarded)


# hostile input ----------------------------------------------------------------------------

HOSTILE_HTTP = [
    ("/redis.php?code=btcusdt&time=1m&rows=", 400, "bad parameter rows"),
    ("/redis.php?code=btcusdt&time=1m&rows=-1", 400, "bad parameter rows: must be at least 1"),
    ("/redis.php?code=btcusdt&time=1m&rows=1e3", 400, "is not a whole number"),
    ("/redis.php?code=btcusdt&time=5y", 400, "bad parameter time"),
    ("/getSymbolList.php?category=", 400, "missing parameter: category"),
    ("/getSymbolList.php?category=-4", 404, "unknown category"),
    ("/getSymbolList.php?category=" + "9" * 50, 404, "unknown category"),
    ("/getSymbolList.php?category=4&page=-2", 400, "bad parameter page"),
    ("/getSymbolList.php?category=4&pageSize=", 400, "bad parameter pageSize"),
    ("/getSymbolList.php?category=4&pageSize=0", 400, "bad parameter pageSize"),
    ("/getQuote.php?code=%22%27", 404, "unknown code"),
    ("/getQuote.php?code=a;DROP%20TABLE%20bars", 404, "unknown code"),
    ("/getQuote.php?code=../../etc/passwd", 404, "unknown code: ../../etc/passwd"),
    ("/getQuote.php?code=a%00b", 404, "unknown code: a\x00b"),
    ("/getQuote.php?code=%FF%FE", 404, "unknown code"),
    ("/getQuote.php?code=" + "x" * 5_000, 400, "longer than 2048 characters"),
    ("/redis.php?code=" + "x" * 5_000 + "&time=1m", 400, "longer than 2048 characters"),
    ("/getQuote.php?code=" + "x" * 10_000, 400, "request line or header too long"),
    ("/getQuote.php?code=" + "x" * 1_000_000, 400, "too long"),
]


def http_get(url: str, attempts: int = 5) -> tuple[int, dict[str, Any]]:
    """Status and JSON body. A request line of a megabyte is answered after its first 8 KiB
    and the connection closed; a client still sending then may see it reset before it reads
    the answer, so such a reset is tried again (the answer is what is tested)."""
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
        except (urllib.error.URLError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            if attempt == attempts - 1 or not isinstance(reason, ConnectionError):
                raise
    raise AssertionError("unreachable")


def test_hostile_http_gets_clear_errors_and_memory_returns(guarded: Server) -> None:
    rss_before = guarded.rss_kib()
    for _ in range(3):
        for path, status, msg in HOSTILE_HTTP:
            code, body = http_get(guarded.url + path)
            assert (code, body["code"]) == (status, status), path[:80]
            assert msg in body["msg"], (path[:80], body["msg"])
            assert body["data"] is None
    huge = http_get(f"{guarded.url}/redis.php?code=btcusdt&time=1m&rows=" + "9" * 500)
    assert huge[0] == 200 and len(huge[1]) == 600  # more than the most is clamped
    asyncio.run(served_normally(guarded))
    assert guarded.rss_kib() - rss_before < 16 * 1024


def test_trickling_requests_and_unfinished_handshakes_are_cut(guarded: Server) -> None:
    trickle = socket.create_connection(("127.0.0.1", guarded.port))
    handshake = socket.create_connection(("127.0.0.1", guarded.port))
    handshake.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
    began = time.monotonic()
    trickle.settimeout(0.5)
    cut = False
    for byte in b"GET /getCategory.php HTTP/1.1\r\nHost: x\r\n":
        try:
            trickle.sendall(bytes([byte]))
            if trickle.recv(1024) == b"":
                cut = True
                break
        except TimeoutError:
            continue
        except OSError:
            cut = True
            break
    assert cut, "a request trickling in was never cut off"
    assert time.monotonic() - began < 6
    handshake.settimeout(5)
    assert handshake.recv(1024) == b""  # closed by then too
    asyncio.run(served_normally(guarded))


async def test_hostile_websocket_messages(guarded: Server) -> None:
    cases = [
        ("[" * 10_000 + "]" * 10_000, "malformed JSON"),
        ('{"a":' * 5_000 + "1" + "}" * 5_000, "malformed JSON"),
        ("null", "a message must be a JSON object"),
        ('"text"', "a message must be a JSON object"),
        ('{"Key":"' + ",".join(f"c{i}" for i in range(600)) + '"}', "too many codes"),
        ('{"UnKey":[]}', "UnKey must be a string"),
    ]
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(guarded.ws_url + "?errors=1") as ws:
        for frame, msg in cases:
            await ws.send_str(frame)
            reply = json.loads((await ws.receive(5)).data)
            assert reply["code"] == 400 and msg in reply["msg"], (frame[:40], reply)
            await asyncio.sleep(0.06)  # stay inside the message budget
    async with aiohttp.ClientSession() as session, session.ws_connect(guarded.ws_url) as ws:
        await ws.send_str('{"Key":"' + ",".join(f"c{i}" for i in range(100_000)) + '"}')
        message = await ws.receive(5)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1009
    await served_normally(guarded)


def test_refusals_are_counted_and_logged_once_a_minute(guarded: Server) -> None:
    for _ in range(5):
        http_get(f"{guarded.url}/redis.php?code=btcusdt&time=1m&rows=abc")
    assert metric(guarded, "tickwire_refused_total", '{kind="bad_request"}') >= 5
    logged = [line for line in guarded.log().splitlines()
              if '"refused"' in line and "bad_request" in line and "127.0.0.1" in line]
    assert len(logged) == 1

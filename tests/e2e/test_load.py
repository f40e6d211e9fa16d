"""Load and hostile clients against a real server: a reconnect storm of SDK clients after a
restart, slowloris and unfinished handshakes, one address opening connections as fast as
it can, and an HTTP flood of one path beside another path's requests.

Other client addresses are 127.0.0.2 and up: Linux routes all of 127/8 to loopback, and
the server sees each as its own client. The storm's 2,000 clients take seconds, so CI plays
it whole; `RELIABILITY_CLIENTS=N` plays another size (RELIABILITY.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import shutil
import signal
import statistics
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import GENEROUS_LIMITS, small_config
from tests.e2e.server import Server, start_server
from tests.e2e.storecheck import ROUND_THE_CLOCK, get_json
from tickwire import AsyncClient
from tickwire.client.events import Event
from tickwire.client.stream import Stream

CLIENTS = int(os.environ.get("RELIABILITY_CLIENTS", "2000"))
RESUBSCRIBED_WITHIN = 10.0
"""Seconds from the restarted server's first ready answer to every client's first quote."""
QUOTE_P99_MS = 20.0
"""BENCHMARKS.md section 3's bound on getQuote's p99."""


def report(what: str, **figures: object) -> None:
    print(f"\n{what}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))


def session_from(ip: str, limit: int = 100) -> aiohttp.ClientSession:
    """Requests from `ip` (at most `limit` connections at once, 0: no bound)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(ip, 0),
                                                                limit=limit))


async def ws_quote(session: aiohttp.ClientSession, server: Server, code: str) -> None:
    """A WebSocket connection that gets `code`'s quote, then closes."""
    async with session.ws_connect(server.ws_url) as ws:
        await ws.send_str(json.dumps({"Key": code}))
        message = json.loads((await ws.receive(10)).data)
        assert message["body"]["StockCode"] == code, message


# a reconnect storm -------------------------------------------------------------------------

STORM = small_config(GENEROUS_LIMITS + f"""
[access]
ws_connections_per_ip = {CLIENTS + 100}
[[feeds]]
kind = "sim"
rate = 1.0
""")
"""Every client on 127.0.0.1, so the cap per address is raised out of the way."""


class Storm:
    """`count` SDK clients, each streaming one product; when each last got a quote."""

    def __init__(self, server: Server, count: int) -> None:
        self.events: Counter[str] = Counter()
        self.clients = [AsyncClient(server.url, on_event=self._note) for _ in range(count)]
        self.seen = [0.0] * count
        self.readers = [asyncio.create_task(self._read(i, client.stream(
            ROUND_THE_CLOCK[i % len(ROUND_THE_CLOCK)]))) for i, client in enumerate(self.clients)]

    def _note(self, event: Event) -> None:
        self.events[event.kind] += 1

    async def _read(self, i: int, stream: Stream) -> None:
        async for _ in stream:
            self.seen[i] = time.monotonic()

    async def all_seen_after(self, mark: float, timeout: float) -> float:
        """Seconds from `mark` until every client has had a quote after it."""
        deadline = time.monotonic() + timeout
        while min(self.seen) <= mark:
            ended = [t for t in self.readers if t.done()]
            assert not ended, ended[0].exception() or "a stream ended"
            late = sum(1 for t in self.seen if t <= mark)
            assert time.monotonic() < deadline, f"{late} clients without a quote"
            await asyncio.sleep(0.1)
        return max(self.seen) - mark

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        await asyncio.gather(*(client.close() for client in self.clients))


def open_files_for(count: int) -> int:
    """Raise this process's open-file limit (the server inherits it) to hold `count`
    connections a side; how many it can hold."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 500
    if soft < want:
        soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return min(count, soft - 500)


@pytest.mark.slow
async def test_a_reconnect_storm_after_a_restart_resubscribes_everyone(tmp_path: Path) -> None:
    clients = open_files_for(CLIENTS)
    assert clients >= 300, "too few open files allowed for a storm"
    server = await asyncio.to_thread(start_server, tmp_path, STORM)
    began = time.monotonic()
    storm = Storm(server, clients)
    try:
        first = await storm.all_seen_after(began, 120)
        await asyncio.to_thread(server.stop, signal.SIGTERM)
        server = await asyncio.to_thread(start_server, tmp_path, STORM,
                                         data_dir=server.data_dir, port=server.port)
        ready = time.monotonic()
        took = await storm.all_seen_after(ready, 60)
        states = Counter(client.connection_state for client in storm.clients)
        assert took <= RESUBSCRIBED_WITHIN, f"{took:.1f} s"
        assert states == {"connected": clients}, states
        assert storm.events["failed"] == 0
        assert get_json(server, "/healthz")["connections"] == clients
    finally:
        await storm.close()
        await asyncio.to_thread(server.stop)
    report("reconnect storm", clients=clients, first_connect_s=round(first, 1),
           resubscribed_all_within_s=round(took, 2), gave_up=0,
           reconnect_attempts=storm.events["connecting"] - clients)


# slowloris and unfinished handshakes ------------------------------------------------------

IDLE_TIMEOUT = 2
SLOW = small_config(f"http_idle_timeout = {IDLE_TIMEOUT}\n" + GENEROUS_LIMITS)
TRICKLERS, HALF_HANDSHAKES = 300, 200


async def trickle(port: int, ip: str, head: bytes, hold: float) -> bool:
    """Send `head` a byte every half second for up to `hold` s; True if the server cut
    the connection first."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(ip, 0))
    deadline = time.monotonic() + hold
    try:
        for byte in head:
            writer.write(bytes([byte]))
            try:
                if await asyncio.wait_for(reader.read(4096), 0.5) == b"":
                    return True
            except TimeoutError:
                pass
            if time.monotonic() > deadline:
                return False
        return await asyncio.wait_for(reader.read(4096), hold) == b""
    except (ConnectionError, TimeoutError):
        return True
    finally:
        writer.close()


async def timed_quotes(server: Server, ip: str, count: int, pause: float,
                      websocket: bool = False) -> list[float]:
    """Milliseconds of `count` getQuote requests one after the other from `ip`, `pause`
    s apart; with `websocket` each followed by the quote over a new WebSocket."""
    took = []
    async with session_from(ip) as session:
        for i in range(count):
            code = ROUND_THE_CLOCK[i % len(ROUND_THE_CLOCK)]
            began = time.perf_counter()
            async with session.get(f"{server.url}/getQuote.php?code={code}") as resp:
                await resp.read()
                assert resp.status == 200
            if websocket:
                await ws_quote(session, server, code)
            took.append((time.perf_counter() - began) * 1000)
            await asyncio.sleep(pause)
    return took


@pytest.mark.slow
async def test_slowloris_and_half_handshakes_from_one_ip_do_not_starve_others(
        tmp_path: Path) -> None:
    server = await asyncio.to_thread(start_server, tmp_path, SLOW)
    try:
        request = b"GET /getCategory.php HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        upgrade = (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   b"Connection: Upgrade\r\n")
        hold = IDLE_TIMEOUT * 4
        attackers = [asyncio.create_task(trickle(server.port, "127.0.0.2", request, hold))
                     for _ in range(TRICKLERS)]
        half = [await asyncio.open_connection("127.0.0.1", server.port,
                                              local_addr=("127.0.0.2", 0))
                for _ in range(HALF_HANDSHAKES)]
        for _, writer in half:
            writer.write(upgrade)
        took = await timed_quotes(server, "127.0.0.3", 40, 0.05, websocket=True)
        cut = sum(await asyncio.gather(*attackers))
        half_cut = 0
        for reader, writer in half:
            half_cut += await asyncio.wait_for(reader.read(4096), hold) == b""
            writer.close()
    finally:
        await asyncio.to_thread(server.stop)
    assert cut == TRICKLERS, f"only {cut} of {TRICKLERS} trickling connections were cut"
    assert half_cut == HALF_HANDSHAKES
    assert max(took) < 1000, took  # a generous bound: no starving, not a benchmark
    report("slowloris", trickling=TRICKLERS, half_handshakes=HALF_HANDSHAKES,
           cut_by_server=cut + half_cut, other_ip_rounds=len(took), other_ip_failed=0,
           other_ip_median_ms=round(statistics.median(took), 1),
           other_ip_max_ms=round(max(took), 1))


# one address connecting as fast as it can -------------------------------------------------

CAPPED = small_config(GENEROUS_LIMITS)
CAP = 6


async def hammer(server: Server, ip: str, seconds: float) -> tuple[int, int]:
    """Open WebSockets from `ip` as fast as it goes, 32 attempts at a time, keeping every
    one admitted open: (admitted, refused with 429)."""
    admitted: list[aiohttp.ClientWebSocketResponse] = []
    refused = 0
    deadline = time.monotonic() + seconds
    async with session_from(ip, limit=0) as session:

        async def attempts() -> None:
            nonlocal refused
            while time.monotonic() < deadline:
                try:
                    admitted.append(await session.ws_connect(server.ws_url))
                except aiohttp.WSServerHandshakeError as exc:
                    assert exc.status == 429, exc
                    refused += 1

        await asyncio.gather(*(attempts() for _ in range(32)))
        for ws in admitted:
            await ws.close()
    return len(admitted), refused


async def normal_clients(server: Server, ips: list[str]) -> list[float]:
    """From each of `ips`, the cap's worth of WebSockets each getting a quote; the seconds
    each address took."""

    async def one(ip: str) -> float:
        began = time.monotonic()
        async with session_from(ip) as session:
            sockets = [await session.ws_connect(server.ws_url) for _ in range(CAP)]
            for ws, code in zip(sockets, ROUND_THE_CLOCK * 2, strict=False):
                await ws.send_str(json.dumps({"Key": code}))
                assert "body" in json.loads((await ws.receive(10)).data)
            for ws in sockets:
                await ws.close()
        return time.monotonic() - began

    return await asyncio.gather(*(one(ip) for ip in ips))


@pytest.mark.slow
async def test_one_ip_connecting_flat_out_is_held_at_the_cap_while_others_connect(
        tmp_path: Path) -> None:
    server = await asyncio.to_thread(start_server, tmp_path, CAPPED)
    try:
        flood = asyncio.create_task(hammer(server, "127.0.0.2", 4.0))
        await asyncio.sleep(1.0)
        others = [f"127.0.0.{i}" for i in range(3, 23)]
        took = await normal_clients(server, others)
        admitted, refused = await flood
        await served_again(server)
    finally:
        await asyncio.to_thread(server.stop)
    assert admitted == CAP and refused > 100, (admitted, refused)
    assert max(took) < 2.0, took  # a generous bound: served, not starved
    report("connection flood", flood_attempts=admitted + refused, admitted=admitted,
           refused_429=refused, other_ips=len(others), other_sockets=len(others) * CAP,
           other_failed=0, other_slowest_s=round(max(took), 2))


async def served_again(server: Server) -> None:
    """The flooding address, its sockets closed, is admitted again."""
    async with session_from("127.0.0.2") as session:
        await ws_quote(session, server, "btcusdt")


# an HTTP flood of one path -------------------------------------------------------------

FLOOD_PATH = "/redis.php?code=btcusdt&time=1m&rows=600"
MEASURED = 400


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (Debian package wrk)")
async def test_an_http_flood_of_one_path_keeps_another_within_its_p99_bound(
        tmp_path: Path) -> None:
    server = await asyncio.to_thread(start_server, tmp_path, CAPPED)
    try:
        calm = await timed_quotes(server, "127.0.0.2", MEASURED, 0.005)
        wrk = await asyncio.create_subprocess_exec(
            "wrk", "-t1", "-c16", "-d6s", server.url + FLOOD_PATH,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        await asyncio.sleep(1.0)
        flooded = await timed_quotes(server, "127.0.0.2", MEASURED, 0.005)
        out = (await asyncio.wait_for(wrk.communicate(), 60))[0].decode()
    finally:
        await asyncio.to_thread(server.stop)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rate is not None and "Non-2xx" not in out, out
    assert p99(flooded) <= QUOTE_P99_MS, (p99(calm), p99(flooded))
    report("HTTP flood", flood_path="redis.php rows=600", flood_requests_per_s=rate[1],
           getquote_p99_calm_ms=round(p99(calm), 2),
           getquote_p99_flooded_ms=round(p99(flooded), 2), bound_ms=QUOTE_P99_MS)

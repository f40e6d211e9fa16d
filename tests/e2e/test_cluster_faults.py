"""Faults in a deployment on Redis: Redis restarted under load, a gateway killed, the ingest
killed and started again (that one on the local engine too). No process exits, clients stay
connected (or move to another gateway), and everything is whole again within seconds."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.client.conftest import Events
from tests.e2e.cluster import get, start_cluster
from tests.e2e.server import Server
from tests.redis_server import RedisServer
from tickwire import AsyncClient, Backoff, Quote

CODES = ["btcusdt", "ethusdt"]


class Watcher:
    """A client's stream of `CODES`, read in the background: every quote and when it came,
    and the client's connection events."""

    def __init__(self, client: AsyncClient, events: Events) -> None:
        self.client = client
        self.events = events
        self.quotes: list[tuple[float, Quote]] = []
        self._task: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        async with self.client.stream(CODES) as stream:
            async for quote in stream:
                self.quotes.append((time.monotonic(), quote))

    def start(self) -> None:
        self._task = asyncio.create_task(self._read())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.client.close()

    async def receives_after(self, moment: float, timeout: float, what: str) -> None:
        """Until a quote of each code newer than any before `moment` came after it."""
        deadline = time.monotonic() + timeout
        while True:
            before = {q.code: q.time for at, q in self.quotes if at < moment}
            after = {q.code for at, q in self.quotes
                     if at > moment and q.time > before.get(q.code, "")}
            if after >= set(CODES):
                return
            assert time.monotonic() < deadline, f"no new quotes within {timeout:g} s: {what}"
            await asyncio.sleep(0.05)


@asynccontextmanager
async def watching(urls: list[str], **options: object) -> AsyncIterator[Watcher]:
    events = Events()
    client = AsyncClient(urls, on_event=events, **options)  # type: ignore[arg-type]
    watcher = Watcher(client, events)
    watcher.start()
    try:
        await watcher.receives_after(time.monotonic(), 20, f"first quotes from {urls}")
        yield watcher
    finally:
        await watcher.stop()


def alive(servers: list[Server]) -> None:
    for server in servers:
        assert server.proc.poll() is None, f"exited:\n{server.log()[-3000:]}"


def state(server: Server) -> str:
    status, health = get(server, "/healthz")
    return f"{status} {health['status']}"


async def poll(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Until `check()`; how long it took."""
    began = time.monotonic()
    while not await asyncio.to_thread(check):
        assert time.monotonic() - began < timeout, f"not within {timeout:g} s: {what}"
        await asyncio.sleep(0.05)
    return time.monotonic() - began


async def test_redis_restarted_under_load(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    cluster = start_cluster(tmp_path, redis)
    servers = [cluster.ingest, *cluster.gateways]
    a, b = cluster.gateways
    try:
        async with watching([a.url]) as on_a, watching([b.url]) as on_b:
            redis.stop(signal.SIGKILL)
            for gateway in (a, b):
                await poll(lambda g=gateway: state(g) == "200 degraded", 10,  # type: ignore[misc]
                           "a gateway says degraded while Redis is away")
            assert get(a, "/getQuote.php?code=btcusdt")[0] == 200  # the last quote
            redis.start()
            back = time.monotonic()
            for watcher in (on_a, on_b):
                await watcher.receives_after(back, 5, "quotes after Redis came back")
            for server in servers:
                await poll(lambda s=server: state(s) == "200 ok", 5 - (time.monotonic() - back),  # type: ignore[misc]
                           "every process back to ok")
            alive(servers)
            for watcher in (on_a, on_b):  # connected all along
                assert not watcher.events.of("disconnected"), watcher.events
            # the cap is whole again: the two clients' WebSockets count, on both gateways
            async with aiohttp.ClientSession() as session:
                opened = [await session.ws_connect(gateway.ws_url)
                          for gateway in (a, a, b, b)]
                # each gateway writes its counts back at its next lease heartbeat
                deadline = time.monotonic() + 5
                for gateway in (a, b):
                    while True:
                        try:
                            extra = await session.ws_connect(gateway.ws_url)
                        except aiohttp.WSServerHandshakeError as refused:
                            assert refused.status == 429
                            break
                        await extra.close()
                        assert time.monotonic() < deadline, "the cap is not whole again"
                        await asyncio.sleep(0.2)
                for ws in opened:
                    await ws.close()
    finally:
        cluster.stop()
        redis.stop()


async def test_a_killed_gateways_clients_move_to_the_other(
        redis_server: RedisServer, tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, redis_server)
    a, b = cluster.gateways
    try:
        async with watching([a.url, b.url], backoff=Backoff(initial=0.1, maximum=0.5)
                            ) as mover, watching([b.url]) as stayer:
            assert mover.client.ws_url == a.ws_url
            a.kill()
            killed = time.monotonic()
            await mover.receives_after(killed, 10, "the client of the killed gateway")
            assert mover.client.ws_url == b.ws_url
            await stayer.receives_after(killed, 5, "a client of the other gateway")
            assert not stayer.events.of("disconnected")  # nobody else noticed
            alive([cluster.ingest, b])
    finally:
        cluster.stop()


HISTORY_WRITTEN = 1_000
"""Bars waiting for the ingest's store below which its first start's history is written."""


@pytest.mark.parametrize("engine", ["redis", "local"])
async def test_the_ingest_killed_and_started_again(
        engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    redis = request.getfixturevalue("redis_server") if engine == "redis" else None
    cluster = start_cluster(tmp_path, redis, gateways=1)
    (gateway,) = cluster.gateways
    kline_path = "/redis.php?code=btcusdt&time=1m&rows=600"
    try:
        async with watching([gateway.url]) as watcher:
            # the history the first start made (~24,000 bars) is in SQLite: a kill before
            # loses it, and the next start makes it again, simulated anew, not the same;
            # after it only each second's changes wait (tens of bars)
            await poll(lambda: get(cluster.ingest, "/healthz")[1]["store"].get(
                "pending_bars", HISTORY_WRITTEN) < HISTORY_WRITTEN, 20,
                "the first start's history written")
            _, before = get(gateway, kline_path)
            cluster.ingest.kill()
            await poll(lambda: state(gateway) == "200 degraded", 10,
                       "the gateway says degraded while the ingest is silent")
            _, health = get(gateway, "/healthz")
            assert health["engine"]["ingest"] == ("silent" if redis else "unreachable")
            status, quote = get(gateway, "/getQuote.php?code=btcusdt")
            assert status == 200 and quote["data"]["body"]["StockCode"] == "btcusdt"
            status, answer = get(gateway, kline_path)
            if redis:  # the windows are in Redis
                assert status == 200 and len(answer) == 600
            else:  # asked of the ingest
                assert status == 503 and "ingest" in answer["msg"]
            await asyncio.to_thread(cluster.start_ingest)
            restarted = time.monotonic()
            await watcher.receives_after(restarted, 10, "quotes from the new ingest")
            assert not watcher.events.of("disconnected")
            await poll(lambda: state(gateway) == "200 ok", 10, "the gateway ok again")
            _, after = get(gateway, "/redis.php?code=btcusdt&time=1m&rows=600")
            # every bar that had ended before the kill is there, the same (the newest two may
            # have changed within the last write before it; the oldest may have left the
            # 600 rows as minutes began meanwhile)
            kept = {bar[0]: bar for bar in after}
            compared = [bar for bar in before[2:] if bar[0] >= min(kept)]
            changed = [(bar, kept.get(bar[0])) for bar in compared if kept.get(bar[0]) != bar]
            assert not changed, changed[:3]
            assert len(compared) > 500
            alive([gateway, cluster.ingest])
    finally:
        cluster.stop()


"""An allow-list change made through the admin API holds from the moment the call answers,
whatever the store is doing: here it is busy (its writes wait on a lock held over and over,
the ingest writes bars beside) and slowed down (every read of the list is answered late, so
stale snapshots keep arriving; every change waits before and after), while readers apply
snapshots as fast as they come and another admin changes other entries.

Each round adds the visitor, then removes it; from each answer on, for a while, every
request and handshake of the visitor must get the answer of the change (200, or 403 and its
open WebSocket closed), never the one before. Run on every engine of the contract suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.e2e.server import SMALL_CATALOGUE
from tests.engine.conftest import ENGINES
from tests.fuzzing import cases, report
from tests.redis_server import unique_prefix
from tickwire.config import Config, load_config
from tickwire.engine.base import AllowSnapshot, Engine
from tickwire.gateway import app as gateway_app
from tickwire.gateway.state import GATEWAY, Gateway
from tickwire.server import build

pytestmark = [pytest.mark.slow, pytest.mark.fuzz]

TOKEN = "t0ken"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
VISITOR = "203.0.113.9"
"""The client admitted and refused, behind the trusted local proxy."""
AS_VISITOR = {"X-Forwarded-For": VISITOR}
ROUNDS = cases(4, 50)
HOLD = 0.3
"""Seconds each answer is checked to hold: longer than any slowed read is late."""
STALE_FOR = 0.15
"""The most a slowed read of the list comes late."""
READERS = 6

def redis_engine(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A Redis engine on the tests' redis-server, under a prefix of its own."""
    server = request.getfixturevalue("redis_server")
    return {"engine.kind": "redis", "engine.url": server.url,
            "engine.prefix": unique_prefix()}


ENGINE_SETTINGS: dict[str, Callable[[pytest.FixtureRequest], dict[str, Any]]] = {
    "memory": lambda request: {}, "local": lambda request: {"engine.kind": "local"},
    "redis": redis_engine}
"""The config of a server on each engine kind of the contract suite."""


def busy_sqlite(config: Config) -> contextlib.AbstractContextManager[None]:
    """Another connection takes the store's write lock for 20 ms at a time, over and over:
    every write of the server (admin changes, the ingest's bars) waits for it."""

    @contextlib.contextmanager
    def hold() -> Iterator[None]:
        stop = threading.Event()

        def hammer() -> None:
            conn = sqlite3.connect(config.database_path, timeout=30, isolation_level=None)
            while not stop.is_set():
                conn.execute("BEGIN IMMEDIATE")
                time.sleep(0.02)
                conn.execute("COMMIT")
                time.sleep(0.005)
            conn.close()

        thread = threading.Thread(target=hammer, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(10)
    return hold()


BUSY_STORE: dict[str, Callable[[Config], contextlib.AbstractContextManager[None]]] = {
    "memory": busy_sqlite, "local": busy_sqlite, "redis": busy_sqlite}
# the allow-list's truth is SQLite on every engine
"""How to keep each engine's store busy from outside the server."""


def slow_down(engine: Engine, rng: random.Random) -> None:
    """Every read of the list takes its snapshot at once and answers up to `STALE_FOR`
    later; every change waits a little before and after the store has it."""
    read, add, remove = engine.allow_list, engine.allow_add, engine.allow_remove

    async def late_read() -> AllowSnapshot:
        snapshot = await read()
        await asyncio.sleep(rng.uniform(0, STALE_FOR))
        return snapshot

    async def slow_add(cidr: str, note: str) -> AllowSnapshot:
        await asyncio.sleep(rng.uniform(0, 0.03))
        snapshot = await add(cidr, note)
        await asyncio.sleep(rng.uniform(0, 0.03))
        return snapshot

    async def slow_remove(cidr: str) -> tuple[bool, AllowSnapshot]:
        await asyncio.sleep(rng.uniform(0, 0.03))
        answer = await remove(cidr)
        await asyncio.sleep(rng.uniform(0, 0.03))
        return answer

    engine.allow_list = late_read  # type: ignore[method-assign]
    engine.allow_add = slow_add  # type: ignore[method-assign]
    engine.allow_remove = slow_remove  # type: ignore[method-assign]


@pytest.fixture(params=ENGINES)
async def busy(request: pytest.FixtureRequest, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    kind = request.param
    if kind not in ENGINE_SETTINGS or kind not in BUSY_STORE:
        pytest.fail(f"engine {kind!r}: add its config to ENGINE_SETTINGS and how to keep "
                    "its store busy to BUSY_STORE")
    config = load_config(None, {
        "server.data_dir": str(tmp_path / "data"), "server.catalogue": str(SMALL_CATALOGUE),
        "access.admin_token": TOKEN, "access.trusted_proxies": ["127.0.0.1"],
        "limits.category": 1_000_000, **ENGINE_SETTINGS[kind](request)}, environ={})
    feed = config.feeds[0]
    feed.rate, feed.history = 200.0, False  # type: ignore[union-attr]  # writes all along
    monkeypatch.setattr(gateway_app, "ALLOW_LIST_EVERY", 0.005)  # the follower reads on
    server = build(config)
    slow_down(server.engine, random.Random(17))
    with BUSY_STORE[kind](config):
        async with TestClient(TestServer(server.app)) as client:
            yield client


class Readers:
    """Tasks applying the store's snapshots as fast as they come, as the follower does
    (and as many gateways would); counts the stale ones that came after a newer one."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.stale = self.taken = 0
        self._tasks = [asyncio.create_task(self._read()) for _ in range(READERS)]

    async def _read(self) -> None:
        gateway = self.gateway
        while True:
            snapshot = await gateway.engine.allow_list()
            if snapshot.version < gateway.allow_list.version:
                self.stale += 1
            else:
                self.taken += 1
            gateway.take_allow_list(snapshot)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def other_admin(client: TestClient) -> None:  # type: ignore[type-arg]
    """Adds and removes entries that are not the visitor's, all the time."""
    rng = random.Random(5)
    while True:
        cidr = f"10.{rng.randrange(256)}.{rng.randrange(256)}.0/24"
        async with client.post("/admin/allow", headers=ADMIN, json={"cidr": cidr}) as resp:
            assert resp.status == 200
        async with client.delete(f"/admin/allow/{cidr.replace('/', '%2F')}",
                                 headers=ADMIN) as resp:
            assert resp.status == 200


async def holds(client: TestClient, status: int) -> int:  # type: ignore[type-arg]
    """Checks, for `HOLD` seconds, that every request and handshake of the visitor gets
    `status`; how many were checked."""
    checked = 0
    deadline = time.monotonic() + HOLD
    while time.monotonic() < deadline:
        async with client.get("/getCategory.php", headers=AS_VISITOR) as resp:
            assert resp.status == status
        if status == 403:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect("/ws", headers=AS_VISITOR)
            assert refused.value.status == 403
        checked += 1
        await asyncio.sleep(0.002)  # leave the machine to the server now and then
    return checked


async def test_a_change_holds_from_the_answer_on_while_the_store_is_busy_and_slow(
        busy: TestClient) -> None:  # type: ignore[type-arg]
    gateway = busy.server.app[GATEWAY]
    readers = Readers(gateway)
    admin = asyncio.create_task(other_admin(busy))
    checked = 0
    try:
        for _ in range(ROUNDS):
            async with busy.post("/admin/allow", headers=ADMIN,
                                 json={"cidr": VISITOR}) as resp:
                assert resp.status == 200
            checked += await holds(busy, 200)
            ws = await busy.ws_connect("/ws", headers=AS_VISITOR)
            await ws.send_str('{"ping":1}')
            assert (await ws.receive(5)).data == '{"pong":1}'
            async with busy.delete(f"/admin/allow/{VISITOR}", headers=ADMIN) as resp:
                assert resp.status == 200
            closed = await ws.receive(5)  # the revocation closes what was open
            assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 1008
            await ws.close()
            checked += await holds(busy, 403)
        assert not admin.done(), admin.exception()
    finally:
        admin.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await admin
        await readers.stop()
    report("allow-list under load", rounds=ROUNDS, checks=checked,
           stale_snapshots_refused=readers.stale, snapshots_taken=readers.taken)
    assert readers.stale > 0, "no stale snapshot came after a change: the race was not run"

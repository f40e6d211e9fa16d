"""The allow-list has one source of truth, the store, and a version: a read of the store that
was slow (begun before an admin change, finished after it) never undoes the change, and the
admin's answer comes after the change is in force. Run with the store slowed down."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.e2e.server import SMALL_CATALOGUE
from tickwire.config import load_config
from tickwire.engine.base import AllowSnapshot
from tickwire.engine.sqlite import SqliteStore
from tickwire.gateway.state import GATEWAY
from tickwire.server import build

TOKEN = "t0ken"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
VISITOR = "203.0.113.9"
"""The client the tests admit and refuse, behind the trusted local proxy."""


class SlowReads:
    """Makes the store's allow-list reads slow: the snapshot is taken at once, returned late."""

    def __init__(self, store: SqliteStore, delay: float) -> None:
        self._read: Callable[[], AllowSnapshot] = store.allow_list
        self.delay = delay
        self.began = threading.Event()
        store.allow_list = self  # type: ignore[method-assign]

    def __call__(self) -> AllowSnapshot:
        snapshot = self._read()
        self.began.set()
        time.sleep(self.delay)
        return snapshot


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    config = load_config(None, {
        "server.data_dir": str(tmp_path / "data"), "server.catalogue": str(SMALL_CATALOGUE),
        "access.admin_token": TOKEN, "access.trusted_proxies": ["127.0.0.1"],
    }, environ={})
    config.feeds[0].history = False
    server = build(config)
    async with TestClient(TestServer(server.app)) as test_client:
        yield test_client


def as_visitor(client: TestClient) -> Callable[[], object]:  # type: ignore[type-arg]
    async def status() -> int:
        async with client.get("/getCategory.php",
                              headers={"X-Forwarded-For": VISITOR}) as resp:
            return resp.status
    return status


def store_of(client: TestClient) -> SqliteStore:  # type: ignore[type-arg]
    engine = client.server.app[GATEWAY].engine
    return engine._store  # type: ignore[attr-defined, no-any-return]


async def stale_read_around(client: TestClient, change: Callable[[], object],  # type: ignore[type-arg]
                            slow: SlowReads) -> None:
    """Begin a slow read of the store, make `change` while it is under way, then apply the
    read as the follower would."""
    gateway = client.server.app[GATEWAY]
    read = asyncio.create_task(gateway.engine.allow_list())
    await asyncio.to_thread(slow.began.wait, 5)
    await change()  # type: ignore[misc]
    gateway.allow_list.apply(await read)


async def test_a_removed_entry_is_refused_even_after_a_stale_read(
        client: TestClient) -> None:  # type: ignore[type-arg]
    visitor = as_visitor(client)
    async with client.post("/admin/allow", headers=ADMIN, json={"cidr": VISITOR}) as resp:
        assert resp.status == 200
    assert await visitor() == 200  # type: ignore[misc]
    slow = SlowReads(store_of(client), delay=0.3)

    async def remove() -> None:
        async with client.delete(f"/admin/allow/{VISITOR}", headers=ADMIN) as resp:
            assert resp.status == 200
        assert await visitor() == 403  # type: ignore[misc]  # in force when answered

    for _ in range(3):
        await stale_read_around(client, remove, slow)
        assert await visitor() == 403  # type: ignore[misc]
        async with client.post("/admin/allow", headers=ADMIN, json={"cidr": VISITOR}) as resp:
            assert resp.status == 200
        slow.began.clear()


async def test_an_added_entry_is_admitted_even_after_a_stale_read(
        client: TestClient) -> None:  # type: ignore[type-arg]
    visitor = as_visitor(client)
    slow = SlowReads(store_of(client), delay=0.3)

    async def add() -> None:
        async with client.post("/admin/allow", headers=ADMIN, json={"cidr": VISITOR}) as resp:
            assert resp.status == 200
        assert await visitor() == 200  # type: ignore[misc]

    assert await visitor() == 403  # type: ignore[misc]
    await stale_read_around(client, add, slow)
    assert await visitor() == 200  # type: ignore[misc]


async def test_the_follower_picks_up_a_change_made_elsewhere(
        client: TestClient, tmp_path: Path) -> None:  # type: ignore[type-arg]
    """`tickwire allow add --data-dir` writes the store from another process."""
    visitor = as_visitor(client)
    other = SqliteStore(store_of(client).path)
    other.allow_add(f"{VISITOR}/32", "added elsewhere")
    other.close()
    deadline = time.monotonic() + 5
    while await visitor() != 200:  # type: ignore[misc]
        assert time.monotonic() < deadline, "the change was not picked up"
        await asyncio.sleep(0.05)

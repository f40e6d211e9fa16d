"""The fan-out (`gateway/ws.py` `Hub`) over real sockets, in one process: updates are
published through the engine as the ingest publishes them, and read by real WebSocket
clients. Batching joins a connection's frames of one turn of the loop into one write; it must
never reorder one product's updates, nor hold a lone update back for a later one; what waits
for a connection stays bounded, the newest quote per product kept."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from tests.e2e.server import SMALL_CATALOGUE
from tickwire.config import load_config
from tickwire.feeds.base import FeedState
from tickwire.gateway.state import GATEWAY
from tickwire.gateway.ws import Connection, Hub, fit_burst
from tickwire.server import Server, build

CODES = ["btcusdt", "ethusdt", "xrpusdt", "fx_seurusd"]


class Silent:
    """A feed that is live at once and hands over nothing: the tests publish themselves."""

    name = "silent"

    def __init__(self) -> None:
        self.codes = CODES
        self.state = FeedState.LIVE
        self.error: str | None = None

    async def run(self, sink: object) -> None:
        await asyncio.Event().wait()

    def status(self) -> dict[str, object]:
        return {"kind": self.name}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Server, TestClient]]:  # type: ignore[type-arg]
    config = load_config(None, {
        "server.data_dir": str(tmp_path / "data"), "server.catalogue": str(SMALL_CATALOGUE),
        "access.ws_connections_per_ip": 100, "websocket.max_pending_bytes": 8192,
    }, environ={})
    server = build(config, feeds=[Silent()])
    async with TestClient(TestServer(server.app)) as client:
        yield server, client


def body(code: str, seq: int, pad: int = 0) -> bytes:
    return json.dumps({"StockCode": code, "N": seq, "pad": "x" * pad}).encode()


async def subscribed(client: TestClient, codes: list[str]  # type: ignore[type-arg]
                     ) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect("/ws")
    await ws.send_str(json.dumps({"Key": ",".join(codes)}))
    return ws


async def wait_subscribed(hub: Hub, count: int) -> None:
    for _ in range(500):
        if hub.subscription_count >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"only {hub.subscription_count} of {count} subscriptions")


async def read(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[tuple[str, int]]:
    """The next `count` pushes as (code, N)."""
    out = []
    while len(out) < count:
        message = await ws.receive(10)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        pushed: Any = json.loads(message.data)["body"]
        out.append((pushed["StockCode"], pushed["N"]))
    return out


async def test_readers_that_keep_up_get_every_update_in_order(
        served: tuple[Server, TestClient]) -> None:  # type: ignore[type-arg]
    server, client = served
    hub = server.app[GATEWAY].hub
    wanted = [CODES[:2], CODES[1:], CODES]
    sockets = [await subscribed(client, codes) for codes in wanted]
    await wait_subscribed(hub, sum(len(c) for c in wanted))
    rng = random.Random(5)
    seqs = dict.fromkeys(CODES, 0)
    published = []
    for _ in range(300):  # several batches in one turn of the loop, some alone
        batch = []
        for _ in range(rng.randint(1, 8)):
            code = rng.choice(CODES)
            seqs[code] += 1
            batch.append((code, body(code, seqs[code])))
        server.engine.publish(batch)
        published += [(code, int(json.loads(b)["N"])) for code, b in batch]
        if rng.random() < 0.5:
            await asyncio.sleep(0)
    for ws, codes in zip(sockets, wanted, strict=True):
        mine = [u for u in published if u[0] in codes]
        assert await read(ws, len(mine)) == mine
        await ws.close()


async def test_a_lone_update_leaves_in_the_turn_it_was_published(
        served: tuple[Server, TestClient]) -> None:  # type: ignore[type-arg]
    server, client = served
    hub = server.app[GATEWAY].hub
    ws = await subscribed(client, ["btcusdt"])
    await wait_subscribed(hub, 1)
    before = hub.stats.deliveries
    server.engine.publish([("btcusdt", body("btcusdt", 1))])
    await asyncio.sleep(0)  # one turn: the fan-out has run and written it
    assert hub.stats.deliveries == before + 1
    # nothing else is published: no later tick or update is needed to send it
    assert await read(ws, 1) == [("btcusdt", 1)]
    await ws.close()


async def test_a_snapshot_handed_on_while_it_was_read_is_not_sent_again(
        served: tuple[Server, TestClient]) -> None:  # type: ignore[type-arg]
    """A subscriber is in the fan-out while its snapshots are read (so no update is
    missed): an update that reaches it meanwhile is not sent again as its snapshot."""
    server, client = served
    engine = server.engine
    read_done = asyncio.Event()

    async def latest_while_an_update_arrives(codes: list[str]) -> list[bytes | None]:
        newest = body("btcusdt", 2)
        engine.publish([("btcusdt", newest)])  # to the new subscriber too
        await asyncio.sleep(0.01)
        read_done.set()
        return [newest]  # what an engine reads after it: the same quote

    engine.latest = latest_while_an_update_arrives  # type: ignore[method-assign]
    ws = await subscribed(client, ["btcusdt"])
    assert await read(ws, 1) == [("btcusdt", 2)]
    await read_done.wait()  # a snapshot is written as the read returns
    engine.publish([("btcusdt", body("btcusdt", 3))])
    assert await read(ws, 1) == [("btcusdt", 3)]  # not 2 again
    await ws.close()


async def test_a_burst_over_the_bound_keeps_order_and_each_newest_quote(
        served: tuple[Server, TestClient]) -> None:  # type: ignore[type-arg]
    """More waiting than `max_burst` deliveries: older updates are conflated away, never
    reordered, and each product's newest arrives."""
    server, client = served
    hub = server.app[GATEWAY].hub
    hub.max_burst = 40
    ws = await subscribed(client, CODES)
    await wait_subscribed(hub, len(CODES))
    rng = random.Random(9)
    seqs = dict.fromkeys(CODES, 0)
    batch = []
    for _ in range(400):
        code = rng.choice(CODES)
        seqs[code] += 1
        batch.append((code, body(code, seqs[code])))
    server.engine.publish(batch)
    await asyncio.sleep(0)
    got = await read(ws, min(len(batch), hub.stats.deliveries))
    assert len(got) <= hub.max_burst + len(CODES)
    newest: dict[str, int] = {}
    for code, seq in got:
        assert seq > newest.get(code, 0), "an update older than one already pushed"
        newest[code] = seq
    assert newest == seqs
    assert hub.stats.conflated == 400 - len(got)
    await ws.close()


async def test_a_write_over_the_pending_bound_is_cut_to_the_newest_per_product(
        served: tuple[Server, TestClient]) -> None:  # type: ignore[type-arg]
    """A turn's frames for one connection over `max_pending_bytes` (8 KiB here): the newest
    frame per product goes, and the connection is not counted a slow reader."""
    server, client = served
    hub = server.app[GATEWAY].hub
    ws = await subscribed(client, ["btcusdt", "ethusdt"])
    await wait_subscribed(hub, 2)
    batch = [(code, body(code, seq, pad=300)) for seq in range(1, 51)
             for code in ("btcusdt", "ethusdt")]  # ~35 KiB for this one connection
    server.engine.publish(batch)
    await asyncio.sleep(0)
    assert await read(ws, 2) == [("btcusdt", 50), ("ethusdt", 50)]
    conn = next(iter(hub.connections))
    assert conn.backlog is None and hub.stats.slow_closed == 0
    server.engine.publish([("btcusdt", body("btcusdt", 51))])
    assert await read(ws, 1) == [("btcusdt", 51)]
    await ws.close()


@given(st.lists(st.tuples(st.sampled_from(CODES), st.integers(0, 3)), max_size=80),
       st.integers(0, 60))
def test_fit_burst_keeps_each_newest_and_the_order(updates: list[tuple[str, int]],
                                                   budget: int) -> None:
    subscribers: dict[str, set[Connection]] = {
        code: {object() for _ in range(n)}  # type: ignore[misc]
        for code, n in zip(CODES, (1, 2, 3, 0), strict=True)}
    numbered = [(code, str(i).encode()) for i, (code, _) in enumerate(updates)]
    kept = fit_burst(numbered, subscribers, budget)
    assert [u for u in numbered if u in kept] == kept  # a subsequence: nothing reordered
    for code in CODES:
        mine = [u for u in numbered if u[0] == code]
        if mine:
            assert mine[-1] in kept  # each product's newest always goes
    cost = sum(len(subscribers[c]) for c, _ in kept)
    newest_cost = sum(len(subscribers[c]) for c in {c for c, _ in numbered})
    assert cost <= budget + newest_cost
    # what is dropped is older than everything kept of its product
    for code, sent in [u for u in numbered if u not in kept]:
        assert any(c == code and int(s) > int(sent) for c, s in kept)

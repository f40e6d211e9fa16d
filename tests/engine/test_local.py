"""What only the local engine has: gateways joined to the ingest over a real Unix socket, a
gateway that falls behind conflated at the ingest (bounded, each product's newest kept, in
order),
a gateway that goes away giving its counts back, the ingest restarted under a gateway, the
ingest out of reach with `[engine] on_error` open or closed, and a peer that breaks the
framing cut off."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.engine.conftest import _catalogue
from tests.engine.test_contract import T0, tick
from tests.engine.test_redis import eventually
from tickwire.config import ConfigError
from tickwire.engine import local_wire as wire
from tickwire.engine.base import Published
from tickwire.engine.local_gateway import LocalGateway
from tickwire.engine.local_ingest import HELD_BYTES, HIGH_WATER, LocalIngest
from tickwire.engine.sqlite import SqliteStore
from tickwire.errors import TickwireError
from tickwire.ingest.pipeline import Ingest
from tickwire.ingest.writer import StoreWriter
from tickwire.market import Market, TimeZone


@dataclass
class Side:
    engine: LocalIngest
    ingest: Ingest
    store: SqliteStore

    async def close(self) -> None:
        await self.engine.close()
        self.ingest.writer.close()
        self.store.close()


async def start_ingest(path: Path, data: Path) -> Side:
    catalogue = _catalogue()
    market = Market(catalogue.products.values(), TimeZone("Asia/Shanghai"))
    store = SqliteStore(data / "tickwire.sqlite3")
    engine = LocalIngest(path, catalogue, market, store)
    ingest = Ingest(market, engine, store, StoreWriter(store))
    await engine.start()
    return Side(engine, ingest, store)


@pytest.fixture
async def ingest(tmp_path: Path) -> AsyncIterator[Side]:
    side = await start_ingest(tmp_path / "engine.sock", tmp_path)
    yield side
    await side.close()


@pytest.fixture
async def gateways(tmp_path: Path) -> AsyncIterator[list[LocalGateway]]:
    made: list[LocalGateway] = []
    yield made
    for gateway in made:
        await gateway.close()


async def join(made: list[LocalGateway], path: Path, on_error: str = "open") -> LocalGateway:
    gateway = LocalGateway(path, _catalogue(), on_error)
    made.append(gateway)
    await gateway.start()
    return gateway


def prices(batches: list[Published]) -> list[tuple[str, float]]:
    return [(code, json.loads(body)["Price"]) for batch in batches for code, body in batch]


async def test_a_gateway_behind_is_conflated_at_the_ingest_bounded_and_in_order(
        ingest: Side, gateways: list[LocalGateway], tmp_path: Path) -> None:
    gateway = await join(gateways, tmp_path / "engine.sock")
    got: list[Published] = []
    gateway.subscribe(got.append)
    for code in ("btcusdt", "ethusdt"):
        gateway.watch(code)
    await eventually(lambda: ingest.engine.watched("ethusdt"), "the ingest knows the watch")
    link = gateway._link
    assert link is not None and link.transport is not None
    link.transport.pause_reading()  # the gateway falls behind
    price = 100.0
    while ingest.engine.conflated < 500:  # far more than the socket and HELD_BYTES hold
        price += 1
        ingest.ingest.publish([tick("btcusdt", T0, price), tick("ethusdt", T0, price)])
        await asyncio.sleep(0)
    (link_at_ingest,) = ingest.engine.links
    held = link_at_ingest.held
    assert held is not None and {code for code, _ in held} == {"btcusdt", "ethusdt"}
    assert link_at_ingest.held_bytes <= HELD_BYTES + 4096  # bounded
    assert len(held) > 100  # a long run of recent updates, not one a product
    assert prices([held])[-2:] == [("btcusdt", price), ("ethusdt", price)]
    link.transport.resume_reading()
    await eventually(lambda: any(p == ("btcusdt", price) for p in prices(got)),
                     "the newest quote delivered")
    for code in ("btcusdt", "ethusdt"):
        seen = [p for c, p in prices(got) if c == code]
        assert seen == sorted(seen) and seen[-1] == price  # in order, and the newest last
        assert len(seen) < price - 100  # some were conflated
    await eventually(lambda: all(each.held is None for each in ingest.engine.links),
                     "nothing held once the gateway reads")
    assert sum(len(b) for b in got) * 1300 > HIGH_WATER / 2  # it had kept on reading


async def test_a_newly_watched_code_gets_its_snapshot_then_every_update(
        ingest: Side, gateways: list[LocalGateway], tmp_path: Path) -> None:
    ingest.ingest.publish([tick("btcusdt", T0, 100.0)])
    gateway = await join(gateways, tmp_path / "engine.sock")
    got: list[Published] = []
    gateway.subscribe(got.append)
    gateway.watch("btcusdt")
    (snapshot,) = await gateway.latest(["btcusdt"])  # as the hub reads it on subscribing
    assert snapshot is not None and json.loads(snapshot)["Price"] == 100
    for price in (101.0, 102.0):
        ingest.ingest.publish([tick("btcusdt", T0, price)])
    await eventually(lambda: len(prices(got)) >= 2, "the updates after the snapshot")
    assert prices(got) == [("btcusdt", 101), ("btcusdt", 102)]


async def test_a_gateway_gone_gives_its_websockets_back_at_once(
        ingest: Side, gateways: list[LocalGateway], tmp_path: Path) -> None:
    path = tmp_path / "engine.sock"
    first, second = await join(gateways, path), await join(gateways, path)
    assert await first.ws_acquire("10.0.0.1", 3)
    assert await first.ws_acquire("10.0.0.1", 3)
    assert await second.ws_acquire("10.0.0.1", 3)
    assert not await second.ws_acquire("10.0.0.1", 3)  # the cap across both gateways
    await first.close()
    gateways.remove(first)
    await eventually(lambda: len(ingest.engine.links) == 1, "the ingest saw it go")
    assert await second.ws_acquire("10.0.0.1", 3)
    assert await second.ws_acquire("10.0.0.1", 3)
    assert not await second.ws_acquire("10.0.0.1", 3)


async def test_the_ingest_restarted_under_a_gateway_is_told_again_and_the_news_handed_on(
        tmp_path: Path, gateways: list[LocalGateway]) -> None:
    path = tmp_path / "engine.sock"
    side = await start_ingest(path, tmp_path)
    try:
        gateway = await join(gateways, path)
        got: list[Published] = []
        gateway.subscribe(got.append)
        gateway.watch("btcusdt")
        assert await gateway.ws_acquire("10.0.0.2", 2)
        await eventually(lambda: side.engine.watched("btcusdt"), "the watch arrives")
        side.ingest.publish([tick("btcusdt", T0, 100.0)])
        await eventually(lambda: prices(got) == [("btcusdt", 100)], "the first update")
    finally:
        await side.close()
    await eventually(lambda: gateway.health()["ok"] is False, "the gateway sees it gone")
    assert gateway.health()["ingest"] == "unreachable"
    side = await start_ingest(path, tmp_path)  # the same store, restored
    try:
        side.ingest.restore()
        await eventually(lambda: gateway.health()["ok"] is True, "the gateway is back")
        await eventually(lambda: side.engine.watched("btcusdt"), "the watch told again")
        side.ingest.publish([tick("btcusdt", T0 + 1000, 105.0)])
        await eventually(lambda: prices(got)[-1:] == [("btcusdt", 105)],
                         "updates flow again")
        await eventually(lambda: side.engine._memory._ws_per_ip.get("10.0.0.2") == 1,
                         "its WebSocket told again")
        assert await gateway.ws_acquire("10.0.0.2", 2)
        assert not await gateway.ws_acquire("10.0.0.2", 2)
    finally:
        await side.close()


@pytest.mark.parametrize("on_error", ["open", "closed"])
async def test_the_ingest_out_of_reach(tmp_path: Path, gateways: list[LocalGateway],
                                       on_error: str) -> None:
    gateway = LocalGateway(tmp_path / "nobody.sock", _catalogue(), on_error)
    gateways.append(gateway)
    task = asyncio.create_task(gateway.start())
    await asyncio.sleep(0.3)
    assert gateway.health() == {"kind": "local", "role": "gateway", "pid": os.getpid(),
                                "ok": False, "ingest": "unreachable", "batches": 0,
                                "watched": 0, "error": gateway.health()["error"]}
    assert "nobody.sock" in str(gateway.health()["error"])
    with pytest.raises(TickwireError, match="unreachable") as caught:
        await gateway.klines("btcusdt", "1", 10, None)
    assert caught.value.status == 503
    if on_error == "open":
        assert await gateway.ws_acquire("10.0.0.3", 1)
        assert not await gateway.ws_acquire("10.0.0.3", 1)
        assert (await gateway.rate_check(["k"], 1)).over == []
        assert (await gateway.rate_check(["k"], 1)).over == [0]
    else:
        with pytest.raises(TickwireError, match="unreachable"):
            await gateway.ws_acquire("10.0.0.3", 1)
        with pytest.raises(TickwireError, match="unreachable"):
            await gateway.rate_check(["k"], 1)
    assert (await gateway.allow_list()).version == -1  # none read: nothing opened
    task.cancel()


async def test_a_peer_that_breaks_the_framing_is_cut_off_and_the_ingest_serves_on(
        ingest: Side, gateways: list[LocalGateway], tmp_path: Path) -> None:
    path = tmp_path / "engine.sock"
    for garbage in (b"\xff\xff\xff\xff" + b"x" * 16, b"\x00\x00\x00\x02Zz",
                    b"\x00\x00\x00\x03C\xc1\xc1"):
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(garbage)
        await writer.drain()
        while await reader.read(65536):  # the hello, then the end: cut off
            pass
        writer.close()
    gateway = await join(gateways, path)
    assert await gateway.ws_acquire("10.0.0.4", 1)


async def test_a_second_ingest_on_the_socket_is_refused(ingest: Side, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="another ingest already listens"):
        await start_ingest(tmp_path / "engine.sock", tmp_path / "other")


async def test_a_socket_left_by_a_dead_ingest_is_taken_over(tmp_path: Path,
                                                            gateways: list[LocalGateway]
                                                            ) -> None:
    path = tmp_path / "engine.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # bound, never listening: what a killed process leaves
    stale.close()
    side = await start_ingest(path, tmp_path)
    try:
        gateway = await join(gateways, path)
        assert gateway.health()["ok"] is True
        assert path.stat().st_mode & 0o777 == 0o600
    finally:
        await side.close()
    assert not path.exists()


async def test_a_quote_read_while_behind_never_overtakes_older_updates(
        ingest: Side, gateways: list[LocalGateway], tmp_path: Path) -> None:
    """A gateway behind asks for a quote (a new subscriber's snapshot): the answer follows
    the updates held for it, so its clients never get an older update after the newer."""
    gateway = await join(gateways, tmp_path / "engine.sock")
    got: list[Published] = []
    gateway.subscribe(got.append)
    gateway.watch("btcusdt")
    await eventually(lambda: ingest.engine.watched("btcusdt"), "the ingest knows the watch")
    link = gateway._link
    assert link is not None and link.transport is not None
    link.transport.pause_reading()  # the gateway falls behind
    (at_ingest,) = ingest.engine.links
    price = 100.0
    while at_ingest.held is None or len(at_ingest.held) < 20:
        price += 1
        ingest.ingest.publish([tick("btcusdt", T0, price)])
        await asyncio.sleep(0)
    asking = asyncio.ensure_future(gateway.latest(["btcusdt"]))
    await eventually(lambda: bool(at_ingest.replies), "the answer waits behind the held updates")
    handed_before: list[int] = []  # updates handed on when the answer was read
    read_frame = gateway.on_frame

    def on_frame(kind: bytes, payload: bytes) -> None:
        if kind == wire.REPLY:
            handed_before.append(len(prices(got)))
        read_frame(kind, payload)

    gateway.on_frame = on_frame  # type: ignore[method-assign]
    link.transport.resume_reading()
    (snapshot,) = await asking
    assert snapshot is not None
    at_snapshot = json.loads(snapshot)["Price"]
    assert at_snapshot == price  # the newest, read when it was asked
    seen = [p for _, p in prices(got)]
    assert seen == sorted(set(seen))  # in order, none twice
    assert all(p > at_snapshot for p in seen[handed_before[0]:])


async def test_a_gateway_that_leaves_too_many_answers_unread_is_cut_off(
        ingest: Side, tmp_path: Path) -> None:
    """Answers wait behind held updates, at most `MAX_WAITING` of them: a peer that asks
    and never reads is cut off, not kept in memory."""
    _, writer = await asyncio.open_unix_connection(str(tmp_path / "engine.sock"))
    writer.write(wire.frame(wire.WATCH, b"btcusdt"))
    await eventually(lambda: ingest.engine.watched("btcusdt"), "the ingest knows the watch")
    (at_ingest,) = ingest.engine.links
    price = 100.0
    while at_ingest.held is None:  # the peer reads nothing: its updates are held
        price += 1
        ingest.ingest.publish([tick("btcusdt", T0, price)])
        await asyncio.sleep(0)
    ask = wire.LatestCall(["btcusdt"])
    for call_id in range(wire.MAX_WAITING):
        writer.write(wire.frame(wire.CALL, wire.encode(wire.Request(call_id, ask))))
    await eventually(lambda: len(at_ingest.replies) == wire.MAX_WAITING, "answers waiting")
    assert ingest.engine.links == {at_ingest}  # up to the bound: kept
    writer.write(wire.frame(wire.CALL, wire.encode(wire.Request(wire.MAX_WAITING, ask))))
    await eventually(lambda: not ingest.engine.links, "cut off past the bound")
    writer.close()

"""What only the Redis engine has: an ingest and gateways as separate engines (as in
separate processes) over one real Redis, leases, a second ingest refused, and Redis out of
reach with `[engine] on_error` open or closed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from tests.engine.conftest import CODES, _catalogue, redis_settings
from tests.engine.test_contract import T0, tick
from tests.redis_server import RedisServer, free_port
from tickwire.catalogue import Catalogue
from tickwire.config import EngineConfig
from tickwire.engine.base import IngestStatus
from tickwire.engine.redis import RedisEngine
from tickwire.engine.redis_ingest import PrefixInUse
from tickwire.engine.sqlite import SqliteStore
from tickwire.errors import TickwireError
from tickwire.ingest.pipeline import Ingest
from tickwire.ingest.writer import StoreWriter
from tickwire.market import Market, TimeZone


async def eventually(check: Callable[[], bool | Awaitable[bool]], what: str,
                     timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        await asyncio.sleep(0.02)


@dataclass
class Deployment:
    """An ingest (its engine, role "ingest") and a way to add gateways on its prefix."""

    server: RedisServer
    settings: EngineConfig
    ingest: Ingest
    engine: RedisEngine
    opened: list[RedisEngine]

    async def gateway(self, catalogue: Catalogue | None = None, **changes: object
                      ) -> RedisEngine:
        settings = msgspec.structs.replace(self.settings, role="gateway", **changes)
        engine = RedisEngine(settings, catalogue or _catalogue())
        self.opened.append(engine)
        await engine.start()
        return engine


def ingest_engine(settings: EngineConfig, tmp_path: Path) -> tuple[Ingest, RedisEngine]:
    catalogue = _catalogue()
    market = Market(catalogue.products.values(), TimeZone("Asia/Shanghai"))
    store = SqliteStore(tmp_path / "tickwire.sqlite3")
    engine = RedisEngine(msgspec.structs.replace(settings, role="ingest"), catalogue, market,
                         store)
    return Ingest(market, engine, store, StoreWriter(store)), engine


@pytest.fixture
async def deployment(redis_server: RedisServer, tmp_path: Path
                     ) -> AsyncIterator[Deployment]:
    settings = redis_settings(redis_server)
    ingest, engine = ingest_engine(settings, tmp_path)
    await engine.start()
    engine.report(IngestStatus(ready=True))
    opened = [engine]
    yield Deployment(redis_server, settings, ingest, engine, opened)
    for one in reversed(opened):
        await one.close()
    ingest.writer.close()
    ingest.store.close()


async def test_a_gateway_takes_the_ingests_catalogue_status_and_updates(
        deployment: Deployment) -> None:
    shipped = _catalogue()
    fewer = Catalogue(shipped.categories, [shipped.products["btcusdt"]])
    gateway = await deployment.gateway(fewer)
    await eventually(lambda: list(gateway.catalogue().products) == CODES, "the catalogue")
    await eventually(lambda: gateway.health()["ingest"] == "reporting", "the status")
    got: list[tuple[str, bytes]] = []
    gateway.subscribe(got.extend)
    gateway.watch("ethusdt")
    await eventually(lambda: deployment.engine.watched("ethusdt"), "the ingest told")
    deployment.ingest.publish([tick("ethusdt", T0, 50.0), tick("btcusdt", T0, 100.0),
                               tick("ethusdt", T0 + 1, 51.0)])
    await eventually(lambda: len(got) == 2, "two updates")
    assert [(code, json.loads(body)["Price"]) for code, body in got] == \
        [("ethusdt", 50), ("ethusdt", 51)]
    gateway.unwatch("ethusdt")
    await eventually(lambda: not deployment.engine.watched("ethusdt"), "unwatched")


async def test_a_product_watched_anew_is_sent_at_once_with_its_newest_quote(
        deployment: Deployment) -> None:
    gateway = await deployment.gateway()
    deployment.ingest.publish([tick("btcusdt", T0, 100.0), tick("btcusdt", T0 + 1, 102.0)])
    got: list[tuple[str, bytes]] = []
    gateway.subscribe(got.extend)
    gateway.watch("btcusdt")  # a quiet product: no update comes after this
    await eventually(lambda: bool(got), "the newest quote")
    assert [json.loads(body)["Price"] for _, body in got] == [102]


async def test_a_burst_goes_as_several_messages_every_update_in_order(
        deployment: Deployment) -> None:
    gateway = await deployment.gateway()
    got: list[tuple[str, bytes]] = []
    gateway.subscribe(got.extend)
    gateway.watch("btcusdt")
    await eventually(lambda: deployment.engine.watched("btcusdt"), "the ingest told")
    burst = [tick("btcusdt", T0 + i, 100.0 + i) for i in range(2_500)]
    deployment.ingest.publish(burst)
    await eventually(lambda: len(got) == 2_500, "the whole burst", timeout=20)
    assert [json.loads(body)["Price"] for _, body in got] == [100 + i for i in range(2_500)]
    assert gateway.health()["gateway"]["batches"] == 3  # type: ignore[index]
    assert gateway.health()["gateway"]["gaps"] == 0  # type: ignore[index]


async def test_a_skipped_batch_makes_a_gateway_hand_on_the_newest_quotes(
        deployment: Deployment) -> None:
    gateway = await deployment.gateway()
    got: list[tuple[str, bytes]] = []
    gateway.subscribe(got.extend)
    gateway.watch("btcusdt")
    gateway.watch("ethusdt")
    await eventually(lambda: deployment.engine.watched("ethusdt"), "the ingest told")
    deployment.ingest.publish([tick("btcusdt", T0, 100.0)])
    await eventually(lambda: len(got) == 1, "the first update")
    # a batch lost on the way (Redis was away): the ingest's newest quote is in the hash
    # only, and the next batch's number skips
    body = deployment.ingest.market.apply(tick("btcusdt", T0 + 1, 107.0))
    assert body is not None
    client = deployment.engine._link.client
    await client.hset(deployment.engine._keys.latest, "btcusdt", body)
    deployment.engine._in._seq += 1
    deployment.ingest.publish([tick("ethusdt", T0, 50.0)])
    await eventually(lambda: len(got) == 3, "the newest quote after the gap")
    assert sorted((c, json.loads(b)["Price"]) for c, b in got[1:]) == \
        [("btcusdt", 107), ("ethusdt", 50)]
    assert gateway.health()["gateway"]["gaps"] == 1  # type: ignore[index]


async def test_a_quote_read_before_older_updates_arrive_waits_for_them(
        deployment: Deployment) -> None:
    """A body read from Redis may be newer than bus messages still on their way (a new
    subscriber's snapshot): those are handed on before the read is answered, never after
    it, so no client gets an older quote after a newer one."""
    gateway = await deployment.gateway()
    got: list[tuple[str, bytes]] = []
    gateway.subscribe(got.extend)
    gateway.watch("btcusdt")
    await eventually(lambda: deployment.engine.watched("btcusdt"), "the ingest told")
    await gateway.settle()
    # the bus slowed down: what it brings waits, in order, until let through
    handlers = gateway._listener._handlers
    channel = gateway._keys.updates.encode()
    deliver, on_the_way = handlers[channel], []
    handlers[channel] = on_the_way.append
    deployment.ingest.publish([tick("btcusdt", T0 + i, 100.0 + i) for i in range(3)])
    await deployment.engine._in.settle()  # in Redis, and published
    gateway._gw._fresh.clear()  # as for a product newly subscribed: read from Redis
    handed_when_read: list[int] = []
    reading = asyncio.ensure_future(gateway.latest(["btcusdt"]))
    reading.add_done_callback(lambda _: handed_when_read.append(len(got)))
    await eventually(lambda: any(data[:1] == b"~" for data in on_the_way),
                     "a marker on the way behind the updates")
    handlers[channel] = deliver
    for data in on_the_way:
        deliver(data)
    (snapshot,) = await reading
    assert snapshot is not None and json.loads(snapshot)["Price"] == 102
    seen = [json.loads(body)["Price"] for _, body in got]
    assert seen == sorted(seen) and seen[-1] == 102
    assert handed_when_read == [len(got)]  # nothing handed on after the read


@pytest.mark.slow  # waits out a lease
async def test_a_dead_gateways_websockets_stop_counting_within_its_lease(
        deployment: Deployment) -> None:
    dying = await deployment.gateway()
    other = await deployment.gateway()
    assert await dying.ws_acquire("10.0.0.1", 2) and await dying.ws_acquire("10.0.0.1", 2)
    assert not await other.ws_acquire("10.0.0.1", 2)
    # it dies: no heartbeat, nothing released, no goodbye
    for task in [*dying._gw._tasks, *dying._tasks]:
        task.cancel()
    deployment.opened.remove(dying)
    died = time.monotonic()
    await eventually(lambda: other.ws_acquire("10.0.0.1", 2), "counted off")
    assert time.monotonic() - died <= deployment.settings.lease + 1
    await dying._link.client.aclose()


async def test_redis_emptied_under_a_gateway_its_counts_are_written_back_whole(
        deployment: Deployment) -> None:
    """Redis restarted empty while the gateway held connections: the next change must not
    rebuild the gateway's keys from itself alone (2 held + 1 new would count as 1)."""
    gateway = await deployment.gateway()
    gateway.watch("btcusdt")
    await eventually(lambda: deployment.engine.watched("btcusdt"), "the ingest told")
    assert await gateway.ws_acquire("10.0.0.1", 3) and await gateway.ws_acquire("10.0.0.1", 3)
    client = gateway._link.client
    lost = await client.keys(deployment.settings.prefix + "*")
    await client.delete(*lost)  # as a restart without persistence would, all at once
    assert await gateway.ws_acquire("10.0.0.1", 3)  # the third
    assert not await gateway.ws_acquire("10.0.0.1", 3)  # the fourth: the two held count
    other = await deployment.gateway()
    assert not await other.ws_acquire("10.0.0.1", 3)  # and count on every gateway
    await gateway.ws_release("10.0.0.1")
    assert await other.ws_acquire("10.0.0.1", 3)
    gateway.watch("ethusdt")  # a change to the watched codes writes them whole, too
    await eventually(lambda: deployment.engine.watched("ethusdt"), "the new code")
    await asyncio.sleep(1.5)  # past the ingest's next read of every gateway's codes
    assert deployment.engine.watched("btcusdt") and deployment.engine.watched("ethusdt")


@pytest.mark.slow  # waits out a lease
async def test_a_second_ingest_on_the_same_prefix_is_refused(
        deployment: Deployment, tmp_path: Path) -> None:
    _, second = ingest_engine(deployment.settings, tmp_path / "second")
    with pytest.raises(PrefixInUse, match=r"another ingest .* publishes"):
        await second.start()
    await second.close()
    await deployment.engine.close()  # lets go of the prefix: the next starts at once
    deployment.opened.remove(deployment.engine)
    _, third = ingest_engine(deployment.settings, tmp_path / "third")
    began = time.monotonic()
    await third.start()
    assert time.monotonic() - began < 1
    await third.close()


async def test_without_an_ingest_a_change_is_a_503_at_once(redis_server: RedisServer) -> None:
    gateway = RedisEngine(redis_settings(redis_server, "gateway"), _catalogue())
    await gateway.start()
    try:
        with pytest.raises(TickwireError, match="no ingest is running") as refused:
            await gateway.allow_add("10.0.0.0/8", "")
        assert refused.value.status == 503
        assert await gateway.klines("btcusdt", "1m", 10, None) == []
        assert gateway.health()["ingest"] == "waiting"
    finally:
        await gateway.close()


@pytest.mark.parametrize("on_error", ["open", "closed"])
async def test_redis_out_of_reach_counts_alone_or_refuses(on_error: str) -> None:
    settings = EngineConfig(kind="redis", url=f"redis://127.0.0.1:{free_port()}/0",
                            role="gateway", on_error=on_error)  # type: ignore[arg-type]
    gateway = RedisEngine(settings, _catalogue())
    await gateway.start()  # starts anyway
    try:
        health = gateway.health()
        assert health["ok"] is False and health["redis"]["connected"] is False  # type: ignore[index]
        if on_error == "open":
            assert [await gateway.ws_acquire("10.0.0.1", 2) for _ in range(3)] == \
                [True, True, False]
            assert [(await gateway.rate_check(["k"], 2)).over for _ in range(3)] == \
                [[], [], [0]]
        else:
            for refused in (gateway.ws_acquire("10.0.0.1", 2), gateway.rate_check(["k"], 2)):
                with pytest.raises(TickwireError, match="Redis is unreachable") as error:
                    await refused
                assert error.value.status == 503
        assert await gateway.latest(["btcusdt"]) == [None]
        assert (await gateway.allow_list()).entries == []  # the config's only: closed
        with pytest.raises(TickwireError) as no_bars:
            await gateway.klines("btcusdt", "1m", 10, None)
        assert no_bars.value.status == 503
    finally:
        await gateway.close()


async def test_bars_kept_beyond_the_window_are_served_without_the_ingest(
        redis_server: RedisServer, tmp_path: Path) -> None:
    settings = msgspec.structs.replace(redis_settings(redis_server), kept_bars=1000)
    ingest, engine = ingest_engine(settings, tmp_path)
    minute = 60_000
    ingest.store.write([("btcusdt", "1m", (T0 - (1200 - i) * minute, 10.0 + i, 11.0 + i,
                                           9.0 + i, 10.5 + i, 1.0)) for i in range(1200)], {})
    ingest.restore()
    await engine.start()
    gateway = RedisEngine(msgspec.structs.replace(settings, role="gateway"), _catalogue())
    await gateway.start()
    try:
        await engine.settle()
        await gateway._gw.beat()  # it reads what the ingest keeps with the catalogue
        await engine.close()  # no ingest to ask from here on
        end = T0 - 900 * minute  # before the 600 bars of the window, within the 1,000 kept
        deep = [json.loads(b) for b in await gateway.klines("btcusdt", "1m", 50, end)]
        assert [bar[0] for bar in deep] == [end - i * minute for i in range(50)]
        assert deep[0][1] == 310  # the stored bar's open
        with pytest.raises(TickwireError, match="no ingest is running"):
            await gateway.klines("btcusdt", "1m", 50, T0 - 1100 * minute)
    finally:
        await gateway.close()
        ingest.writer.close()
        ingest.store.close()

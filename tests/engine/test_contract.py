"""The contract of every engine: what the ingest and the gateway may count on, whichever
engine joins them. Each test runs against every kind in `ENGINES`; `harness.settle()` waits
for what a shared engine does in the background (nothing to wait for in one process)."""

from __future__ import annotations

import asyncio
import itertools
import json

from tests.engine.conftest import CODES, Harness
from tickwire.models import BUY, Update

T0 = 1_763_431_200_000  # Tuesday 2025-11-18 10:00 in Shanghai
MINUTE = 60_000


def tick(code: str, ts: int, price: float) -> Update:
    book = [(price - 0.5, 1.0)]
    return Update(code, ts, price, book, [(price + 0.5, 2.0)], [(price, 0.25, BUY)])


def test_the_catalogue_is_the_one_served(harness: Harness) -> None:
    assert list(harness.engine.catalogue().products) == CODES


async def test_updates_reach_subscribers_of_watched_codes_in_order(harness: Harness) -> None:
    engine, ingest = harness.engine, harness.ingest
    got: list[list[tuple[str, bytes]]] = []
    engine.subscribe(got.append)
    engine.watch("btcusdt")
    ingest.publish([tick("btcusdt", T0, 100.0), tick("ethusdt", T0, 50.0),
                    tick("btcusdt", T0 + 1, 101.0)])
    await harness.settle()
    assert [(code, json.loads(body)["Price"]) for batch in got for code, body in batch] == \
        [("btcusdt", 100), ("btcusdt", 101)]


def test_watching_is_counted(harness: Harness) -> None:
    engine = harness.engine
    assert not engine.watched("btcusdt")
    engine.watch("btcusdt")
    engine.watch("btcusdt")
    engine.unwatch("btcusdt")
    assert engine.watched("btcusdt")
    engine.unwatch("btcusdt")
    assert not engine.watched("btcusdt")


async def test_latest_is_the_newest_quote_watched_or_not(harness: Harness) -> None:
    engine, ingest = harness.engine, harness.ingest
    assert await engine.latest(["btcusdt", "nosuch"]) == [None, None]
    engine.watch("ethusdt")
    ingest.publish([tick("btcusdt", T0, 100.0), tick("btcusdt", T0 + 5, 102.5),
                    tick("ethusdt", T0, 50.0)])
    await harness.settle()
    btc, eth = await engine.latest(["btcusdt", "ethusdt"])
    assert btc is not None and json.loads(btc)["Price"] == 102.5
    assert eth is not None and json.loads(eth)["Price"] == 50


async def test_klines_window_then_history_beyond_it(harness: Harness) -> None:
    engine, ingest = harness.engine, harness.ingest
    # 800 stored minutes before T0, then live updates over three minutes
    old = [("btcusdt", "1m", (T0 - (800 - i) * MINUTE, 10.0 + i, 11.0 + i, 9.0 + i,
                                     10.5 + i, 1.0)) for i in range(800)]
    ingest.store.write(old, {})
    ingest.restore()
    for i in range(6):
        ingest.publish([tick("btcusdt", T0 + i * 30_000, 2000.0 + i)])
    ingest.sink(["btcusdt"]).advance(T0 + 3 * MINUTE)
    harness.store_now()
    await harness.settle()
    newest = [json.loads(b) for b in await engine.klines("btcusdt", "1m", 600, None)]
    assert len(newest) == 600
    assert [bar[0] for bar in newest[:4]] == [T0 + 3 * MINUTE, T0 + 2 * MINUTE,
                                             T0 + MINUTE, T0]  # forming, then closed
    assert newest[3][1:5] == [2000, 2001, 2000, 2001]
    assert [a[0] - b[0] for a, b in itertools.pairwise(newest)] == \
        [MINUTE] * 599  # no gap, no duplicate
    end = T0 - 700 * MINUTE
    deep = [json.loads(b) for b in await engine.klines("btcusdt", "1m", 50, end)]
    assert [bar[0] for bar in deep] == [end - i * MINUTE for i in range(50)]
    assert deep[0][1] == 110  # the stored bar's open
    assert await engine.klines("btcusdt", "1m", 5, T0 - 801 * MINUTE) == []


async def test_the_allow_list_is_versioned(harness: Harness) -> None:
    engine = harness.engine
    first = await engine.allow_list()
    assert first.entries == []
    added = await engine.allow_add("203.0.113.0/24", "office")
    assert added.version > first.version
    assert [(e.cidr, e.note) for e in added.entries] == [("203.0.113.0/24", "office")]
    assert (await engine.allow_list()) == added
    removed, after = await engine.allow_remove("203.0.113.0/24")
    assert removed and after.version > added.version and after.entries == []
    again, same = await engine.allow_remove("203.0.113.0/24")
    assert not again and same.version == after.version


async def test_websockets_are_counted_per_ip_up_to_the_cap(harness: Harness) -> None:
    engine = harness.engine
    assert [await engine.ws_acquire("10.0.0.1", 2) for _ in range(3)] == [True, True, False]
    assert await engine.ws_acquire("10.0.0.2", 2)
    await engine.ws_release("10.0.0.1")
    assert await engine.ws_acquire("10.0.0.1", 2)
    assert not await engine.ws_acquire("10.0.0.1", 2)


async def test_rate_checks_count_per_key_in_a_sliding_second(harness: Harness) -> None:
    engine = harness.engine
    for _ in range(3):
        assert (await engine.rate_check(["ip|quote|a"], 3)).over == []
    verdict = await engine.rate_check(["ip|quote|b", "ip|quote|a"], 3)
    assert verdict.over == [1] and 0 < verdict.retry_after <= 1
    # the refused request counted for nobody
    for _ in range(3):
        assert (await engine.rate_check(["ip|quote|b"], 3)).over == []
    assert (await engine.rate_check(["other|quote|a"], 3)).over == []
    await asyncio.sleep(1.05)
    assert (await engine.rate_check(["ip|quote|a"], 3)).over == []


async def test_the_ingest_status_is_what_it_reported(harness: Harness) -> None:
    from tickwire.engine.base import IngestStatus

    engine = harness.engine
    assert await engine.status() is None
    engine.report(IngestStatus(ready=True, updates_in=7))
    status = await engine.status()
    assert status is not None and status.ready and status.updates_in == 7
    assert engine.health()["kind"] == engine.kind

"""The pipeline: what it publishes, what it leaves to be encoded when read, what it persists."""

from __future__ import annotations

import json
from pathlib import Path

from tickwire.catalogue import load_catalogue
from tickwire.engine.memory import MemoryBus
from tickwire.engine.sqlite import SqliteStore
from tickwire.gateway.pipeline import Pipeline
from tickwire.market import Market, TimeZone
from tickwire.models import BUY, Update

TS = 1_763_431_200_000  # Tuesday 2025-11-18 10:00 in Shanghai
PRODUCTS = load_catalogue(None).products


def book(price: float) -> list[tuple[float, float]]:
    return [(round(price - i * 0.01, 2), 1.0 + i) for i in range(10)]


def tick(code: str, i: int, price: float) -> Update:
    return Update(code, TS + i * 1000, price, book(price), book(price + 0.01),
                  [(price, 0.5, BUY)])


def make(tmp_path: Path, watched: set[str]) -> tuple[Pipeline, list[list[tuple[str, bytes]]],
                                                      SqliteStore]:
    market = Market([PRODUCTS["btcusdt"], PRODUCTS["ethusdt"]], TimeZone("Asia/Shanghai"))
    bus = MemoryBus()
    published: list[list[tuple[str, bytes]]] = []
    bus.subscribe(published.append)
    store = SqliteStore(tmp_path / "tickwire.sqlite3")
    return Pipeline(market, bus, store, wanted=watched.__contains__), published, store


def test_only_watched_products_are_encoded_and_published_each_update(tmp_path: Path) -> None:
    pipe, published, store = make(tmp_path, {"btcusdt"})
    pipe.publish([tick("btcusdt", 0, 100.0), tick("ethusdt", 0, 50.0),
                  tick("btcusdt", 1, 101.0), tick("nosuch", 1, 1.0)])
    assert [[code for code, _ in batch] for batch in published] == [["btcusdt", "btcusdt"]]
    prices = [json.loads(body)["Price"] for _, body in published[0]]
    assert prices == [100, 101]  # every update of a watched product, in order
    assert (pipe.updates_in, pipe.unknown) == (4, 1)
    assert pipe.market.products["ethusdt"].body is None  # left to be encoded when read
    store.close()


def test_an_unwatched_product_reads_its_newest_quote(tmp_path: Path) -> None:
    pipe, published, store = make(tmp_path, set())
    pipe.publish([tick("ethusdt", 0, 50.0), tick("ethusdt", 1, 51.5)])
    assert published == []
    body = pipe.market.body("ethusdt")
    assert body is not None and json.loads(body)["Price"] == 51.5
    assert body == pipe.market.products["ethusdt"].quote.encode()
    assert pipe.market.body("ethusdt") is body  # encoded once until the next update
    pipe.publish([tick("ethusdt", 2, 52.0)])
    assert json.loads(pipe.market.body("ethusdt") or b"")["Price"] == 52
    assert pipe.market.body("btcusdt") is None  # no update yet
    store.close()


def test_unencoded_updates_are_persisted_all_the_same(tmp_path: Path) -> None:
    pipe, _, store = make(tmp_path, set())
    pipe.publish([tick("ethusdt", i * 20, 50.0 + i) for i in range(6)])  # two minutes
    pipe.advance(TS + 180_000)
    pipe.persist()
    store.flush()
    bars = store.read_bars("ethusdt", "1m", 10, None)
    assert [bar[1:5] for bar in reversed(bars)][:2] == [(50.0, 52.0, 50.0, 52.0),
                                                        (53.0, 55.0, 53.0, 55.0)]
    assert store.load_stats()["ethusdt"].price == 55.0
    store.close()

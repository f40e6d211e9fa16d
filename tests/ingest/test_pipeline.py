"""The ingest: what it publishes, what it leaves to be encoded when read, what it persists."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tickwire.catalogue import Catalogue, load_catalogue
from tickwire.engine.memory import MemoryEngine
from tickwire.engine.sqlite import SqliteStore
from tickwire.feeds.record import Recorder
from tickwire.ingest.pipeline import Ingest
from tickwire.ingest.writer import StoreWriter
from tickwire.market import Market, TimeZone
from tickwire.models import BUY, INTERVALS, Update

TS = 1_763_431_200_000  # Tuesday 2025-11-18 10:00 in Shanghai
PRODUCTS = load_catalogue(None).products


def book(price: float) -> list[tuple[float, float]]:
    return [(round(price - i * 0.01, 2), 1.0 + i) for i in range(10)]


def tick(code: str, i: int, price: float) -> Update:
    return Update(code, TS + i * 1000, price, book(price), book(price + 0.01),
                  [(price, 0.5, BUY)])


def make_ingest(tmp_path: Path, codes: list[str]) -> Ingest:
    """An ingest over `codes` with the memory engine and a real store in `tmp_path`."""
    products = [PRODUCTS[code] for code in codes]
    market = Market(products, TimeZone("Asia/Shanghai"))
    store = SqliteStore(tmp_path / "tickwire.sqlite3")
    catalogue = Catalogue(load_catalogue(None).categories, products)
    return Ingest(market, MemoryEngine(catalogue, market, store), store, StoreWriter(store))


@pytest.fixture
def make(tmp_path: Path) -> Iterator[
        Callable[[set[str]], tuple[Ingest, list[list[tuple[str, bytes]]], StoreWriter]]]:
    made: list[Ingest] = []

    def build(watched: set[str]) -> tuple[Ingest, list[list[tuple[str, bytes]]], StoreWriter]:
        ingest = make_ingest(tmp_path, ["btcusdt", "ethusdt"])
        published: list[list[tuple[str, bytes]]] = []
        ingest.engine.subscribe(published.append)
        for code in watched:
            ingest.engine.watch(code)
        made.append(ingest)
        return ingest, published, ingest.writer

    yield build
    for ingest in made:
        ingest.writer.close()
        ingest.store.close()


Make = Callable[[set[str]], tuple[Ingest, list[list[tuple[str, bytes]]], StoreWriter]]


def test_only_watched_products_are_encoded_and_published_each_update(make: Make) -> None:
    pipe, published, _ = make({"btcusdt"})
    pipe.publish([tick("btcusdt", 0, 100.0), tick("ethusdt", 0, 50.0),
                  tick("btcusdt", 1, 101.0), tick("nosuch", 1, 1.0)])
    assert [[code for code, _ in batch] for batch in published] == [["btcusdt", "btcusdt"]]
    prices = [json.loads(body)["Price"] for _, body in published[0]]
    assert prices == [100, 101]  # every update of a watched product, in order
    assert (pipe.updates_in, pipe.unknown) == (4, 1)
    assert pipe.market.products["ethusdt"].body is None  # left to be encoded when read


def test_an_unwatched_product_reads_its_newest_quote(make: Make) -> None:
    pipe, published, _ = make(set())
    pipe.publish([tick("ethusdt", 0, 50.0), tick("ethusdt", 1, 51.5)])
    assert published == []
    body = pipe.market.body("ethusdt")
    assert body is not None and json.loads(body)["Price"] == 51.5
    assert body == pipe.market.products["ethusdt"].quote.encode()
    assert pipe.market.body("ethusdt") is body  # encoded once until the next update
    pipe.publish([tick("ethusdt", 2, 52.0)])
    assert json.loads(pipe.market.body("ethusdt") or b"")["Price"] == 52
    assert pipe.market.body("btcusdt") is None  # no update yet


def test_unencoded_updates_are_persisted_all_the_same(make: Make) -> None:
    pipe, _, writer = make(set())
    pipe.publish([tick("ethusdt", i * 20, 50.0 + i) for i in range(6)])  # two minutes
    pipe.sink(["ethusdt"]).advance(TS + 180_000)
    pipe.persist()
    writer.flush()
    store = writer.store
    bars = store.read_bars("ethusdt", "1m", 10, None)
    assert [bar[1:5] for bar in reversed(bars)][:2] == [(50.0, 52.0, 50.0, 52.0),
                                                        (53.0, 55.0, 53.0, 55.0)]
    assert store.load_stats()["ethusdt"].price == 55.0


def test_what_the_store_lacks_is_known_per_product_and_interval(tmp_path: Path) -> None:
    first = make_ingest(tmp_path, ["btcusdt", "ethusdt"])
    assert first.missing_history("btcusdt") == frozenset(INTERVALS)  # an empty store
    rows = [(TS - (3 - i) * 60_000, 1.0, 2.0, 0.5, 1.5, 1.0) for i in range(3)]
    first.load_history("btcusdt", {"1m": rows, "1d": [(TS - 86_400_000, 1.0, 2.0, 0.5, 1.5,
                                                       9.0)]}, None)
    assert first.missing_history("btcusdt") == frozenset(INTERVALS) - {"1m", "1d"}
    first.persist()
    first.writer.close()
    first.store.close()
    again = make_ingest(tmp_path, ["btcusdt", "ethusdt"])
    again.restore()
    assert again.missing_history("btcusdt") == frozenset(INTERVALS) - {"1m", "1d"}
    assert again.missing_history("ethusdt") == frozenset(INTERVALS)
    again.writer.close()
    again.store.close()


async def test_windows_loaded_again_and_again_keep_every_bar_ever_loaded(
        tmp_path: Path) -> None:
    """A relay loads an upstream's window (600 bars of 1m) at every start and outage: bars
    that have left the upstream's window stay, and a bar loaded again replaces the one kept,
    in memory and in the store, so `end=` pages back through all of them."""
    ingest = make_ingest(tmp_path, ["btcusdt"])
    minute = 60_000

    def window(first: int, volume: float) -> list[tuple[int, float, float, float, float,
                                                         float]]:
        return [(TS + i * minute, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, volume)
                for i in range(first, first + 600)]

    ingest.load_history("btcusdt", {"1m": window(0, 1.0)}, None)
    ingest.load_history("btcusdt", {"1m": window(300, 2.0)}, None)  # 300 new, 300 again
    ingest.persist()
    ingest.writer.close()
    series = ingest.market.products["btcusdt"].series["1m"]
    assert series.builder.forming() == window(300, 2.0)[-1]
    engine = ingest.engine
    newest = [json.loads(b) for b in await engine.klines("btcusdt", "1m", 600, None)]
    assert [bar[0] for bar in newest] == [TS + i * minute for i in range(899, 299, -1)]
    assert {bar[6] for bar in newest} == {2.0}  # loaded again: the new ones replace
    older = [json.loads(b) for b in await engine.klines("btcusdt", "1m", 600,
                                                         TS + 299 * minute)]
    assert [bar[0] for bar in older] == [TS + i * minute for i in range(299, -1, -1)]
    assert {bar[6] for bar in older} == {1.0}
    ingest.store.close()


class Recorded(Recorder):
    """A recorder that keeps what it is handed, to be looked at (nothing is written)."""

    def __init__(self, folder: Path, codes: list[str]) -> None:
        super().__init__(folder, codes)
        self.handed: list[bytes] = []

    def record(self, bodies: list[bytes]) -> None:
        self.handed += bodies


@pytest.mark.parametrize("codes", [["ethusdt"], []])
def test_live_updates_of_recorded_products_are_encoded_and_recorded(
        make: Make, tmp_path: Path, codes: list[str]) -> None:
    plain, published, _ = make({"btcusdt"})
    recorder = Recorded(tmp_path / "rec", codes)
    pipe = Ingest(plain.market, plain.engine, plain.store, plain.writer, recorder)
    pipe.backfill([tick("ethusdt", -2, 49.0), tick("ethusdt", -1, 49.5)])
    assert recorder.handed == []  # history filled in is not recorded
    pipe.publish([tick("btcusdt", 0, 100.0), tick("ethusdt", 0, 50.0),
                  tick("nosuch", 0, 1.0), tick("ethusdt", 1, 51.0)])
    assert [[code for code, _ in batch] for batch in published][-1] == ["btcusdt"]
    eth = [b for b in recorder.handed if json.loads(b)["StockCode"] == "ethusdt"]
    assert [json.loads(b)["Price"] for b in eth] == [50, 51]
    assert eth[-1] == pipe.market.body("ethusdt")  # the bytes the server pushes and serves
    btc = [b for b in recorder.handed if json.loads(b)["StockCode"] == "btcusdt"]
    assert btc == ([] if codes else [published[-1][0][1]])  # a watched one: the same bytes
    assert (pipe.updates_in, pipe.unknown) == (4, 1)

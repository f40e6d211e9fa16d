"""Every AsyncClient method against a real server over real sockets."""

from __future__ import annotations

import gzip
import itertools
import json
import time
import urllib.request

from tests.client.conftest import DEEP_BARS
from tests.e2e.server import Server
from tickwire import AsyncClient, Bars, Category, Quote, Symbol, SymbolPage
from tickwire.client.urls import ws_url_for

MINUTE = 60_000


def get_json(server: Server, path: str) -> object:
    with urllib.request.urlopen(server.url + path, timeout=10) as resp:
        return json.loads(resp.read())


def test_default_urls_and_ws_url_derivation() -> None:
    client = AsyncClient()
    assert client.http_url == "http://127.0.0.1:1008"
    assert client.ws_url == "ws://127.0.0.1:1008/ws"
    assert ws_url_for("https://md.example/api/") == "wss://md.example/api/ws"
    vendor = AsyncClient("http://198.51.100.7:1008", "ws://198.51.100.7/ws")
    assert vendor.ws_url == "ws://198.51.100.7/ws"
    bare = AsyncClient("198.51.100.7:1008/", "198.51.100.7/ws")
    assert (bare.http_url, bare.ws_url) == ("http://198.51.100.7:1008", "ws://198.51.100.7/ws")


async def test_quote(live: Server) -> None:
    async with AsyncClient(live.url) as client:
        q = await client.quote("btcusdt")
    assert isinstance(q, Quote) and q.code == "btcusdt" and q.price > 0
    assert len(q.bids) == 10 and q.bids[0].price == q.bid and q.asks[0].price == q.ask
    assert q.raw["StockCode"] == "btcusdt" and next(iter(q.raw)) == "StockCode"


async def test_quotes_in_order(live: Server) -> None:
    async with AsyncClient(live.url) as client:
        found = await client.quotes(["hf_GC", "btcusdt", "fx_seurusd"])
        assert [q.code for q in found] == ["hf_GC", "btcusdt", "fx_seurusd"]
        assert [q.code for q in await client.quotes("ethusdt, xrpusdt")] == ["ethusdt",
                                                                           "xrpusdt"]
        assert await client.quotes([]) == []


async def test_klines_oldest_first_and_like_the_server(live: Server) -> None:
    async with AsyncClient(live.url) as client:
        bars = await client.klines("btcusdt", "1m", 30)
    assert isinstance(bars, Bars) and len(bars) == 30
    assert all(b.open_ms - a.open_ms == MINUTE for a, b in itertools.pairwise(bars))
    server_rows = get_json(live, "/redis.php?code=btcusdt&time=1m&rows=30")
    assert isinstance(server_rows, list)
    assert bars[0].open_ms == server_rows[-1][0]
    assert [bars[0].open, bars[0].time] == [server_rows[-1][1], server_rows[-1][5]]


async def test_klines_default_rows_and_end(live: Server) -> None:
    async with AsyncClient(live.url) as client:
        assert len(await client.klines("hf_GC")) == 40
        latest = await client.klines("btcusdt", "1m", 5)
        end = latest[0].open_ms
        earlier = await client.klines("btcusdt", "1m", 5, end=end)
    assert earlier[-1].open_ms == end and len(earlier) == 5


async def test_klines_beyond_one_request_pages_back(live: Server) -> None:
    fractions: list[float] = []
    async with AsyncClient(live.url) as client:
        bars = await client.klines("btcusdt", "5m", 450, progress=fractions.append)
        everything = await client.klines("btcusdt", "1m", 10_000)
    assert len(bars) == 450  # 300 served at most per request
    assert all(b.open_ms - a.open_ms == 5 * MINUTE for a, b in itertools.pairwise(bars))
    assert fractions and fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert len(everything) >= 600 + DEEP_BARS["1m"]  # all there is, then it stops
    assert all(b.open_ms - a.open_ms == MINUTE for a, b in itertools.pairwise(everything))


async def test_history_pages_back_to_start(live: Server) -> None:
    now_ms = int(time.time() * 1000)
    start = now_ms - 1500 * MINUTE  # beyond what one 1m request serves (600)
    fractions: list[float] = []
    async with AsyncClient(live.url) as client:
        bars = await client.history("btcusdt", "1m", start, progress=fractions.append)
        window = await client.history("btcusdt", "1m", now_ms - 30 * MINUTE,
                                      now_ms - 10 * MINUTE)
    assert 1490 <= len(bars) <= 1501 and bars[0].open_ms >= start > bars[0].open_ms - MINUTE
    assert all(b.open_ms - a.open_ms == MINUTE for a, b in itertools.pairwise(bars))
    assert len({b.open_ms for b in bars}) == len(bars)
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert 19 <= len(window) <= 21
    assert now_ms - 31 * MINUTE <= window[0].open_ms and window[-1].open_ms <= now_ms - 10 * MINUTE


async def test_oldest_first_server_and_gzip(vendorish: Server) -> None:
    request = urllib.request.Request(vendorish.url + "/redis.php?code=btcusdt&time=1m&rows=3",
                                     headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"
        rows = json.loads(gzip.decompress(resp.read()))
    assert rows[0][0] < rows[-1][0]  # this server sends oldest first
    async with AsyncClient(vendorish.url) as client:
        bars = await client.klines("btcusdt", "1m", 50)
        q = await client.quote("ethusdt")
        cats = await client.categories()
    assert len(bars) == 50 and bars[0].open_ms < bars[-1].open_ms
    assert q.code == "ethusdt" and len(cats) == 5


async def test_categories(live: Server) -> None:
    async with AsyncClient(live.url) as client:
        cats = await client.categories()
    assert cats[0] == Category("1", "外汇")
    assert [c.id for c in cats] == ["1", "2", "3", "4", "7"]


async def test_symbols_pages_and_all(live: Server) -> None:
    async with AsyncClient(live.url) as client:
        first = await client.symbols(4, page=1, page_size=2)
        second = await client.symbols("4", page=2, page_size=2)
        past = await client.symbols(4, page=9, page_size=2)
        every = await client.all_symbols(4)
    assert first.total == 3 and [s.code for s in first] == ["btcusdt", "ethusdt"]
    assert [s.code for s in second] == ["xrpusdt"] and len(past) == 0 and past.total == 3
    assert every == [Symbol("btcusdt", "比特币"), Symbol("ethusdt", "以太坊"),
                     Symbol("xrpusdt", "瑞波币")]


async def test_names_of_codes_from_the_symbol_lists(live: Server) -> None:
    async with AsyncClient(live.url) as client:
        pages: list[str] = []
        symbols = client.symbols

        async def counted(category: str | int, page: int = 1,
                          page_size: int = 10) -> SymbolPage:
            pages.append(f"{category}/{page}")
            return await symbols(category, page, page_size)

        client.symbols = counted  # type: ignore[method-assign]
        assert await client.names(["fx_susdjpy"]) == {"fx_susdjpy": "美元日元"}
        assert pages == ["1/1"]  # found in the first category's first page: no more asked
        pages.clear()
        named = await client.names("btcusdt, nope,fx_seurusd")
        assert named == {"btcusdt": "比特币", "fx_seurusd": "欧元美元"}  # nope: left out
        assert pages == ["1/1", "2/1", "3/1", "4/1", "7/1"]  # every list, for nope
        assert await client.names([]) == {}

"""The exchange feed against a local fake Binance (real sockets, the real ccxt), on the real
capture of Binance's order books and real Binance trades with Binance's own candles."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from tickwire.catalogue import load_catalogue
from tickwire.config import ExchangeFeedConfig
from tickwire.feeds import exchange as exchange_feed
from tickwire.feeds.base import FeedState
from tickwire.feeds.exchange import TIMEFRAMES, ExchangeFeed
from tickwire.feeds.factory import with_feed_products
from tickwire.market import Market
from tickwire.market.bars import BarRow, Interval
from tickwire.market.clock import TimeZone
from tickwire.market.quotes import DayStats
from tickwire.models import INTERVALS, Product, Update

from .fake_binance import (
    CAPTURED,
    SYMBOLS,
    TRADES,
    XRPETH,
    Book,
    FakeBinance,
    capture_events,
    capture_markets,
    capture_snapshots,
    freqtrade_klines,
    freqtrade_trades,
    in_order_within,
)

pytest.importorskip("ccxt", reason="the exchanges extra (ccxt) is not installed")

TZ = TimeZone("Asia/Shanghai")


class MarketSink:
    """The ingest's part that matters here: a pure `Market` fed as the ingest feeds it, with
    every update and every closed bar kept for the test."""

    def __init__(self, products: Iterable[Product]) -> None:
        self.market = Market(products, TZ)
        self.history = self
        self.updates: list[Update] = []
        self.bars: dict[tuple[str, str], dict[int, BarRow]] = {}
        self.loads: list[tuple[str, dict[str, list[BarRow]], DayStats | None]] = []

    def publish(self, updates: list[Update]) -> None:
        self.updates.extend(updates)
        for update in updates:
            self.market.apply(update, encode=False)
        self._collect()

    def advance(self, now_ms: int) -> None:
        self.market.advance(now_ms, list(self.market.products))
        self._collect()

    def skip_to(self, now_ms: int) -> None:
        self.market.skip_to(now_ms, list(self.market.products))
        self._collect()

    def missing_history(self, code: str) -> frozenset[str]:
        return frozenset(INTERVALS)

    def load_history(self, code: str, bars: dict[str, list[BarRow]],
                     stats: DayStats | None) -> None:
        self.loads.append((code, bars, stats))
        self.market.load_history(code, bars, stats)
        self._collect()

    def backfill(self, updates: list[Update]) -> None:
        self.publish(updates)

    def resume(self, code: str) -> tuple[float, float] | None:
        return None

    def _collect(self) -> None:
        closed, _, _ = self.market.take_changes()
        for code, interval, row in closed:
            self.bars.setdefault((code, interval), {})[row[0]] = row

    def books(self, code: str) -> list[tuple[list[Any], list[Any]]]:
        return [(u.bids, u.asks) for u in self.updates if u.code == code and u.bids is not None]


async def products_of(config: ExchangeFeedConfig, data_dir: Path) -> list[Product]:
    """The products the server would serve for `config` (the markets asked of the fake in
    a thread, as at a server's start)."""
    catalogue = await asyncio.to_thread(with_feed_products, [config], load_catalogue(None),
                                        data_dir)
    return list(catalogue.products.values())


@contextlib.asynccontextmanager
async def running(feed: ExchangeFeed, sink: MarketSink) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(feed.run(sink))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(check: Any, timeout: float = 20, what: str = "") -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


async def play_capture(shared_data: Path, tmp_path: Path, drop: int | None) -> tuple[
        ExchangeFeed, MarketSink, FakeBinance, dict[str, list[Any]]]:
    """The capture through the fake to a feed; `drop`: a NKNUSDT diff (by its number among
    them) the feed never gets. Returns the feed, what it handed on, the fake, and each
    code's books by an independent application of every diff (top 10)."""
    snapshots = capture_snapshots(shared_data)
    truth = {symbol: Book.of(snapshot) for symbol, snapshot in snapshots.items()}
    expected = {symbol.lower(): [book.levels(10)] for symbol, book in truth.items()}
    fake = FakeBinance(capture_markets(shared_data),
                       {symbol: Book.of(snapshot) for symbol, snapshot in snapshots.items()})
    async with fake:
        config = ExchangeFeedConfig("binance", SYMBOLS, rest_url=fake.rest_url,
                                    ws_url=fake.ws_url)
        sink = MarketSink(await products_of(config, tmp_path))
        feed = ExchangeFeed(config, TZ)
        async with running(feed, sink):
            await fake.wait_streams({f"{s.lower()}@depth@100ms" for s in CAPTURED})
            nkn = 0
            for stream, data in capture_events(shared_data):
                deliver = True
                if data.get("e") == "depthUpdate":
                    if truth[data["s"]].apply(data):
                        expected[data["s"].lower()].append(truth[data["s"]].levels(10))
                    if data["s"] == "NKNUSDT":
                        deliver = nkn != drop
                        nkn += 1
                await fake.send(stream, data, deliver)
                await asyncio.sleep(0.003)
            await until(lambda: all(sink.books(code) and sink.books(code)[-1] == books[-1]
                                    for code, books in expected.items()))
    return feed, sink, fake, expected


async def test_every_book_handed_on_is_the_exchange_book_level_for_level(
        shared_data: Path, tmp_path: Path) -> None:
    feed, sink, fake, expected = await play_capture(shared_data, tmp_path, drop=None)
    for code, books in expected.items():
        published = sink.books(code)
        assert published, code
        in_order_within(published, books)
        assert all(len(bids) <= 10 and len(asks) <= 10 for bids, asks in published)
    assert feed.crossed == 0 and feed.resyncs == {}
    # the books move level by level: most diffs of the busiest symbol are handed on
    assert len(sink.books("nknusdt")) > len(expected["nknusdt"]) // 2
    depth_requests = [q["symbol"] for path, q in fake.requests if path.endswith("/depth")]
    assert sorted(depth_requests) == sorted(CAPTURED)


async def test_a_gap_in_the_diffs_resyncs_that_symbol_only(shared_data: Path,
                                                           tmp_path: Path) -> None:
    feed, sink, fake, expected = await play_capture(shared_data, tmp_path, drop=40)
    assert feed.resyncs == {"nknusdt": 1}
    depth_requests = [q["symbol"] for path, q in fake.requests if path.endswith("/depth")]
    assert depth_requests.count("NKNUSDT") == 2
    assert all(depth_requests.count(s) == 1 for s in CAPTURED if s != "NKNUSDT")
    for code, books in expected.items():  # never a book the exchange did not have
        in_order_within(sink.books(code), books)


# bars from real trades -------------------------------------------------------------------------

async def xrpeth_feed(fake: FakeBinance, tmp_path: Path) -> tuple[ExchangeFeed, MarketSink]:
    """A feed of XRP/ETH from `fake`, and a sink of the products a server would have."""
    config = ExchangeFeedConfig("binance", ["XRP/ETH"], rest_url=fake.rest_url,
                                ws_url=fake.ws_url)
    return ExchangeFeed(config, TZ), MarketSink(await products_of(config, tmp_path))


async def play_trades(shared_data: Path | list[dict[str, Any]], tmp_path: Path, count: int,
                      outage: tuple[int, int] | None = None, burst: int = 50,
                      pause: float = 0.001, renew_after: float | None = None,
                      renewals: int = 0,
                      settled: Callable[[MarketSink], bool] = lambda sink: True,
                      ) -> tuple[ExchangeFeed, MarketSink, FakeBinance]:
    """The first `count` XRPETH trades through the fake to a feed, `burst` at a time with
    a `pause` between; during `outage` (trade numbers) every socket is closed and the
    trades are not delivered; the feed renews its connection every `renew_after` s, and
    the trades stop early once it has done so `renewals` times; the feed runs until what
    it handed on is `settled`."""
    trades = (freqtrade_trades(shared_data) if isinstance(shared_data, Path)
              else shared_data)[:count]
    async with FakeBinance([XRPETH], {"XRPETH": Book(last_id=1)}) as fake:
        feed, sink = await xrpeth_feed(fake, tmp_path)
        if renew_after is not None:
            feed.renew_after = renew_after
        async with running(feed, sink) as task:
            await fake.wait_streams({"xrpeth@aggTrade"})
            delivered = 0
            for n, trade in enumerate(trades):
                if outage is not None and n == outage[0]:
                    await until(lambda sent=delivered: feed.trades == sent)
                    subscribed = fake.subscribes
                    await fake.drop_connections()
                elif outage is not None and n == outage[1]:
                    await fake.wait_streams({"xrpeth@aggTrade"})
                    await until(lambda before=subscribed: fake.subscribes > before)
                lost = outage is not None and outage[0] <= n < outage[1]
                await fake.send("xrpeth@aggTrade", trade, deliver=not lost)
                delivered += not lost
                if n % burst == 0:
                    await asyncio.sleep(pause)
                    if renewals and feed.renewals >= renewals:
                        break
            await until(lambda: feed.trades == delivered)
            assert not task.done()
            if outage is not None:
                # the bars of the outage refilled, the bar of the return reconciled
                await until(lambda: feed.reconciled >= len(TIMEFRAMES) and not [
                    due for due in feed._due if due[4] in TIMEFRAMES])
                await asyncio.sleep(0.2)
            await until(lambda: settled(sink))
    return feed, sink, fake


def assert_minutes_are_binances(sink: MarketSink, shared_data: Path, first: int,
                                last: int) -> int:
    """Every 1m bar from `first` up to (not including) `last` is Binance's own candle:
    open, high, low, close, volume. Returns how many were compared."""
    built = sink.bars[("xrpeth", "1m")]
    own = {int(row[0]): tuple(row[1:6]) for row in freqtrade_klines(shared_data)}
    minutes = [m for m in own if first <= m < last]
    assert minutes
    for minute in minutes:
        assert minute in built, f"no bar for {minute}"
        assert tuple(built[minute][1:6]) == pytest.approx(own[minute], abs=1e-12), minute
    return len(minutes)


async def test_1m_bars_built_from_trades_are_binances_own_candles(shared_data: Path,
                                                                  tmp_path: Path) -> None:
    count = 2_000
    feed, sink, _ = await play_trades(shared_data, tmp_path, count)
    trades = freqtrade_trades(shared_data)[:count]
    first = trades[0]["T"] - trades[0]["T"] % 60_000
    last = trades[-1]["T"] - trades[-1]["T"] % 60_000
    compared = assert_minutes_are_binances(sink, shared_data, first, last)
    assert compared > 300  # quiet minutes included: flat at the previous close, volume 0
    assert feed.trades == count
    sides = {t[2] for u in sink.updates for t in u.trades}
    assert sides == {1, 2}


async def test_a_burst_of_trades_ccxt_parses_at_once_is_handed_on_whole(
        shared_data: Path, tmp_path: Path) -> None:
    count = 5_000  # ccxt keeps 1,000 a symbol unless told otherwise
    feed, sink, _ = await play_trades(shared_data, tmp_path, count, burst=count)
    assert feed.trades == count
    trades = freqtrade_trades(shared_data)[:count]
    assert_minutes_are_binances(sink, shared_data, trades[0]["T"] // 60_000 * 60_000,
                                trades[-1]["T"] // 60_000 * 60_000)


async def test_the_fake_closing_the_socket_reconnects_with_no_bar_lost(
        shared_data: Path, tmp_path: Path) -> None:
    count, outage = 2_000, (700, 900)
    feed, sink, _ = await play_trades(shared_data, tmp_path, count, outage)
    trades = freqtrade_trades(shared_data)[:count]
    first = trades[0]["T"] - trades[0]["T"] % 60_000
    last = trades[-1]["T"] - trades[-1]["T"] % 60_000
    assert_minutes_are_binances(sink, shared_data, first, last)
    assert feed.reconnects >= 1 and feed.reconciled >= 1
    assert feed.trades == count - (outage[1] - outage[0])


async def test_a_planned_renewal_of_the_connection_loses_and_doubles_no_trade(
        shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exchange_feed, "RENEW_OVERLAP", 0.3)
    feed, sink, fake = await play_trades(shared_data, tmp_path, 12_000, burst=10,
                                         pause=0.005, renew_after=0.4, renewals=2)
    assert feed.renewals == 2
    assert fake.connections >= 3  # a connection of its own for each renewal
    assert feed.duplicates > 0  # both connections of a renewal handed trades on
    trades = freqtrade_trades(shared_data)[:feed.trades]  # each trade counted once
    assert fake.trades["XRPETH"] == trades
    assert_minutes_are_binances(sink, shared_data, trades[0]["T"] // 60_000 * 60_000,
                                trades[-1]["T"] // 60_000 * 60_000)


async def test_the_day_of_an_outage_is_the_exchanges_once_it_has_ended(
        tmp_path: Path) -> None:
    # a trade a minute through a whole day three days ago, then one the next day
    day = Interval("1d", TZ)
    start = day.floor(int(time.time() * 1000)) - 3 * 86_400_000
    times = [*range(start, start + 86_400_000, 60_000), start + 86_400_000 + 30_000]
    trades = [{"e": "aggTrade", "E": ts, "s": "XRPETH", "a": k, "p": f"{1 + k % 89 / 100:.2f}",
               "q": str(1 + k % 7), "T": ts, "m": k % 3 == 0} for k, ts in enumerate(times)]
    outage = (500, 700)

    def mended(sink: MarketSink) -> list[BarRow]:
        return [bar for _, bars, _ in sink.loads for bar in bars.get("1d", ())
                if bar[0] == start]

    feed, sink, _ = await play_trades(trades, tmp_path, len(trades), outage,
                                      settled=lambda sink: bool(mended(sink)))
    # the day's bar as built here lacks the trades of the outage; at its end it is mended
    [expected] = [bar for bar in rolled_up(trades, day) if bar[0] == start]
    assert mended(sink) == [expected]
    assert sink.bars[("xrpeth", "1d")][start] == expected
    assert feed.trades == len(trades) - (outage[1] - outage[0])


async def test_a_down_exchange_is_the_feed_state_with_the_reason(shared_data: Path,
                                                                 tmp_path: Path) -> None:
    async with FakeBinance([XRPETH], {"XRPETH": Book(last_id=1)}) as fake:
        feed, sink = await xrpeth_feed(fake, tmp_path)
        async with running(feed, sink) as task:
            await fake.wait_streams({"xrpeth@aggTrade"})
            await fake.send("xrpeth@aggTrade", freqtrade_trades(shared_data)[0])
            await until(lambda: feed.trades == 1)
            await fake.__aexit__()  # the exchange goes away
            await until(lambda: feed.state is FeedState.DOWN)
            assert feed.error and "binance" in feed.error and "Error" in feed.error
            assert not task.done()  # it keeps trying, without raising


# start-up -----------------------------------------------------------------------------------------

async def test_an_unknown_symbol_exits_2_with_one_line(shared_data: Path,
                                                       tmp_path: Path) -> None:
    async with FakeBinance([XRPETH], {"XRPETH": Book(last_id=1)}) as fake:
        config = tmp_path / "tickwire.toml"
        config.write_text(
            f'[server]\ndata_dir = "{tmp_path / "data"}"\nport = 0\n'
            f'[[feeds]]\nkind = "exchange"\nexchange = "binance"\n'
            f'symbols = ["XRP/ETH", "NOPE/USDT"]\n'
            f'rest_url = "{fake.rest_url}"\nws_url = "{fake.ws_url}"\n')
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
        env = {k: v for k, v in env.items() if not k.startswith("TICKWIRE_")}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tickwire", "serve", "--config", str(config), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(60):
            _, err = await process.communicate()
    assert process.returncode == 2, err
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert "feeds[0].symbols[1]" in lines[0] and "'NOPE/USDT'" in lines[0]
    assert "binance does not list" in lines[0]


async def test_a_crossed_book_is_never_handed_on(tmp_path: Path) -> None:
    book = Book(last_id=10, bids={"0.00100000": "5"}, asks={"0.00110000": "7"})
    async with FakeBinance([XRPETH], {"XRPETH": book}) as fake:
        feed, sink = await xrpeth_feed(fake, tmp_path)
        async with running(feed, sink):
            await until(lambda: len(sink.books("xrpeth")) == 1)  # the snapshot

            async def diff(n: int, bids: list[list[str]]) -> None:
                await fake.send("xrpeth@depth@100ms", {"e": "depthUpdate", "E": n, "s": "XRPETH",
                                                       "U": n, "u": n, "b": bids, "a": []})

            await diff(11, [["0.00120000", "1"]])  # a bid above the best ask
            await until(lambda: feed.crossed == 1)
            await diff(12, [["0.00120000", "0"], ["0.00100000", "6"]])
            await until(lambda: len(sink.books("xrpeth")) == 2)
    assert sink.books("xrpeth") == [([(0.001, 5.0)], [(0.0011, 7.0)]),
                                    ([(0.001, 6.0)], [(0.0011, 7.0)])]


async def test_at_start_the_windows_and_today_come_from_the_exchanges_candles(
        shared_data: Path, tmp_path: Path) -> None:
    trades = freqtrade_trades(shared_data)
    async with FakeBinance([XRPETH], {"XRPETH": Book(last_id=1)}) as fake:
        for trade in trades:  # the exchange's past
            await fake.send("xrpeth@aggTrade", trade, deliver=False)
        feed, sink = await xrpeth_feed(fake, tmp_path)
        async with running(feed, sink):
            await until(lambda: bool(sink.loads))
    [(code, bars, stats)] = sink.loads
    assert code == "xrpeth" and set(bars) == {"1m", "5m", "15m", "30m", "1h", "1d"}
    own_1m = [tuple(row) for row in freqtrade_klines(shared_data)][-600:]
    assert [tuple(row) for row in bars["1m"]] == own_1m  # Binance's own candles, exactly
    own_5m = json.loads((shared_data / TRADES / "XRP_ETH-5m.json").read_text())[-300:]
    assert [tuple(row) for row in bars["5m"]] == [tuple(row) for row in own_5m]
    # days of UTC+8 from the hours: the first (from 08:00, the data's start) left out
    day_ms, shift = 86_400_000, 8 * 3_600_000
    by_day: dict[int, list[dict[str, Any]]] = {}
    for trade in trades:
        by_day.setdefault((trade["T"] + shift) // day_ms * day_ms - shift, []).append(trade)
    days = sorted(by_day)[1:]
    assert [row[0] for row in bars["1d"]] == days
    for row, day in zip(bars["1d"], days, strict=True):
        prices = [float(t["p"]) for t in by_day[day]]
        volume = sum(float(t["q"]) for t in by_day[day])
        assert row[1:] == pytest.approx((prices[0], max(prices), min(prices), prices[-1],
                                         volume), abs=1e-9)
    assert stats is not None
    today = by_day[days[-1]]
    assert (stats.day, stats.open, stats.price) == (days[-1], float(today[0]["p"]),
                                                    float(today[-1]["p"]))
    assert stats.last_close == float(by_day[days[-2]][-1]["p"])
    assert stats.volume == pytest.approx(sum(float(t["q"]) for t in today))


async def test_days_and_months_are_rolled_up_from_the_exchanges_8h_candles(
        tmp_path: Path) -> None:
    # a trade every 4 hours for 9 years up to yesterday, from a month's first midnight
    month = Interval("1M", TZ)
    start = month.floor(int(time.time() * 1000))
    for _ in range(9 * 12):
        start = month.floor(start - 1)
    end = int(time.time() * 1000) - 86_400_000
    trades = [{"e": "aggTrade", "E": ts, "s": "XRPETH", "a": k, "p": f"{1 + k % 97 / 100:.2f}",
               "q": str(1 + k % 5), "T": ts, "m": k % 2 == 0}
              for k, ts in enumerate(range(start, end, 4 * 3_600_000))]
    async with FakeBinance([XRPETH], {"XRPETH": Book(last_id=1)}) as fake:
        for trade in trades:  # the exchange's past
            await fake.send("xrpeth@aggTrade", trade, deliver=False)
        feed, sink = await xrpeth_feed(fake, tmp_path)
        async with running(feed, sink):
            await until(lambda: len(sink.loads) == 2)  # the older months come later
    asked = [q["interval"] for path, q in fake.requests if path.endswith("/klines")]
    assert asked.count("8h") == 1 + math.ceil(  # the first request, then the older months
        (month.floor(trades[-1]["T"]) - start) / 28_800_000 / 1_000) - 1
    expected = {name: rolled_up(trades, Interval(name, TZ)) for name in ("1d", "1M")}
    (_, first, stats), (_, older, _) = sink.loads
    assert first["1d"] == expected["1d"][-300:]  # the window, from one request of 1,000
    # every month of the last 100, from the first request and the older ones
    assert older["1M"] + first["1M"] == expected["1M"][-100:]
    assert older["1M"][-1][0] < first["1M"][0][0]
    assert stats is not None and stats.day == expected["1d"][-1][0]


def rolled_up(trades: list[dict[str, Any]], interval: Interval) -> list[BarRow]:
    """Bars of `interval` made of `trades` directly: (open ms, o, h, l, c, volume)."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for trade in trades:
        groups.setdefault(interval.floor(trade["T"]), []).append(trade)
    return [(start, float(group[0]["p"]), max(float(t["p"]) for t in group),
             min(float(t["p"]) for t in group), float(group[-1]["p"]),
             float(sum(int(t["q"]) for t in group))) for start, group in groups.items()]


async def test_windows_the_exchange_could_not_give_at_start_are_filled_when_trades_come(
        shared_data: Path, tmp_path: Path) -> None:
    trades = freqtrade_trades(shared_data)[:1000]
    async with FakeBinance([XRPETH], {"XRPETH": Book(last_id=1)}) as fake:
        for trade in trades[:-1]:
            await fake.send("xrpeth@aggTrade", trade, deliver=False)
        fake.klines_down = True
        feed, sink = await xrpeth_feed(fake, tmp_path)
        async with running(feed, sink):
            await fake.wait_streams({"xrpeth@aggTrade"})
            asked = [q for path, q in fake.requests if path.endswith("/klines")]
            assert len(asked) == 1 and not sink.loads  # no wait for every window
            fake.klines_down = False
            await fake.send("xrpeth@aggTrade", trades[-1])
            await until(lambda: bool(sink.loads))
    [(_, bars, _)] = sink.loads
    assert bars["1m"][-1][0] == trades[-1]["T"] // 60_000 * 60_000
    assert len(bars["1m"]) == 285  # every minute of the 4 h 45 min of trades


async def test_the_feed_is_live_once_every_book_has_come(tmp_path: Path) -> None:
    book = Book(last_id=10, bids={"0.00100000": "5"}, asks={"0.00110000": "7"})
    async with FakeBinance([XRPETH], {"XRPETH": book}) as fake:
        feed, sink = await xrpeth_feed(fake, tmp_path)
        assert feed.state is FeedState.CONNECTING
        async with running(feed, sink):
            await until(lambda: feed.state is FeedState.LIVE)  # no trade yet
            assert feed.error is None and feed.status()["books"] == 1

"""The simulator: deterministic, consistent books, trades at the touch, limits, full history."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest

from tickwire.catalogue import load_catalogue
from tickwire.feeds.sim import ProductSim, history_updates, window_starts
from tickwire.market import Market
from tickwire.market.bars import Interval
from tickwire.market.clock import DAY_MS, TimeZone
from tickwire.market.hours import TradingHours
from tickwire.market.quotes import QuoteState
from tickwire.models import BUY, INTERVALS, SELL, WINDOW, Product, Update

SHANGHAI = ZoneInfo("Asia/Shanghai")
TZ = TimeZone("Asia/Shanghai")
CATALOGUE = load_catalogue()
PRODUCTS = list(CATALOGUE.products.values())


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=SHANGHAI).timestamp()
               * 1000)


def sim_for(product: Product, seed: int = 1,
            resume: tuple[float, float] | None = None) -> ProductSim:
    return ProductSim(product, TradingHours(product.hours, TZ), TZ, seed, resume)


def event_times(hours: TradingHours, start: int, count: int, mean_gap_ms: int,
                seed: int = 0) -> Iterator[int]:
    """`count` instants inside trading hours from `start`, random gaps around `mean_gap_ms`."""
    rng = random.Random(seed)
    ts = start
    for _ in range(count):
        ts = hours.next_open(ts)
        yield ts
        ts += 1 + int(rng.expovariate(1.0) * mean_gap_ms)


def ticks(price: float, precision: int) -> int:
    return round(price * 10.0**precision)


# ---- determinism ------------------------------------------------------------------------

def test_same_seed_same_times_same_updates() -> None:
    product = CATALOGUE.products["btcusdt"]
    times = list(event_times(TradingHours("24/7", TZ), at(2024, 3, 6), 500, 2_000))
    one, two = sim_for(product, 7), sim_for(product, 7)
    a = [one.step(ts) for ts in times]
    b = [two.step(ts) for ts in times]
    assert a == b
    assert msgspec.json.encode(a) == msgspec.json.encode(b)


def test_a_different_seed_gives_a_different_market() -> None:
    product = CATALOGUE.products["btcusdt"]
    times = list(event_times(TradingHours("24/7", TZ), at(2024, 3, 6), 200, 2_000))
    a = [sim_for(product, 7).step(ts) for ts in times]
    sim = sim_for(product, 8)
    b = [sim.step(ts) for ts in times]
    assert [u.price for u in a] != [u.price for u in b]
    assert sum(x.price != y.price for x, y in zip(a, b, strict=True)) > 100


def test_products_with_the_same_seed_are_independent() -> None:
    sims = [sim_for(CATALOGUE.products[c], 1) for c in ("ethusdt", "xrpusdt")]
    moves = []
    for sim in sims:
        prices = [sim.step(at(2024, 3, 6) + k * 60_000).price for k in range(50)]
        moves.append([b > a for a, b in itertools.pairwise(prices)])
    assert moves[0] != moves[1]


def test_history_is_deterministic() -> None:
    product = CATALOGUE.products["nf_AU0"]
    hours = TradingHours(product.hours, TZ)
    now = at(2024, 3, 6, 14, 23, 17)
    starts = window_starts(hours, TZ, now)
    a = history_updates(sim_for(product, 3), TZ, now, 5.0, starts)
    b = history_updates(sim_for(product, 3), TZ, now, 5.0, starts)
    assert a == b


# ---- the book ---------------------------------------------------------------------------

@pytest.mark.parametrize("product", PRODUCTS, ids=lambda p: p.code)
def test_books_are_consistent(product: Product) -> None:
    sim = sim_for(product, 11)
    dec, levels = product.precision, max(product.depth, 1)
    for ts in event_times(sim.hours, at(2024, 3, 4), 300, 17 * 60_000, seed=5):
        update = sim.step(ts)
        assert sim.hours.is_open(update.ts)
        bids, asks = update.bids, update.asks
        assert bids is not None and asks is not None
        assert len(bids) == len(asks) == levels
        assert levels <= 10
        bid_ticks = [ticks(p, dec) for p, _ in bids]
        ask_ticks = [ticks(p, dec) for p, _ in asks]
        for p, v in [*bids, *asks]:
            assert round(p, dec) == p, (p, dec)  # at the product's precision
            assert p > 0
            assert v > 0
            assert round(v, product.volume_precision) == v
        assert bid_ticks[0] < ask_ticks[0]
        assert ask_ticks[0] - bid_ticks[0] >= 1  # at least one tick
        assert all(a > b for a, b in itertools.pairwise(bid_ticks))  # descending
        assert all(b > a for a, b in itertools.pairwise(ask_ticks))  # ascending
        assert round(update.price, dec) == update.price
        assert bid_ticks[0] <= ticks(update.price, dec) <= ask_ticks[0]


@pytest.mark.parametrize("product", [p for p in PRODUCTS if p.trades], ids=lambda p: p.code)
def test_trades_happen_at_the_touch(product: Product) -> None:
    sim = sim_for(product, 2)
    sides = set()
    for ts in event_times(sim.hours, at(2024, 3, 4), 200, 7 * 60_000, seed=9):
        update = sim.step(ts)
        assert update.bids and update.asks
        assert len(update.trades) == 1
        price, size, side = update.trades[0]
        sides.add(side)
        assert size > 0
        assert round(size, product.volume_precision) == size
        if side == BUY:
            assert price == update.asks[0][0]
        else:
            assert side == SELL
            assert price == update.bids[0][0]
        assert update.price == price
    assert sides == {BUY, SELL}


def test_forex_has_no_trades() -> None:
    forex = [p for p in PRODUCTS if p.category == "1"]
    assert forex
    for product in forex:
        assert not product.volume and not product.trades, product.code
        sim = sim_for(product, 4)
        market = Market([product], TZ)
        for ts in event_times(sim.hours, at(2024, 3, 4), 100, 5 * 60_000):
            update = sim.step(ts)
            assert update.trades == []
            assert update.bids and update.price == update.bids[0][0]
            market.apply(update)
        body = json.loads(market.products[product.code].body or b"")
        assert body["BS"] == [] and body["TotalVol"] == 0 and body["lastSize"] == 0
        bars = [json.loads(b) for b in market.products[product.code].series["1m"].newest(50)[0]]
        assert bars and all(row[6] == 0 for row in bars)


LIMITED = [p for p in PRODUCTS if p.limit_pct > 0]


def test_the_limited_products_are_the_domestic_futures() -> None:
    assert LIMITED
    assert {p.category for p in LIMITED} == {"3"}
    assert all({"LimitUp", "LimitDown"} <= set(p.info) for p in LIMITED)


def _limit_breaches(product: Product, seed: int, days: int) -> list[tuple[str, float, float,
                                                                           float]]:
    sim = sim_for(product, seed)
    quote = QuoteState(product, TZ)
    breaches = []
    start = at(2024, 3, 4)
    for ts in event_times(sim.hours, start, 10**9, 5 * 60_000, seed=seed):
        if ts >= start + days * DAY_MS:
            break
        update = sim.step(ts)
        quote.apply(update)
        bounds = quote.limits()
        assert bounds is not None
        low, high = bounds
        if not low <= update.price <= high:
            breaches.append((TZ.format(ts), update.price, low, high))
    return breaches


@pytest.mark.parametrize("product", LIMITED, ids=lambda p: p.code)
def test_domestic_futures_stay_within_the_limit_band(product: Product) -> None:
    assert _limit_breaches(product, 1, 30) == []


def test_limit_band_binds_under_stress() -> None:
    """At 60% daily volatility the band is hit constantly, and still holds, for most."""
    stressed = msgspec.structs.replace(CATALOGUE.products["nf_AU0"], volatility=0.6)
    assert _limit_breaches(stressed, 7, 30) == []


def test_limit_band_holds_for_every_limited_product_under_stress() -> None:
    breaches = {}
    for product in LIMITED:
        stressed = msgspec.structs.replace(product, volatility=0.6)
        found = _limit_breaches(stressed, 3, 30)
        if found:
            breaches[product.code] = found
    assert breaches == {}


# ---- history: full windows --------------------------------------------------------------

WEEKDAY_NOW = at(2024, 3, 6, 14, 23, 17)  # a Wednesday afternoon: every product trading
SATURDAY_NOW = at(2024, 3, 9, 12, 0, 0)  # Saturday noon: forex and futures closed

def _history_market(code: str, now: int, seed: int = 1) -> tuple[Market, TradingHours,
                                                                 list[Update]]:
    product = CATALOGUE.products[code]
    hours = TradingHours(product.hours, TZ)
    starts = window_starts(hours, TZ, now)
    updates = history_updates(sim_for(product, seed), TZ, now, 5.0, starts)
    market = Market([product], TZ)
    market.set_since(code, starts)
    for update in updates[:-1]:
        market.apply(update, encode=False)
    market.apply(updates[-1])
    market.advance(now)
    return market, hours, updates


def _bars(market: Market, code: str, interval: str) -> list[list[Any]]:
    blobs, complete = market.products[code].series[interval].newest(WINDOW[interval])
    assert complete
    return [json.loads(blob) for blob in blobs]


@pytest.mark.parametrize(("code", "now"), [
    ("btcusdt", WEEKDAY_NOW),
    ("fx_seurusd", WEEKDAY_NOW),
    ("nf_AU0", WEEKDAY_NOW),
    ("btcusdt", SATURDAY_NOW),
    pytest.param("fx_seurusd", SATURDAY_NOW),
    pytest.param("nf_AU0", SATURDAY_NOW),
])
def test_history_fills_full_windows_inside_trading_hours(code: str, now: int) -> None:
    market, hours, updates = _history_market(code, now)
    assert all(u.ts < now for u in updates)
    assert all(hours.is_open(u.ts) for u in updates), [
        TZ.format(u.ts) for u in updates if not hours.is_open(u.ts)]
    for name in INTERVALS:
        interval = Interval(name, TZ)
        rows = _bars(market, code, name)
        assert len(rows) == WINDOW[name], name
        opens: list[int] = [row[0] for row in rows]
        assert opens == sorted(opens, reverse=True), name  # newest first
        for newer, older in itertools.pairwise(opens):
            # no hole: nothing inside trading hours between two neighbouring bars
            assert not hours.overlaps(interval.following(older), newer), (
                name, TZ.format(older), TZ.format(newer))
        for start in opens:
            assert interval.floor(start) == start
            assert hours.overlaps(start, interval.following(start)), (name, TZ.format(start))


@pytest.mark.parametrize(("code", "now"), [
    ("btcusdt", WEEKDAY_NOW), ("fx_seurusd", WEEKDAY_NOW), ("nf_AU0", WEEKDAY_NOW),
    ("HX_HSI", WEEKDAY_NOW), ("btcusdt", SATURDAY_NOW), ("nf_AU0", at(2024, 3, 7, 22)),
])
def test_history_day_bars_agree_with_hour_bars_and_the_quote(code: str, now: int) -> None:
    market, _, _ = _history_market(code, now)
    day_rows = _bars(market, code, "1d")
    days = {row[0]: row for row in day_rows}
    hour_rows = _bars(market, code, "1h")
    for row in hour_rows:
        day = days[TZ.day_span(row[0])[0]]
        assert row[2] <= day[2], (row, day)  # high
        assert row[3] >= day[3], (row, day)  # low
        assert row[6] <= day[6] + 1e-9, (row, day)  # volume
    quote = json.loads(market.products[code].body or b"")
    last_1m, last_1h, last_1d = _bars(market, code, "1m")[0], hour_rows[0], day_rows[0]
    assert last_1m[4] == last_1h[4] == last_1d[4] == quote["Price"]
    assert last_1d[0] == TZ.day_span(now)[0]  # today's bar
    assert (last_1d[1], last_1d[2], last_1d[3]) == (quote["Open"], quote["High"], quote["Low"])
    for name in INTERVALS:
        for row in _bars(market, code, name):
            assert row[3] <= min(row[1], row[4]) and row[2] >= max(row[1], row[4]), (name, row)
            assert isinstance(row[5], str) and row[5] == TZ.format(row[0])


def test_window_starts_count_back_over_trading_hours_only() -> None:
    product = CATALOGUE.products["nf_AU0"]
    hours = TradingHours(product.hours, TZ)
    starts = window_starts(hours, TZ, WEEKDAY_NOW)
    always = window_starts(TradingHours("24/7", TZ), TZ, WEEKDAY_NOW)
    assert always["1m"] == Interval("1m", TZ).floor(WEEKDAY_NOW) - 599 * 60_000
    assert always["1d"] == Interval("1d", TZ).floor(WEEKDAY_NOW) - 299 * DAY_MS
    assert always["1M"] == at(2015, 12, 1)  # 99 months before March 2024
    for name in INTERVALS:
        assert starts[name] <= always[name]
        assert hours.overlaps(starts[name], Interval(name, TZ).following(starts[name]))

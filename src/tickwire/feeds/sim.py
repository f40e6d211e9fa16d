"""The simulator: realistic, deterministic markets for every product of the catalogue.

Prices follow a mean-reverting random walk in log space at each product's daily volatility;
the book is consistent (best bid < best ask, spread >= one tick, levels a few ticks apart);
trades happen at the touch with a direction; domestic futures stay inside their daily limits;
updates come only inside trading hours. For a seed, the same event times give the same
updates. At every start the simulator fills the history the store lacks (everything on a
first start, a product added since, what a start cut short left out), so that every K-line
interval serves its full window at once: the same walk, drawn as one candle per piece of the
past (see `tickwire.feeds.history`), and the live updates go on from where it ends. The time
the server was down stays a gap: no bars are made up for it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import sys
import time
from array import array
from collections.abc import Callable, Iterable
from statistics import NormalDist

from tickwire.feeds.base import FeedState, HistorySink, Sink
from tickwire.feeds.history import History, HistoryPlan
from tickwire.market.bars import CLOSE, BarRow
from tickwire.market.clock import DAY_MS, TimeZone, now_ms
from tickwire.market.hours import TradingHours
from tickwire.market.quotes import DayStats
from tickwire.models import BUY, RECENT_TRADES, SELL, Product, Update

log = logging.getLogger("tickwire.feeds.sim")

REVERSION_PER_DAY = 0.002
"""Pull of the price back towards the catalogue's, per day (keeps years of history sane)."""

_MEAN_TRADE = math.exp(0.32)
"""The mean of the live trade sizes' lognormal factor (`lognormvariate(0, 0.8)`)."""

_QUANTILES = 4096
"""Random draws for history candles come from tables of this many equally likely values."""
_NORMAL = [NormalDist().inv_cdf((i + 0.5) / _QUANTILES) for i in range(_QUANTILES)]
_EXPONENTIAL = [-math.log((i + 0.5) / _QUANTILES) for i in range(_QUANTILES)]
_VOLUME_NOISE = [math.exp(0.5 * z - 0.125) for z in _NORMAL]
"""Lognormal with mean 1: how a piece's volume varies around its expected one."""


def _draws(rng: random.Random, table: list[float], count: int) -> list[float]:
    """`count` values drawn from `table` (the same on every platform for a seed)."""
    raw = array("H", rng.randbytes(2 * count))
    if sys.byteorder == "big":
        raw.byteswap()
    mask = _QUANTILES - 1
    return [table[i & mask] for i in raw]


class ProductSim:
    """One product's simulated market.

    The book is kept between updates: each update re-anchors it at the new touch and redraws
    a couple of level sizes, as a real book mostly changes near the top.
    """

    def __init__(self, product: Product, hours: TradingHours, tz: TimeZone, seed: int,
                 resume: tuple[float, float] | None = None) -> None:
        self.product = product
        self.hours = hours
        self._tz = tz
        self._rng = random.Random(f"{seed}:{product.code}")
        self._tick = 10.0 ** -product.precision
        self._unit = 10.0 ** -product.volume_precision
        self._anchor = math.log(product.price)
        self._log_price = math.log(resume[0] if resume else product.price)
        self._last_ts: int | None = None
        self._day_span = (0, 0)
        # the previous day's last published price, as the quote's LastClose (None: unknown)
        self._day_close: float | None = resume[1] if resume else None
        self._last_price: float | None = resume[0] if resume else None
        self._prices: dict[int, float] = {}
        levels = max(product.depth, 1)
        self._gaps = ([self._rng.randint(1, 3) for _ in range(levels)],
                      [self._rng.randint(1, 3) for _ in range(levels)])
        self._sizes = ([self._size() for _ in range(levels)],
                       [self._size() for _ in range(levels)])
        self.next_ts = 0

    def _size(self) -> float:
        lot = self.product.lot or 1.0
        return round(lot * self._rng.lognormvariate(0.5, 0.9), self.product.volume_precision) \
            or self._unit

    def _price(self, ticks: int) -> float:
        price = self._prices.get(ticks)
        if price is None:
            if len(self._prices) > 4096:
                self._prices.clear()
            price = self._prices[ticks] = round(ticks * self._tick, self.product.precision)
        return price

    def _walk(self, ts: int) -> float:
        dt_days = 0.0 if self._last_ts is None else max(ts - self._last_ts, 0) / DAY_MS
        self._last_ts = ts
        x = self._log_price
        x += self.product.volatility * math.sqrt(dt_days) * self._rng.gauss(0.0, 1.0)
        x -= REVERSION_PER_DAY * dt_days * (x - self._anchor)
        self._log_price = x
        return math.exp(x)

    def _band(self, ts: int) -> tuple[int, int] | None:
        """Today's limit band in ticks, computed as the quote computes LimitDown/LimitUp."""
        if not self._day_span[0] <= ts < self._day_span[1]:
            if self._day_span[1] and self._last_price is not None:
                self._day_close = self._last_price
            self._day_span = self._tz.day_span(ts)
        if not self.product.limit_pct or self._day_close is None:
            return None
        return self._limit_band(self._day_close)

    def _limit_band(self, close: float) -> tuple[int, int] | None:
        """The limit band in ticks for a day after one that closed at `close`, as the quote
        computes LimitDown/LimitUp (None when too narrow to trade in)."""
        pct, dec = self.product.limit_pct, self.product.precision
        low = round(round(close * (1 - pct), dec) / self._tick)
        high = round(round(close * (1 + pct), dec) / self._tick)
        return (low, high) if high - low >= 4 else None

    def _book(self, bid: int, ask: int) -> tuple[list[tuple[float, float]],
                                                 list[tuple[float, float]]]:
        rng = self._rng
        for side in (0, 1):
            self._sizes[side][rng.randrange(len(self._sizes[side]))] = self._size()
            if rng.random() < 0.2:
                self._gaps[side][rng.randrange(len(self._gaps[side]))] = rng.randint(1, 3)
        sides = []
        for side, touch, sign in ((0, bid, -1), (1, ask, 1)):
            ticks, levels = touch, []
            for gap, size in zip(self._gaps[side], self._sizes[side], strict=True):
                levels.append((self._price(ticks), size))
                ticks += sign * gap
            sides.append(levels)
        return sides[0], sides[1]

    def step(self, ts: int, size_scale: float = 1.0, book: bool = True) -> Update:
        """The next update at event time `ts`."""
        product, rng = self.product, self._rng
        band = self._band(ts) if product.limit_pct else None
        bid = max(round(self._walk(ts) / self._tick), 2)
        spread = 1 if rng.random() < 0.7 else 2
        if band is not None and not band[0] <= bid <= band[1] - spread:
            bid = min(max(bid, band[0]), band[1] - spread)
            self._log_price = math.log(bid * self._tick)
        ask = bid + spread
        bids, asks = self._book(bid, ask) if book else (None, None)
        price_ticks = bid
        trades: list[tuple[float, float, int]] = []
        if product.recent_trades:
            side = BUY if rng.random() < 0.5 else SELL
            price_ticks = ask if side == BUY else bid
            size = round(product.lot * size_scale * rng.lognormvariate(0.0, 0.8),
                         product.volume_precision) or self._unit
            trades.append((self._price(price_ticks), size, side))
        price = self._price(price_ticks)
        if self._day_close is None:
            self._day_close = price  # the first day: the quote takes its first price as well
        self._last_price = price
        return Update(product.code, ts, price, bids, asks, trades)

    def history(self, plan: HistoryPlan, rate: float) -> History:
        """The product's history up to `plan.now` (`rate`: live updates per second, for the
        volumes); the simulator then goes on from where the history ends."""
        candles = self._draw(plan, rate)
        bars = plan.roll_up(candles, self.product.volume_precision)
        days = bars["1d"]
        _, today_open, high, low, close, volume = days[-1]
        previous_close = days[-2][CLOSE] if len(days) > 1 else today_open
        _, first, last, _ = plan.pieces[-1]
        stats = DayStats(day=self._tz.day_span(last - 1)[0], ts=last - 1,
                         price=candles[-1][CLOSE], open=today_open, high=high, low=low,
                         last_close=previous_close, volume=volume,
                         amount=volume * (today_open + high + low + close) / 4)
        # go on from the last piece's close; a few updates at its end for the live quote
        times = [max(first, last - RECENT_TRADES + k) for k in range(RECENT_TRADES)]
        self._last_ts, self._last_price = times[0], stats.price
        self._day_span, self._day_close = self._tz.day_span(times[0]), previous_close
        return History(bars, stats, [self.step(ts) for ts in times])

    def _draw(self, plan: HistoryPlan, rate: float) -> list[BarRow]:
        """One candle per piece of `plan`, drawn from the walk of `_walk` (wall-clock time,
        closed hours included, so a piece after a break opens with a gap): the close a
        normal step from the open, the high and low the extremes of a Brownian bridge
        between them; prices on the tick, inside the daily limits; the volume of `rate`
        trades a second over the piece's trading time."""
        product, rng, count = self.product, self._rng, len(plan.pieces)
        sigma, sqrt = product.volatility, math.sqrt
        # Moves in log price, from each piece's open: with a step s*z from open to close,
        # the bridge's maximum is s * (z + sqrt(z*z + 2e)) / 2 above the open for an
        # exponential e, and its minimum likewise below.
        jumps = [sigma * gap * z for gap, z in zip(plan.gaps, _draws(rng, _NORMAL, count),
                                                   strict=True)]
        pulls = [REVERSION_PER_DAY * days for days in plan.days]
        moves = _draws(rng, _NORMAL, count)
        ups, downs = _draws(rng, _EXPONENTIAL, count), _draws(rng, _EXPONENTIAL, count)
        steps, tops, bottoms = [], [], []
        for span, z, up, down in zip(plan.spans, moves, ups, downs, strict=True):
            s = sigma * span
            steps.append(s * z)
            tops.append(s * (z + sqrt(z * z + 2 * up)) / 2)
            bottoms.append(s * (z - sqrt(z * z + 2 * down)) / 2)
        vscale = 10 ** product.volume_precision
        if product.recent_trades:
            per_second = product.lot * rate * _MEAN_TRADE * vscale
            volumes = [max(round(seconds * per_second * noise), 1) / vscale for seconds, noise
                       in zip(plan.seconds, _draws(rng, _VOLUME_NOISE, count), strict=True)]
        else:
            volumes = [0.0] * count
        scale, anchor, x, exp = 10 ** product.precision, self._anchor, self._log_price, math.exp
        limited = product.limit_pct > 0
        day: int | None = None
        band: tuple[int, int] | None = None
        close = 0
        candles: list[BarRow] = []
        for open_ms, jump, pull, step, top, bottom, volume, piece_day in zip(
                plan.opens, jumps, pulls, steps, tops, bottoms, volumes, plan.day_of,
                strict=True):
            x += jump
            x -= pull * (x - anchor)
            o_ticks = round(exp(x) * scale)
            h_ticks = round(exp(x + top) * scale)
            l_ticks = round(exp(x + bottom) * scale)
            x += step
            c_ticks = round(exp(x) * scale)
            if l_ticks < 1:
                o_ticks, h_ticks, l_ticks, c_ticks = \
                    max(o_ticks, 1), max(h_ticks, 1), 1, max(c_ticks, 1)
            if limited:
                if piece_day is None:  # a piece of many days: no one day's limits
                    day = None
                elif piece_day != day:  # a new day: limits around the last close
                    day = piece_day
                    band = self._limit_band((close or o_ticks) / scale)
                if day is not None and band is not None:
                    low, high = band
                    o_ticks = min(max(o_ticks, low), high)
                    h_ticks = min(max(h_ticks, low), high)
                    l_ticks = min(max(l_ticks, low), high)
                    if not low <= c_ticks <= high:
                        c_ticks = min(max(c_ticks, low), high)
                        x = math.log(c_ticks / scale)
            close = c_ticks
            candles.append((open_ms, o_ticks / scale, h_ticks / scale, l_ticks / scale,
                            c_ticks / scale, volume))
        self._log_price = x
        return candles


class SimFeed:
    """Runs a `ProductSim` per product at `rate` updates per product per second."""

    def __init__(self, products: Iterable[Product], hours: Callable[[str], TradingHours],
                 tz: TimeZone, seed: int = 1, rate: float = 5.0, history: bool = True,
                 tick_seconds: float = 0.05, name: str = "sim") -> None:
        self.name = name
        self._products = list(products)
        self.codes = [p.code for p in self._products]
        self._hours = hours
        self._tz = tz
        self._seed = seed
        self.rate = rate
        self._history = history
        self._tick = tick_seconds
        self.sims: list[ProductSim] = []
        self.updates = 0
        self.behind = 0
        self.state = FeedState.CONNECTING
        self.error: str | None = None
        self.progress: tuple[int, int] | None = None
        """(products done, all) while history is being filled."""

    def status(self) -> dict[str, object]:
        progress = {} if self.progress is None else \
            {"history": f"{self.progress[0]}/{self.progress[1]}"}
        return {"kind": "sim", "rate": self.rate, "products": len(self._products),
                "updates": self.updates, "behind": self.behind, **progress}

    def _sim(self, product: Product, history: HistorySink | None) -> ProductSim:
        """A product's simulator, going on from its stored quote when there is one."""
        resume = history.resume(product.code) if history else None
        return ProductSim(product, self._hours(product.code), self._tz, self._seed, resume)

    async def run(self, sink: Sink) -> None:
        self.state = FeedState.CONNECTING
        now = now_ms()
        history = sink.history
        self.sims = [self._sim(p, history) for p in self._products]
        sink.skip_to(now)  # the time the server (or this feed) was down stays a gap
        if self._history and history is not None:
            lacking = [i for i, sim in enumerate(self.sims)
                       if history.missing_history(sim.product.code)]
            if lacking:
                await self._backfill(sink, history, now, lacking)
        self.state = FeedState.LIVE
        await self._live(sink)

    async def _backfill(self, sink: Sink, history: HistorySink, now: int,
                        lacking: list[int]) -> None:
        """Fill what the store lacks: a product new to it gets its whole past (bars, the day's
        statistics, a few updates for the live quote); a product that lacks some intervals
        gets those, and goes on from its stored quote."""
        began = time.monotonic()
        total = len(lacking)
        log.info("filling history", extra={"products": total})
        plans: dict[str, HistoryPlan] = {}  # by trading hours: products share them
        self.progress = (0, total)
        for done, index in enumerate(lacking, 1):
            sim = self.sims[index]
            code = sim.product.code
            plan = plans.get(sim.hours.text)
            if plan is None:
                plan = plans[sim.hours.text] = HistoryPlan(sim.hours, self._tz, now)
            missing = history.missing_history(code)
            made = sim.history(plan, self.rate)
            if history.resume(code) is None:
                history.load_history(code, made.bars, made.stats)
                history.backfill(made.updates)
            else:
                history.load_history(code, {i: made.bars[i] for i in missing}, None)
                self.sims[index] = self._sim(sim.product, history)
            self.progress = (done, total)
            if done % 10 == 0 or done == total:
                log.info("history progress", extra={"done": done, "total": total})
            await asyncio.sleep(0)
        self.progress = None
        sink.advance(now)
        log.info("history filled", extra={"seconds": round(time.monotonic() - began, 2)})

    async def _live(self, sink: Sink) -> None:
        mean_gap_ms = 1000.0 / self.rate
        # Bound the work of one tick: a product that falls further behind skips ahead
        # instead of piling up a burst (what is skipped is counted in `behind`).
        most_per_tick = max(4, math.ceil(self.rate * self._tick * 4))
        start = now_ms()
        for sim in self.sims:
            sim.next_ts = start + int(sim._rng.expovariate(1.0) * mean_gap_ms)
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            next_tick = max(next_tick + self._tick, loop.time())
            await asyncio.sleep(next_tick - loop.time())
            now = now_ms()
            batch: list[Update] = []
            for sim in self.sims:
                made = 0
                while sim.next_ts <= now:
                    if made == most_per_tick:
                        self.behind += 1
                        sim.next_ts = now + 1
                        break
                    ts = sim.next_ts
                    if not sim.hours.is_open(ts):
                        ts = sim.hours.next_open(ts)
                        sim.next_ts = ts
                        if ts > now:
                            break
                    batch.append(sim.step(ts))
                    made += 1
                    sim.next_ts = ts + 1 + int(sim._rng.expovariate(1.0) * mean_gap_ms)
            self.updates += len(batch)
            if batch:
                sink.publish(batch)
            sink.advance(now)

"""The simulator: realistic, deterministic markets for every product of the catalogue.

Prices follow a mean-reverting random walk in log space at each product's daily volatility;
the book is consistent (best bid < best ask, spread >= one tick, levels a few ticks apart);
trades happen at the touch with a direction; domestic futures stay inside their daily limits;
updates come only inside trading hours. For a seed, the same event times give the same
updates. On first start with an empty store the simulator fills history, so that every
K-line interval serves its full window at once.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import random
import time
from collections.abc import Callable, Iterable

from tickwire.feeds.base import Sink
from tickwire.market.bars import Interval
from tickwire.market.clock import DAY_MS, TimeZone, now_ms
from tickwire.market.hours import TradingHours
from tickwire.models import BUY, INTERVALS, SELL, WINDOW, Product, Update

log = logging.getLogger("tickwire.feeds.sim")

REVERSION_PER_DAY = 0.002
"""Pull of the price back towards the catalogue's, per day (keeps years of history sane)."""

HISTORY_SPACING_MS = {
    "1m": 20_000, "5m": 75_000, "15m": 225_000, "30m": 450_000, "1h": 900_000,
    "1d": 4 * 3_600_000, "1M": 2 * DAY_MS,
}
"""Time between back-filled updates in each interval's window (finer intervals win)."""


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
        pct, close, dec = self.product.limit_pct, self._day_close, self.product.precision
        if not pct or close is None:
            return None
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
        if product.trades:
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


def window_starts(hours: TradingHours, tz: TimeZone, now: int) -> dict[str, int]:
    """Open time of the oldest bar of each interval's full window, counting back from now."""
    starts: dict[str, int] = {}
    for name in INTERVALS:
        interval = Interval(name, tz)
        start, found = interval.floor(now), 0
        while True:
            if hours.overlaps(start, interval.following(start)):
                found += 1
                if found == WINDOW[name]:
                    break
            start = interval.floor(start - 1)
        starts[name] = start
    return starts


def history_updates(sim: ProductSim, tz: TimeZone, now: int, rate: float,
                    starts: dict[str, int]) -> list[Update]:
    """Updates from the oldest window start up to `now`, denser towards the present."""
    regions = sorted(((starts[n], HISTORY_SPACING_MS[n]) for n in INTERVALS), reverse=True)
    boundaries = sorted(starts.values())
    rng = random.Random(f"history:{sim.product.code}")
    updates: list[Update] = []
    ts = boundaries[0]
    region = len(regions) - 1  # the first of `regions` that has begun (ts only grows)
    while True:
        ts = sim.hours.next_open(ts)
        if ts >= now:
            break
        while region and regions[region - 1][0] <= ts:
            region -= 1
        spacing = regions[region][1]
        updates.append(sim.step(ts, size_scale=max(spacing / 1000 * rate, 1.0), book=False))
        step_to = ts + int(spacing * rng.uniform(0.6, 1.4))
        # land exactly on each window's start, so its first bar is not skipped
        after = bisect.bisect_right(boundaries, ts)
        ts = boundaries[after] if after < len(boundaries) and boundaries[after] < step_to \
            else step_to
    if updates:
        # one more with a full book for the live quote, inside trading hours
        last_ts = now - 1 if sim.hours.is_open(now - 1) else updates[-1].ts
        updates.append(sim.step(last_ts))
    return updates


class SimFeed:
    """Runs a `ProductSim` per product at `rate` updates per product per second."""

    name = "sim"

    def __init__(self, products: Iterable[Product], hours: Callable[[str], TradingHours],
                 tz: TimeZone, seed: int = 1, rate: float = 5.0, history: bool = True,
                 tick_seconds: float = 0.05) -> None:
        self._products = list(products)
        self._hours = hours
        self._tz = tz
        self._seed = seed
        self.rate = rate
        self._history = history
        self._tick = tick_seconds
        self.sims: list[ProductSim] = []
        self.updates = 0
        self.behind = 0
        self.state = "starting"
        self.progress = (0, len(self._products))

    def status(self) -> dict[str, object]:
        done, total = self.progress
        return {"kind": self.name, "state": self.state, "rate": self.rate,
                "products": total, "updates": self.updates, "behind": self.behind,
                **({"history": f"{done}/{total}"} if self.state == "history" else {})}

    async def run(self, sink: Sink) -> None:
        now = now_ms()
        self.sims = [
            ProductSim(p, self._hours(p.code), self._tz, self._seed, sink.resume(p.code))
            for p in self._products
        ]
        if self._history and sink.needs_history():
            await self._backfill(sink, now)
        self.state = "live"
        await self._live(sink)

    async def _backfill(self, sink: Sink, now: int) -> None:
        self.state = "history"
        began = time.monotonic()
        total = len(self.sims)
        log.info("filling history", extra={"products": total})
        for done, sim in enumerate(self.sims, 1):
            starts = window_starts(sim.hours, self._tz, now)
            sink.set_since(sim.product.code, starts)
            sink.backfill(history_updates(sim, self._tz, now, self.rate, starts))
            self.progress = (done, total)
            if done % 10 == 0 or done == total:
                log.info("history progress", extra={"done": done, "total": total})
            await asyncio.sleep(0)
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

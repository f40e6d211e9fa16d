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
    """One product's simulated market."""

    def __init__(self, product: Product, hours: TradingHours, tz: TimeZone, seed: int,
                 start_price: float | None = None) -> None:
        self.product = product
        self.hours = hours
        self._tz = tz
        self._rng = random.Random(f"{seed}:{product.code}")
        self._tick = 10.0 ** -product.precision
        self._anchor = math.log(product.price)
        self._log_price = math.log(start_price or product.price)
        self._last_ts: int | None = None
        self._day_span = (0, 0)
        self._day_close = start_price or product.price
        self._last_trade_ticks = 0
        self.next_ts = 0

    def _walk(self, ts: int) -> float:
        dt_days = 0.0 if self._last_ts is None else max(ts - self._last_ts, 0) / DAY_MS
        self._last_ts = ts
        vol = self.product.volatility
        x = self._log_price
        x += vol * math.sqrt(dt_days) * self._rng.gauss(0.0, 1.0)
        x -= REVERSION_PER_DAY * dt_days * (x - self._anchor)
        price = math.exp(x)
        if self.product.limit_pct:
            price = self._within_limit(ts, price)
            x = math.log(price)
        self._log_price = x
        return price

    def _within_limit(self, ts: int, price: float) -> float:
        """Keep a limited product inside today's band around the previous close."""
        if not self._day_span[0] <= ts < self._day_span[1]:
            if self._day_span[1]:
                self._day_close = math.exp(self._log_price)
            self._day_span = self._tz.day_span(ts)
        bound = self.product.limit_pct * 0.98
        return min(max(price, self._day_close * (1 - bound)), self._day_close * (1 + bound))

    def _levels(self, touch: int, sign: int, count: int) -> list[tuple[float, float]]:
        rng, dec, vdec, lot = self._rng, self.product.precision, self.product.volume_precision, \
            self.product.lot or 1.0
        levels = []
        ticks = touch
        for _ in range(count):
            size = round(lot * rng.lognormvariate(0.5, 0.9), vdec) or 10.0 ** -vdec
            levels.append((round(ticks * self._tick, dec), size))
            ticks += sign * rng.randint(1, 3)
        return levels

    def step(self, ts: int, size_scale: float = 1.0, book: bool = True) -> Update:
        """The next update at event time `ts`."""
        product, rng = self.product, self._rng
        ticks = max(round(self._walk(ts) / self._tick), 2)
        spread = 1 if rng.random() < 0.7 else 2
        bid, ask = ticks, ticks + spread
        levels = max(product.depth, 1)
        bids = self._levels(bid, -1, levels) if book else None
        asks = self._levels(ask, +1, levels) if book else None
        dec = product.precision
        trades: list[tuple[float, float, int]] = []
        price_ticks = bid
        if product.trades:
            side = BUY if rng.random() < 0.5 else SELL
            price_ticks = ask if side == BUY else bid
            unit = 10.0 ** -product.volume_precision
            size = round(product.lot * size_scale * rng.lognormvariate(0.0, 0.8),
                         product.volume_precision) or unit
            trades.append((round(price_ticks * self._tick, dec), size, side))
        return Update(product.code, ts, round(price_ticks * self._tick, dec), bids, asks, trades)


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
    while True:
        ts = sim.hours.next_open(ts)
        if ts >= now:
            break
        spacing = next(space for begin, space in regions if begin <= ts)
        updates.append(sim.step(ts, size_scale=max(spacing / 1000 * rate, 1.0), book=False))
        step_to = ts + int(spacing * rng.uniform(0.6, 1.4))
        # land exactly on each window's start, so its first bar is not skipped
        ts = min([b for b in boundaries if ts < b < step_to] or [step_to])
    if updates:
        last = updates[-1]
        updates.append(sim.step(max(last.ts, now - 1)))  # a full book for the live quote
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
        self.state = "starting"
        self.progress = (0, len(self._products))

    def status(self) -> dict[str, object]:
        done, total = self.progress
        return {"kind": self.name, "state": self.state, "rate": self.rate,
                "products": total, "updates": self.updates,
                **({"history": f"{done}/{total}"} if self.state == "history" else {})}

    async def run(self, sink: Sink) -> None:
        now = now_ms()
        self.sims = [
            ProductSim(p, self._hours(p.code), self._tz, self._seed, sink.resume_price(p.code))
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
        start = now_ms()
        for sim in self.sims:
            sim.next_ts = start + int(sim._rng.expovariate(1.0) * mean_gap_ms)
        while True:
            await asyncio.sleep(self._tick)
            now = now_ms()
            batch: list[Update] = []
            for sim in self.sims:
                if now - sim.next_ts > 5_000:
                    sim.next_ts = now  # after a stall, resume rather than replay a burst
                while sim.next_ts <= now:
                    ts = sim.next_ts
                    if not sim.hours.is_open(ts):
                        ts = sim.hours.next_open(ts)
                        sim.next_ts = ts
                        if ts > now:
                            break
                    batch.append(sim.step(ts))
                    sim.next_ts = ts + 1 + int(sim._rng.expovariate(1.0) * mean_gap_ms)
            self.updates += len(batch)
            if batch:
                sink.publish(batch)
            sink.advance(now)

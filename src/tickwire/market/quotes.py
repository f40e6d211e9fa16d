"""The quote object of each product (PROTOCOL section 5), kept from updates.

Day statistics (open, high, low, volume, amount) reset at 00:00 of the service time zone;
`LastClose` is the last price of the previous trading day.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import msgspec

from tickwire.market.clock import TimeZone
from tickwire.models import Product, Update, num

RECENT_TRADES = 5
"""How many recent trades a quote's `BS` carries, newest first."""

_BUY_KEYS = [(f"BP{i}", f"BV{i}") for i in range(1, 11)]
_SELL_KEYS = [(f"SP{i}", f"SV{i}") for i in range(1, 11)]
_EMPTY: list[Any] = []


class QuoteBody(msgspec.Struct):
    """The protocol's `body`, fields in wire order."""

    StockCode: str
    Price: float | int
    Open: float | int
    LastClose: float | int
    High: float | int
    Low: float | int
    Time: str
    LastTime: str
    BP1: float | int
    BV1: float | int
    SP1: float | int
    SV1: float | int
    TotalVol: float | int
    Depth: dict[str, list[dict[str, float | int]]] | list[Any]
    BS: list[dict[str, str | float | int]]
    Info: dict[str, float | int] | list[Any]
    lastSize: float | int
    Diff: float | int
    DiffRate: float | int


class DayStats(msgspec.Struct):
    """What a quote remembers between updates; persisted so a restart resumes the day."""

    day: int = -1
    ts: int = 0
    price: float = 0.0
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    last_close: float = 0.0
    volume: float = 0.0
    amount: float = 0.0
    last_size: float = 0.0


_encode = msgspec.json.Encoder().encode


def _whole(value: float) -> float | int:
    """Integral floats as ints (`36500.0` -> `36500`), as the vendor writes whole numbers."""
    return value if value % 1 else int(value)


def _levels(levels: list[tuple[float, float]], count: int, dec: int, vdec: int
            ) -> list[tuple[float | int, float | int]]:
    out = []
    for price, volume in levels[:count]:
        price, volume = round(price, dec), round(volume, vdec)
        out.append((price if price % 1 else int(price), volume if volume % 1 else int(volume)))
    return out


class QuoteState:
    """One product's live quote."""

    def __init__(self, product: Product, tz: TimeZone) -> None:
        self.product = product
        self._tz = tz
        self._dec = product.precision
        self._vdec = product.volume_precision
        self.stats = DayStats()
        self._bids: list[tuple[float | int, float | int]] = []
        self._asks: list[tuple[float | int, float | int]] = []
        self._trades: deque[tuple[int, float, float, int]] = deque(maxlen=RECENT_TRADES)
        self._day_span = (0, 0)  # [start, end) of stats.day in Unix ms, to skip zone math
        self._levels = product.depth or 1

    @property
    def started(self) -> bool:
        return self.stats.day >= 0

    def restore(self, stats: DayStats) -> None:
        self.stats = stats

    def limits(self) -> tuple[float, float] | None:
        """Today's (LimitDown, LimitUp), for products with a daily price limit."""
        pct = self.product.limit_pct
        if not pct or not self.started:
            return None
        base = self.stats.last_close
        return round(base * (1 - pct), self._dec), round(base * (1 + pct), self._dec)

    def apply(self, update: Update) -> tuple[float, float]:
        """Fold an update in; returns (price, traded volume) for the K-line builders."""
        stats = self.stats
        price = round(update.price, self._dec)
        ts = update.ts
        if not self._day_span[0] <= ts < self._day_span[1]:
            self._day_span = self._tz.day_span(ts)
        day = self._day_span[0]
        if day != stats.day:
            if stats.day < 0:
                stats.last_close = price
            else:
                stats.last_close = stats.price
            stats.day = day
            stats.open = stats.high = stats.low = price
            stats.volume = stats.amount = 0.0
        if price > stats.high:
            stats.high = price
        if price < stats.low:
            stats.low = price
        stats.price = price
        stats.ts = update.ts
        dec, vdec, levels = self._dec, self._vdec, self._levels
        if update.bids is not None:
            self._bids = _levels(update.bids, levels, dec, vdec)
        if update.asks is not None:
            self._asks = _levels(update.asks, levels, dec, vdec)
        traded = 0.0
        if update.trades:
            for trade_price, size, side in update.trades:
                size = round(size, vdec)
                traded += size
                stats.amount += trade_price * size
                stats.last_size = size
                self._trades.appendleft((ts, round(trade_price, dec), size, side))
            stats.volume = round(stats.volume + traded, self._vdec)
        return price, traded

    def encode(self) -> bytes:
        """The quote object as JSON bytes, exactly as `body` goes on the wire.

        Every number is already rounded (in `apply`); integral ones are written as ints, as
        the vendor writes them.
        """
        stats, dec = self.stats, self._dec
        bids, asks = self._bids, self._asks
        bp1, bv1 = bids[0] if bids else (stats.price, 0.0)
        sp1, sv1 = asks[0] if asks else (stats.price, 0.0)
        depth: dict[str, list[dict[str, float]]] | list[Any] = _EMPTY
        if self.product.depth:
            depth = {
                "Buy": [{k: p, vk: v} for (k, vk), (p, v) in zip(_BUY_KEYS, bids, strict=False)],
                "Sell": [{k: p, vk: v} for (k, vk), (p, v) in zip(_SELL_KEYS, asks, strict=False)],
            }
        diff = round(stats.price - stats.open, dec)
        rate = round(diff / stats.open * 100, 2) if stats.open else 0.0
        hms = self._tz.format_hms
        return _encode(QuoteBody(
            StockCode=self.product.code,
            Price=_whole(stats.price),
            Open=_whole(stats.open),
            LastClose=_whole(stats.last_close),
            High=_whole(stats.high),
            Low=_whole(stats.low),
            Time=self._tz.format(stats.ts),
            LastTime=str(stats.ts // 1000),
            BP1=_whole(bp1),
            BV1=_whole(bv1),
            SP1=_whole(sp1),
            SV1=_whole(sv1),
            TotalVol=_whole(stats.volume),
            Depth=depth,
            BS=[{"time": hms(ts), "price": _whole(price), "size": _whole(size), "direction": side}
                for ts, price, size, side in self._trades] if self.product.trades else _EMPTY,
            Info=self._info() or _EMPTY,
            lastSize=_whole(stats.last_size),
            Diff=_whole(diff),
            DiffRate=_whole(rate),
        ))

    def _info(self) -> dict[str, float | int]:
        info: dict[str, float | int] = {}
        for key in self.product.info:
            if key == "TotalAmount":
                info[key] = num(self.stats.amount, 2)
            elif key in ("LimitUp", "LimitDown"):
                bounds = self.limits()
                if bounds:
                    info[key] = num(bounds[1] if key == "LimitUp" else bounds[0], self._dec)
        return info

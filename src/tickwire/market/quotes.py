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


class QuoteState:
    """One product's live quote."""

    def __init__(self, product: Product, tz: TimeZone) -> None:
        self.product = product
        self._tz = tz
        self._dec = product.precision
        self._vdec = product.volume_precision
        self.stats = DayStats()
        self._bids: list[tuple[float, float]] = []
        self._asks: list[tuple[float, float]] = []
        self._trades: deque[tuple[int, float, float, int]] = deque(maxlen=RECENT_TRADES)
        self._day_span = (0, 0)  # [start, end) of stats.day in Unix ms, to skip zone math

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
        if update.bids is not None:
            self._bids = update.bids
        if update.asks is not None:
            self._asks = update.asks
        traded = 0.0
        if update.trades:
            for trade_price, size, side in update.trades:
                traded += size
                stats.amount += trade_price * size
                stats.last_size = size
                self._trades.appendleft((ts, trade_price, size, side))
            stats.volume = round(stats.volume + traded, self._vdec)
        return price, traded

    def encode(self) -> bytes:
        """The quote object as JSON bytes, exactly as `body` goes on the wire."""
        stats, dec, vdec = self.stats, self._dec, self._vdec
        bids, asks = self._bids, self._asks
        bp1, bv1 = bids[0] if bids else (stats.price, 0.0)
        sp1, sv1 = asks[0] if asks else (stats.price, 0.0)
        depth: dict[str, list[dict[str, float | int]]] | list[Any] = _EMPTY
        levels = self.product.depth
        if levels:
            depth = {
                "Buy": [{k[0]: num(p, dec), k[1]: num(v, vdec)}
                        for k, (p, v) in zip(_BUY_KEYS, bids[:levels], strict=False)],
                "Sell": [{k[0]: num(p, dec), k[1]: num(v, vdec)}
                         for k, (p, v) in zip(_SELL_KEYS, asks[:levels], strict=False)],
            }
        diff = round(stats.price - stats.open, dec)
        rate = round(diff / stats.open * 100, 2) if stats.open else 0.0
        return _encode(QuoteBody(
            StockCode=self.product.code,
            Price=num(stats.price, dec),
            Open=num(stats.open, dec),
            LastClose=num(stats.last_close, dec),
            High=num(stats.high, dec),
            Low=num(stats.low, dec),
            Time=self._tz.format(stats.ts),
            LastTime=str(stats.ts // 1000),
            BP1=num(bp1, dec),
            BV1=num(bv1, vdec),
            SP1=num(sp1, dec),
            SV1=num(sv1, vdec),
            TotalVol=num(stats.volume, vdec),
            Depth=depth,
            BS=self._recent_trades() if self.product.trades else _EMPTY,
            Info=self._info() or _EMPTY,
            lastSize=num(stats.last_size, vdec),
            Diff=num(diff, dec),
            DiffRate=num(rate, 2),
        ))

    def _recent_trades(self) -> list[dict[str, str | float | int]]:
        tz, dec, vdec = self._tz, self._dec, self._vdec
        return [
            {"time": tz.format_hms(ts), "price": num(price, dec), "size": num(size, vdec),
             "direction": side}
            for ts, price, size, side in self._trades
        ]

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

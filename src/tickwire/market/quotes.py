"""The quote object of each product (PROTOCOL section 5), kept from updates.

Day statistics (open, high, low, volume, amount) reset at 00:00 of the service time zone;
`LastClose` is the last price of the previous trading day.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable
from typing import TypeVar

import msgspec

from tickwire.market.bars import volume_units
from tickwire.market.clock import TimeZone
from tickwire.models import Product, Update, Verbatim, num

_BUY_KEYS = [(f"BP{i}", f"BV{i}") for i in range(1, 11)]
_SELL_KEYS = [(f"SP{i}", f"SV{i}") for i in range(1, 11)]


_BODY = (
    b'{"StockCode":%s,"Price":%s,"Open":%s,"LastClose":%s,"High":%s,"Low":%s,"Time":"%s",'
    b'"LastTime":"%d","BP1":%s,"BV1":%s,"SP1":%s,"SV1":%s,"TotalVol":%s,"Depth":%s,"BS":%s,'
    b'"Info":%s,"lastSize":%s,"Diff":%s,"DiffRate":%s}'
)
"""The protocol's `body` (PROTOCOL section 5), keys in wire order, a `%s` for each value's
JSON text: the same bytes as encoding a dict of those keys, without building the dict."""

_TRADE = b'{"time":"%s","price":%s,"size":%s,"direction":%d}'
"""One entry of `BS`."""

_EMPTY = b"[]"
"""An empty PHP array, as the vendor writes an absent `Depth`, `BS` or `Info`."""


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
    bids: list[tuple[float, float]] = []
    asks: list[tuple[float, float]] = []
    trades: list[tuple[int, float, float, int]] = []
    """The book and recent trades (newest first); filled only in a saved copy (`saved()`)."""


_encode = msgspec.json.Encoder().encode


def _whole(value: float) -> float | int:
    """Integral floats as ints (`36500.0` -> `36500`), as the vendor writes whole numbers."""
    return value if value % 1 else int(value)


_REMEMBERED = 4096
"""Distinct raw numbers remembered per product and purpose (books repeat prices and sizes)."""

_T = TypeVar("_T")


class _Remembered(dict[float, _T]):
    """Raw number -> `make(number)`, worked out once per distinct number: at most
    `_REMEMBERED` entries, then it starts afresh."""

    __slots__ = ("_make",)

    def __init__(self, make: Callable[[float], _T]) -> None:
        super().__init__()
        self._make = make

    def __missing__(self, value: float) -> _T:
        result = self._make(value)
        if len(self) >= _REMEMBERED:
            self.clear()
        self[value] = result
        return result


def _wire_numbers(decimals: int) -> _Remembered[bytes]:
    """Raw number -> its JSON text on the wire: rounded to `decimals`, integral ones as ints."""
    return _Remembered(lambda value: _encode(num(value, decimals)))


def _rounded(decimals: int) -> _Remembered[float]:
    return _Remembered(lambda value: round(value, decimals))


def _sizes(decimals: int) -> _Remembered[tuple[float, int | None]]:
    """Raw trade size -> (the size rounded to `decimals`, the same in whole units of that
    precision or None, as `volume_units`)."""
    scale = float(10 ** decimals)

    def size_and_units(value: float) -> tuple[float, int | None]:
        rounded = round(value, decimals)
        return rounded, volume_units(rounded, scale)

    return _Remembered(size_and_units)


def _side_template(keys: list[tuple[str, str]], count: int) -> bytes:
    return b"[" + b",".join(b'{"%s":%%s,"%s":%%s}' % (k.encode(), vk.encode())
                            for k, vk in keys[:count]) + b"]"


@functools.cache
def _depth_template(buys: int, sells: int) -> bytes:
    """`Depth` with a `%s` for each number, for `buys` and `sells` levels."""
    return (b'{"Buy":' + _side_template(_BUY_KEYS, buys) + b',"Sell":'
            + _side_template(_SELL_KEYS, sells) + b"}")


_Top = tuple[bytes, bytes]
"""The best level of one side of the book: price and volume as they go on the wire."""


class QuoteState:
    """One product's live quote."""

    def __init__(self, product: Product, tz: TimeZone) -> None:
        self.product = product
        self._tz = tz
        self._dec = product.precision
        self._vdec = product.volume_precision
        self.stats = DayStats()
        # The book as the feed gave it; rounded for the wire only when a body is encoded
        # (`_book`, None until then), so back-fills and replays that do not encode skip it.
        self._bid_levels: list[tuple[float, float]] = []
        self._ask_levels: list[tuple[float, float]] = []
        self._book: tuple[_Top | None, _Top | None, bytes] | None = None
        self._kept = product.recent_trades
        self._trades: deque[tuple[int, float, float, int]] = deque(maxlen=self._kept)
        self._trades_json: deque[bytes] = deque(maxlen=self._kept)
        self._unencoded_trades = 0  # newest entries of `_trades` not yet in `_trades_json`
        self._rounded = _rounded(product.precision)
        self._sizes = _sizes(product.volume_precision)
        self._volume_scale = float(10 ** product.volume_precision)
        self._volume_units: int | None = None
        """Today's volume in whole units of the volume precision while it is one (see
        `volume_units`): adding units is exact and cheaper than rounding each sum."""
        self._prices = _wire_numbers(product.precision)
        self._volumes = _wire_numbers(product.volume_precision)
        self._day_start = self._day_end = 0  # [start, end) of stats.day in Unix ms
        self._levels = product.depth or 1
        self._limits_key: tuple[bool, float] | None = None
        self._code_json = _encode(product.code)
        self._rates = _wire_numbers(2)
        self._second = -1  # the second `_time` was formatted for
        self._time = b""
        self._limits: tuple[float | int, float | int] | None = None

    @property
    def started(self) -> bool:
        return self.stats.day >= 0

    def saved(self) -> DayStats:
        """The state to persist: the day's statistics with the book and recent trades, so a
        restart serves the whole quote before the feed's next update."""
        return msgspec.structs.replace(self.stats, bids=list(self._bid_levels),
                                       asks=list(self._ask_levels), trades=list(self._trades))

    def restore(self, saved: DayStats) -> None:
        self._bid_levels, self._ask_levels = saved.bids, saved.asks
        self._trades = deque(saved.trades, maxlen=self._kept)
        self._trades_json.clear()
        self._unencoded_trades = len(self._trades)
        self._book = None
        self.stats = msgspec.structs.replace(saved, bids=[], asks=[], trades=[])
        self._volume_units = volume_units(saved.volume, self._volume_scale)

    def limits(self) -> tuple[float, float] | None:
        """Today's (LimitDown, LimitUp), for products with a daily price limit."""
        pct = self.product.limit_pct
        if not pct or not self.started:
            return None
        base = self.stats.last_close
        return round(base * (1 - pct), self._dec), round(base * (1 + pct), self._dec)

    def apply(self, update: Update) -> tuple[float, float, int | None] | None:
        """Fold an update in; returns the price and the traded volume for the K-line
        builders, the volume also as whole units of the volume precision when it is one
        (`volume_units`; None when it is not, or nothing traded). An update without a price
        changes only the book and the recent trades, and returns None (no bar moves)."""
        if update.bids is not None:
            self._bid_levels = update.bids
            self._book = None
        if update.asks is not None:
            self._ask_levels = update.asks
            self._book = None
        if update.price is None:
            self._apply_unpriced_trades(update)
            return None
        stats = self.stats
        rounded = self._rounded
        price = rounded[update.price]
        ts = update.ts
        if not self._day_start <= ts < self._day_end:
            self._day_start, self._day_end = self._tz.day_span(ts)
        day = self._day_start
        if day != stats.day:
            if stats.day < 0:
                stats.last_close = price
            else:
                stats.last_close = stats.price
            stats.day = day
            stats.open = stats.high = stats.low = price
            stats.volume = stats.amount = 0.0
            self._volume_units = 0
        if price > stats.high:
            stats.high = price
        if price < stats.low:
            stats.low = price
        stats.price = price
        stats.ts = ts
        if not update.trades:
            return price, 0.0, None
        traded = 0.0
        units: int | None = 0
        sizes = self._sizes
        for trade_price, raw_size, side in update.trades:
            size, size_units = sizes[raw_size]
            traded += size
            units = None if units is None or size_units is None else units + size_units
            stats.amount += trade_price * size
            stats.last_size = size
            self._trades.appendleft((ts, rounded[trade_price], size, side))
        self._unencoded_trades += len(update.trades)
        if not traded:
            return price, 0.0, None
        total = self._volume_units
        if units is None or total is None:
            stats.volume = round(stats.volume + traded, self._vdec)
            self._volume_units = None
        else:
            self._volume_units = total = total + units
            stats.volume = total / self._volume_scale
        return price, traded, units

    def adopt(self, verbatim: Verbatim) -> None:
        """Take the day's statistics as the source's quote states them (after `apply` of
        the same update): a relayed or replayed quote is the source's, not one worked out
        from the part of the day seen here."""
        stats = self.stats
        stats.open, stats.high, stats.low = verbatim.open, verbatim.high, verbatim.low
        stats.last_close, stats.last_size = verbatim.last_close, verbatim.last_size
        stats.volume = verbatim.volume
        self._volume_units = volume_units(verbatim.volume, self._volume_scale)

    def _apply_unpriced_trades(self, update: Update) -> None:
        """Trades of an update without a price: shown in `BS` (with `lastSize`), not counted
        in the day's volume, which the K-lines must agree with."""
        rounded, sizes = self._rounded, self._sizes
        for trade_price, raw_size, side in update.trades:
            size = sizes[raw_size][0]
            self.stats.last_size = size
            self._trades.appendleft((update.ts, rounded[trade_price], size, side))
        self._unencoded_trades += len(update.trades)

    def encode(self) -> bytes:
        """The quote object as JSON bytes, exactly as `body` goes on the wire.

        Every number is rounded to the product's precision; integral ones are written as
        ints, as the vendor writes them. Numbers come from per-product caches of their wire
        text (prices and sizes repeat), dropped into a template of the keys.
        """
        stats, prices, volumes = self.stats, self._prices, self._volumes
        if self._book is None:
            self._book = self._encode_book()
        best_bid, best_ask, depth_json = self._book
        price = prices[stats.price]
        bp1, bv1 = best_bid if best_bid is not None else (price, b"0")
        sp1, sv1 = best_ask if best_ask is not None else (price, b"0")
        second = stats.ts // 1000
        if second != self._second:
            self._second, self._time = second, self._tz.format(stats.ts).encode()
        diff = self._rounded[stats.price - stats.open]
        info = self._info()
        return _BODY % (
            self._code_json, price, prices[stats.open], prices[stats.last_close],
            prices[stats.high], prices[stats.low], self._time, second, bp1, bv1, sp1, sv1,
            _encode(_whole(stats.volume)),
            depth_json if self.product.depth else _EMPTY,
            self._encode_trades() if self._kept else _EMPTY,
            _encode(info) if info else _EMPTY,
            volumes[stats.last_size], prices[diff],
            self._rates[diff / stats.open * 100] if stats.open else b"0",
        )

    def _encode_book(self) -> tuple[_Top | None, _Top | None, bytes]:
        """The best bid and ask (None for an empty side) and `Depth`, for the wire.

        `Depth` is the JSON text of each number dropped into a template of the keys: the
        same bytes as encoding `{"Buy":[{"BP1":p,"BV1":v},...],"Sell":[...]}`, without
        building those dicts.
        """
        prices, volumes, levels = self._prices, self._volumes, self._levels
        bids: list[bytes] = []
        for price, volume in self._bid_levels[:levels]:
            bids.append(prices[price])
            bids.append(volumes[volume])
        asks: list[bytes] = []
        for price, volume in self._ask_levels[:levels]:
            asks.append(prices[price])
            asks.append(volumes[volume])
        depth = _depth_template(len(bids) // 2, len(asks) // 2) % tuple(bids + asks) \
            if self.product.depth else b""
        return ((bids[0], bids[1]) if bids else None,
                (asks[0], asks[1]) if asks else None, depth)

    def _encode_trades(self) -> bytes:
        """`BS`, newest first; each trade is encoded once, when it is first shown."""
        fresh = min(self._unencoded_trades, self._kept)
        if fresh:
            hms, encoded = self._tz.format_hms, self._trades_json
            prices, volumes = self._prices, self._volumes
            for i in range(fresh - 1, -1, -1):
                ts, price, size, side = self._trades[i]
                encoded.appendleft(_TRADE % (hms(ts).encode(), prices[price], volumes[size],
                                             side))
            self._unencoded_trades = 0
        return b"[" + b",".join(self._trades_json) + b"]"

    def _info(self) -> dict[str, float | int]:
        info: dict[str, float | int] = {}
        for key in self.product.info:
            if key == "TotalAmount":
                info[key] = num(self.stats.amount, 2)
            elif key in ("LimitUp", "LimitDown"):
                bounds = self._wire_limits()
                if bounds:
                    info[key] = bounds[1] if key == "LimitUp" else bounds[0]
        return info

    def _wire_limits(self) -> tuple[float | int, float | int] | None:
        """`limits()` in wire form, worked out again only when the previous close changes."""
        key = (self.started, self.stats.last_close)
        if self._limits_key != key:
            bounds = self.limits()
            self._limits = None if bounds is None else \
                (num(bounds[0], self._dec), num(bounds[1], self._dec))
            self._limits_key = key
        return self._limits

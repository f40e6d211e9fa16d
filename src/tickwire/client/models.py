"""The SDK's typed, immutable views of the wire: quotes, K-line bars, symbols.

Decoding is one msgspec pass per message. The parts of a quote most readers never touch
(the book, the trades, `Info`, the raw dict) are kept as the bytes received and decoded on
first access, which is what lets one core decode hundreds of thousands of pushes a second.
Vendor quirks are tolerated: `Depth`/`Info` as `[]`, `LastTime` as string or number,
numbers sent as strings, a zero bid or ask.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

import msgspec

from tickwire.models import Category

__all__ = ["Bar", "Bars", "Category", "Level", "Quote", "Symbol", "SymbolPage", "Trade"]

_F = msgspec.field
_EMPTY = msgspec.Raw(b"[]")
_decode_any = msgspec.json.Decoder().decode
Side = Literal["buy", "sell", ""]


class Level(msgspec.Struct, frozen=True, array_like=True):
    """One price level of the book."""

    price: float
    volume: float


class Trade(msgspec.Struct, frozen=True):
    """One recent trade (`BS[]`); `side` is "buy" (direction 2), "sell" (1) or "" (unknown)."""

    time: str
    price: float
    size: float
    side: Side


class _WireTrade(msgspec.Struct):
    time: str = ""
    price: float = 0.0
    size: float = 0.0
    direction: int = 0


_SIDES: dict[int, Side] = {1: "sell", 2: "buy"}
_trades_decoder = msgspec.json.Decoder(list[_WireTrade] | dict[str, Any], strict=False)
_depth_decoder = msgspec.json.Decoder(dict[str, list[dict[str, float]]] | list[Any],
                                     strict=False)
_info_decoder = msgspec.json.Decoder(dict[str, Any] | list[Any], strict=False)


class Quote(msgspec.Struct, frozen=True, dict=True):
    """A quote object (`body`): the latest price, top of book, day statistics.

    `bids`/`asks` (best first), `trades` and `info` are decoded on first access; `raw` is the
    body as received, as a dict, and `raw_json` its bytes. Encoding a Quote with msgspec
    gives the wire's keys back (`LastTime` as a number).
    """

    code: str = _F(name="StockCode")
    price: float = _F(name="Price", default=0.0)
    open: float = _F(name="Open", default=0.0)
    last_close: float = _F(name="LastClose", default=0.0)
    high: float = _F(name="High", default=0.0)
    low: float = _F(name="Low", default=0.0)
    time: str = _F(name="Time", default="")
    """`YYYY-MM-DD HH:MM:SS` in the service time zone."""
    last_time: int = _F(name="LastTime", default=0)
    """The same instant as Unix seconds (the wire sends it as a string or a number)."""
    bid: float = _F(name="BP1", default=0.0)
    bid_volume: float = _F(name="BV1", default=0.0)
    ask: float = _F(name="SP1", default=0.0)
    ask_volume: float = _F(name="SV1", default=0.0)
    volume: float = _F(name="TotalVol", default=0.0)
    _depth: msgspec.Raw = _F(name="Depth", default=_EMPTY)
    _bs: msgspec.Raw = _F(name="BS", default=_EMPTY)
    _info: msgspec.Raw = _F(name="Info", default=_EMPTY)
    last_size: float = _F(name="lastSize", default=0.0)
    change: float = _F(name="Diff", default=0.0)
    change_pct: float = _F(name="DiffRate", default=0.0)

    def __repr__(self) -> str:
        return (f"Quote(code={self.code!r}, price={self.price!r}, bid={self.bid!r}, "
                f"ask={self.ask!r}, change_pct={self.change_pct!r}, time={self.time!r})")

    @property
    def bids(self) -> tuple[Level, ...]:
        """Buy levels, best first (empty for a product without a book)."""
        return self._book[0]

    @property
    def asks(self) -> tuple[Level, ...]:
        """Sell levels, best first."""
        return self._book[1]

    @functools.cached_property
    def _book(self) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        return _book(self._depth)

    @functools.cached_property
    def trades(self) -> tuple[Trade, ...]:
        try:
            wire = _trades_decoder.decode(self._bs)
        except msgspec.DecodeError:
            return ()
        if isinstance(wire, dict):
            return ()
        return tuple(Trade(t.time, t.price, t.size, _SIDES.get(t.direction, ""))
                     for t in wire)

    @functools.cached_property
    def info(self) -> Mapping[str, Any]:
        """`TotalAmount`, `LimitUp`, ... where they apply; empty for the wire's `[]`."""
        try:
            value = _info_decoder.decode(self._info)
        except msgspec.DecodeError:
            value = None
        return MappingProxyType(value if isinstance(value, dict) else {})

    @property
    def mid(self) -> float | None:
        """Mid price, or None while one side of the book is empty (a zero bid or ask)."""
        return (self.bid + self.ask) / 2 if self.bid > 0 and self.ask > 0 else None

    @property
    def spread(self) -> float | None:
        return self.ask - self.bid if self.bid > 0 and self.ask > 0 else None

    @property
    def timestamp(self) -> datetime | None:
        """`last_time` as an aware UTC datetime (None when the wire did not say)."""
        return datetime.fromtimestamp(self.last_time, UTC) if self.last_time > 0 else None

    @functools.cached_property
    def raw_json(self) -> bytes:
        """The body's JSON exactly as received (re-encoded for a Quote built in code)."""
        source = self.__dict__.get("_source")
        if source is None:
            return msgspec.json.encode(self)
        data, wrapped = source
        return bytes(_push_body.decode(data).body) if wrapped else bytes(data)

    @functools.cached_property
    def raw(self) -> dict[str, Any]:
        """The body as a plain dict, every key the server sent included."""
        value: dict[str, Any] = _decode_any(self.raw_json)
        return value


def _book(depth: msgspec.Raw) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
    """`{"Buy":[{"BP1":p,"BV1":v},...],"Sell":[...]}` -> (bids, asks); `[]` -> no levels."""
    try:
        book = _depth_decoder.decode(depth)
    except msgspec.ValidationError:  # a null or a word among the numbers: the slow way
        return _odd_book(depth)
    except msgspec.DecodeError:
        return (), ()
    if not isinstance(book, dict):
        return (), ()
    return _levels(book.get("Buy")), _levels(book.get("Sell"))


def _levels(side: list[dict[str, float]] | None) -> tuple[Level, ...]:
    """Levels in the order sent. The usual level is `{"BP1":p,"BV1":v}`, price first, taken
    as it comes; any other shape is read key by key (`BP`/`SP` price, `BV`/`SV` volume)."""
    if not side:
        return ()
    first = side[0]
    if len(first) == 2 and next(iter(first))[1:2] == "P" and all(len(x) == 2 for x in side):
        return tuple(Level(*level.values()) for level in side)
    levels = []
    for entry in side:
        price = volume = 0.0
        for key, value in entry.items():
            if key[1:2] == "P":
                price = value
            elif key[1:2] == "V":
                volume = value
        levels.append(Level(price, volume))
    return tuple(levels)


def _odd_book(depth: msgspec.Raw) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
    book = _decode_any(depth)
    sides: list[tuple[Level, ...]] = []
    for name in ("Buy", "Sell"):
        side = book.get(name) if isinstance(book, dict) else None
        entries = [e for e in side if isinstance(e, dict)] if isinstance(side, list) else []
        sides.append(_levels([{k: _number(v) for k, v in e.items()} for e in entries]))
    return sides[0], sides[1]


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def _remember(quote: Quote, data: bytes | str | msgspec.Raw, wrapped: bool) -> Quote:
    """Keep the received bytes so `raw`/`raw_json` can be produced on demand, not per message.

    Written straight into the instance dict: that bypasses `frozen` without a copy.
    """
    quote.__dict__["_source"] = (data, wrapped)
    return quote


class _Push(msgspec.Struct):
    """Any WebSocket message: a push (`body`), an error (`code`/`msg`) or a `pong`."""

    body: Quote | None = None
    code: int = 0
    msg: str = ""
    pong: Any = None


class _PushBody(msgspec.Struct):
    body: msgspec.Raw = _EMPTY


_push_decoder = msgspec.json.Decoder(_Push, strict=False)
_push_body = msgspec.json.Decoder(_PushBody)
_quote_decoder = msgspec.json.Decoder(Quote, strict=False)


def decode_message(data: bytes | str) -> _Push:
    """Decode one WebSocket message; its quote, if any, keeps the message for `raw`."""
    message = _push_decoder.decode(data)
    if message.body is not None:
        _remember(message.body, data, True)
    return message


def decode_quote(body: bytes | str | msgspec.Raw) -> Quote:
    """Decode one quote object (a `body`) on its own."""
    return _remember(_quote_decoder.decode(body), body, False)


class Bar(msgspec.Struct, frozen=True, array_like=True):
    """One K-line as the wire sends it: `[open_ms, open, high, low, close, time, volume]`."""

    open_ms: int
    open: float
    high: float
    low: float
    close: float
    time: str
    """The bar's open time, `YYYY-MM-DD HH:MM:SS` in the service time zone."""
    volume: float = 0.0

    @property
    def opened(self) -> datetime:
        """The open time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.open_ms / 1000, UTC)


_COLUMNS = ("open_ms", "open", "high", "low", "close", "volume")


class Bars(tuple[Bar, ...]):
    """K-line bars, oldest first whatever order the server sent them in."""

    __slots__ = ()

    def to_pandas(self) -> Any:
        """A `pandas.DataFrame` indexed by UTC open time; needs the `pandas` extra.

        Typed `Any` so that type-checking the SDK never needs pandas' stubs.
        """
        try:
            import pandas as pd  # type: ignore[import-untyped, import-not-found, unused-ignore]
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError(
                "to_pandas() needs pandas: pip install 'tickwire[pandas]'") from None
        frame = pd.DataFrame.from_records(
            [(b.open_ms, b.open, b.high, b.low, b.close, b.volume) for b in self],
            columns=list(_COLUMNS))
        frame.index = pd.to_datetime(frame["open_ms"], unit="ms", utc=True)
        frame.index.name = "time"
        return frame


_bars_decoder = msgspec.json.Decoder(list[Bar], strict=False)


def decode_bars(data: bytes) -> Bars:
    """A `redis.php` answer, sorted oldest first (servers may send either order)."""
    bars = _bars_decoder.decode(data)
    bars.sort(key=lambda b: b.open_ms)
    return Bars(bars)


class Symbol(msgspec.Struct, frozen=True):
    """One product of a category's symbol list."""

    code: str
    name: str = ""


class SymbolPage(msgspec.Struct, frozen=True):
    """One page of `getSymbolList.php`: `total` products in the category, `symbols` here."""

    total: int
    symbols: list[Symbol]
    page: int = 1
    page_size: int = 10

    def __iter__(self) -> Iterator[Symbol]:
        return iter(self.symbols)

    def __len__(self) -> int:
        return len(self.symbols)

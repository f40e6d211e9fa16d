"""Domain and wire models shared by the server, the feeds and the SDK."""

from __future__ import annotations

import msgspec

INTERVALS: tuple[str, ...] = ("1m", "5m", "15m", "30m", "1h", "1d", "1M")
"""K-line intervals of the protocol, finest first (`1m` minute, `1M` month)."""

WINDOW: dict[str, int] = {
    "1m": 600, "5m": 300, "15m": 300, "30m": 300, "1h": 300, "1d": 300, "1M": 100,
}
"""The most bars `redis.php` serves per request for each interval."""

SELL = 1
BUY = 2
"""Trade directions as the protocol writes them (`BS[].direction`)."""


class Category(msgspec.Struct, frozen=True):
    id: str
    name: str


class Product(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One tradable product of the catalogue."""

    code: str
    name: str
    category: str
    precision: int
    depth: int = 0
    volume: bool = True
    trades: bool = True
    hours: str = "24/7"
    info: list[str] = []
    # simulator parameters
    price: float = 100.0
    volatility: float = 0.01
    lot: float = 1.0
    volume_precision: int = 2
    limit_pct: float = 0.0


class Update(msgspec.Struct, array_like=True):
    """A normalized market event from a feed, at its own event time.

    `price` is the last price; None for an update that carries only a book or trades, which
    leaves the price, the day's statistics and the K-lines as they are. `bids`/`asks` are
    the top of the book, best first, as (price, volume); None keeps the previous book.
    `trades` are (price, size, direction) that happened at `ts`.
    """

    code: str
    ts: int
    price: float | None
    bids: list[tuple[float, float]] | None = None
    asks: list[tuple[float, float]] | None = None
    trades: list[tuple[float, float, int]] = []


def num(value: float, decimals: int) -> float | int:
    """Round to `decimals` places; an integral result is an int, as the vendor writes it."""
    rounded = round(value, decimals)
    return rounded if rounded % 1 else int(rounded)

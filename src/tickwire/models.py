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


RECENT_TRADES = 5
"""How many recent trades a quote's `BS` carries by default, newest first."""
MAX_RECENT_TRADES = 50
"""The most recent trades a quote may carry (each adds some 60 bytes to every push)."""


class Product(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One tradable product of the catalogue."""

    code: str
    """The product code clients ask for: letters, digits, `_ . -`, at most 32 characters."""
    name: str
    """The name the symbol list shows."""
    category: str
    """The id of its category (`"1"` forex ... `"7"` international index futures)."""
    precision: int
    """Decimals of its prices (0..10)."""
    depth: int = 0
    """Book levels a side (0..10; 0: no book)."""
    volume: bool = True
    """Whether it reports a traded volume (forex does not)."""
    trades: bool | int = True
    """The recent trades its quote carries in `BS`: true for `RECENT_TRADES`, false or 0 for
    none, or how many (up to `MAX_RECENT_TRADES`)."""
    hours: str = "24/7"
    """When it trades: `"24/7"`, `"24/5"` or sessions in the service time zone such as
    `"mon-fri 09:15-11:30,13:00-15:00"` (a session ending before it starts ends the next
    day)."""
    info: list[str] = []
    """Which `Info` keys its quote carries (`TotalAmount`, `LimitUp`, `LimitDown`,
    `TurnoverRate`, `QRR`, `MarketCAP`, `MarketCIR`)."""
    # simulator parameters
    price: float = 100.0
    """The simulator's starting price (greater than 0)."""
    volatility: float = 0.01
    """The simulator's daily volatility, a fraction of the price (0 up to 1)."""
    lot: float = 1.0
    """The simulator's typical trade size."""
    volume_precision: int = 2
    """Decimals of its volumes and trade sizes (0..10)."""
    limit_pct: float = 0.0
    """A daily price limit around the last close, a fraction of it (0: none)."""

    @property
    def recent_trades(self) -> int:
        """How many recent trades its quote carries (see `trades`)."""
        if isinstance(self.trades, bool):
            return RECENT_TRADES if self.trades else 0
        return self.trades


class Verbatim(msgspec.Struct, array_like=True):
    """A quote as its source wrote it (a relayed push, a recorded body): served byte for
    byte, its day statistics taken as they are rather than worked out here."""

    body: bytes
    open: float
    high: float
    low: float
    last_close: float
    volume: float
    last_size: float


class Update(msgspec.Struct, array_like=True):
    """A normalized market event from a feed, at its own event time.

    `price` is the last price; None for an update that carries only a book or trades, which
    leaves the price, the day's statistics and the K-lines as they are. `bids`/`asks` are
    the top of the book, best first, as (price, volume); None keeps the previous book.
    `trades` are (price, size, direction) that happened at `ts`. `verbatim` is the quote
    as the source wrote it, when there is one: it is what clients get.
    """

    code: str
    ts: int
    price: float | None
    bids: list[tuple[float, float]] | None = None
    asks: list[tuple[float, float]] | None = None
    trades: list[tuple[float, float, int]] = []
    verbatim: Verbatim | None = None


def num(value: float, decimals: int) -> float | int:
    """Round to `decimals` places; an integral result is an int, as the vendor writes it."""
    rounded = round(value, decimals)
    return rounded if rounded % 1 else int(rounded)

"""Quote bodies as updates: what a relay receives and a recording holds, made into updates
whose body clients get byte for byte.

A body states the day's statistics, not what traded since the one before, so the volume a
bar gets from a body is the rise of `TotalVol` since the product's previous body (all of it
after a new day's reset). For the first body seen of a product, it is the last trade's size
when that trade is of the body's own second (`lastSize`), else nothing. The event time is
the body's `LastTime` (whole seconds), so bars are cut where the source cut them.
"""

from __future__ import annotations

from tickwire.client.models import Quote
from tickwire.models import BUY, SELL, Update, Verbatim


class BodyUpdates:
    """Turns bodies into updates, remembering each product's `TotalVol`."""

    def __init__(self) -> None:
        self._volumes: dict[str, float] = {}

    def forget(self) -> None:
        """Bodies resume after a gap (an outage): the next one of each product is a first."""
        self._volumes.clear()

    def update(self, quote: Quote, body: bytes, received_ms: int = 0) -> Update:
        """The update of one decoded body (`quote`) and its bytes as received (`body`); at
        `received_ms` when the body has no `LastTime`."""
        code, volume = quote.code, quote.volume
        before = self._volumes.get(code)
        self._volumes[code] = volume
        recent = quote.trades
        if before is None:
            now = bool(recent) and recent[0].time == quote.time[-len(recent[0].time):]
            traded = min(quote.last_size, volume) if now else 0.0
        else:
            traded = volume - before if volume >= before else volume
        price = quote.price
        trades: list[tuple[float, float, int]] = []
        if traded > 0:
            side = SELL if recent and recent[0].side == "sell" else BUY
            trades.append((price, traded, side))
        return Update(
            code, quote.last_time * 1000 if quote.last_time > 0 else received_ms, price,
            [(level.price, level.volume) for level in quote.bids],
            [(level.price, level.volume) for level in quote.asks],
            trades,
            Verbatim(body, quote.open, quote.high, quote.low, quote.last_close, volume,
                     quote.last_size),
        )

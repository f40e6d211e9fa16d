"""What a feed is: a source of normalized updates, and the sink it hands them to."""

from __future__ import annotations

from typing import Protocol

from tickwire.market.bars import BarRow
from tickwire.market.quotes import DayStats
from tickwire.models import Update


class Sink(Protocol):
    """Where a feed's updates go (the server's pipeline)."""

    def publish(self, updates: list[Update]) -> None:
        """Live updates, in event-time order per product."""
        ...

    def advance(self, now_ms: int) -> None:
        """The feed's clock: bars that ended by `now_ms` are closed."""
        ...

    def backfill(self, updates: list[Update]) -> None:
        """Historic updates, oldest first: folded into quotes and bars; only the newest is
        pushed, to clients already subscribed to its product."""
        ...

    def load_history(self, code: str, bars: dict[str, list[BarRow]], stats: DayStats) -> None:
        """A history made by the feed: each interval's bars of `code`, oldest first (the
        newest is still forming), and the quote's day statistics at its end. Kept and stored
        as if built from updates; not pushed to clients."""
        ...

    def needs_history(self) -> bool:
        """True when the store is empty and a feed that can should fill history."""
        ...

    def resume(self, code: str) -> tuple[float, float] | None:
        """The last known (price, previous close) of `code`, to continue from after a
        restart; None when there is none."""
        ...


class Feed(Protocol):
    name: str

    async def run(self, sink: Sink) -> None:
        """Produce updates until cancelled."""
        ...

    def status(self) -> dict[str, object]:
        """A small JSON-able summary for /healthz."""
        ...

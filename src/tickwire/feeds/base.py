"""What a feed is: a source of normalized updates, and the sink it hands them to.

A feed drives the products it claims (`codes`; no two feeds of a server claim one), on a
clock of its own: its `advance(now)` closes the bars of its own products only. The ingest
runs each feed under a supervisor that restarts it when it raises.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from tickwire.market.bars import BarRow
from tickwire.market.quotes import DayStats
from tickwire.models import Update


class FeedState(StrEnum):
    CONNECTING = "connecting"
    """Starting, connecting or filling history: no live updates yet."""
    LIVE = "live"
    DOWN = "down"
    """It failed: it raised (the supervisor restarts it after a backoff), or it says so
    itself while it keeps trying (an upstream it cannot reach), with its `error`."""
    FINISHED = "finished"
    """It ended by itself (a replay that reached its end)."""


class HistorySink(Protocol):
    """What a feed that makes its own history may do besides publishing updates."""

    def missing_history(self, code: str) -> frozenset[str]:
        """The intervals of `code` of which the store has no bar (all of them for a product
        new to the store): what a feed that can should fill. Asked at every start, so a fill
        cut short (a crash, Ctrl-C) goes on at the next one."""
        ...

    def load_history(self, code: str, bars: dict[str, list[BarRow]],
                     stats: DayStats | None) -> None:
        """A history made by the feed: bars of `code` by interval, oldest first (the newest
        is still forming), and the quote's day statistics at its end (None to keep the
        stored ones). Kept and stored as if built from updates; not pushed to clients."""
        ...

    def backfill(self, updates: list[Update]) -> None:
        """Historic updates, oldest first: folded into quotes and bars; only the newest is
        pushed, to clients already subscribed to its product."""
        ...

    def resume(self, code: str) -> tuple[float, float] | None:
        """The last known (price, previous close) of `code`, to continue from after a
        restart; None when there is none."""
        ...


class Sink(Protocol):
    """Where a feed's updates go (the ingest), bound to the feed's own products."""

    history: HistorySink | None
    """History capabilities, where the server keeps history (None: publish only)."""

    def publish(self, updates: list[Update]) -> None:
        """Live updates, in event-time order per product."""
        ...

    def advance(self, now_ms: int) -> None:
        """The feed's clock: bars of its products that ended by `now_ms` are closed."""
        ...

    def rewind(self, now_ms: int) -> None:
        """The feed plays its products' data again from `now_ms`: their bars from there
        on, and their day, are built afresh rather than added to what is stored."""
        ...

    def skip_to(self, now_ms: int) -> None:
        """The feed had nothing for its products between their newest bars and `now_ms`
        (the server was down): that time stays a gap instead of flat bars."""
        ...


class Feed(Protocol):
    name: str
    codes: list[str]
    """The products this feed drives."""
    state: FeedState
    """Set by the feed as it goes; the supervisor notes when it changes (`since`)."""
    error: str | None
    """Why the feed is down, while it says it is (`state` DOWN) without raising; None once
    it recovers. What a feed raises is kept by the supervisor, not here."""

    async def run(self, sink: Sink) -> None:
        """Produce updates until cancelled, or until the source ends (then return)."""
        ...

    def status(self) -> dict[str, object]:
        """A small JSON-able summary for /healthz, with the feed's `kind` (the supervisor
        adds its name, state, error, update counts and restarts)."""
        ...

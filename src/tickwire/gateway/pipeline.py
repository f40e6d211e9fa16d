"""The path of an update through one server: feed -> market -> bus (and store)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tickwire.engine.base import Bus
from tickwire.engine.sqlite import SqliteStore
from tickwire.market import Market
from tickwire.market.bars import BarRow
from tickwire.market.quotes import DayStats
from tickwire.models import Update


def _everything(code: str) -> bool:
    return True


class Pipeline:
    """The feeds' sink: folds updates into the market, publishes bodies, persists changes.

    Each update of a product in `wanted` (one someone is subscribed to) is encoded once and
    published; the others are encoded only when read (`Market.body`), as most of a large
    catalogue is watched by nobody most of the time.
    """

    def __init__(self, market: Market, bus: Bus, store: SqliteStore,
                 wanted: Callable[[str], bool] = _everything) -> None:
        self.market = market
        self.bus = bus
        self.store = store
        self.wanted = wanted
        self.updates_in = 0
        self.unknown = 0
        self._empty_store = store.is_empty()

    def publish(self, updates: list[Update]) -> None:
        market, wanted = self.market, self.wanted
        known, apply = market.products, market.apply
        batch = []
        for update in updates:
            code = update.code
            if code not in known:
                self.unknown += 1
            elif wanted(code):
                body = apply(update)
                if body is not None:
                    batch.append((code, body))
            else:
                apply(update, encode=False)
        self.updates_in += len(updates)
        if batch:
            self.bus.publish(batch)

    def backfill(self, updates: list[Update]) -> None:
        """History: folded in without encoding; the newest is published as a live one."""
        apply = self.market.apply
        for update in updates[:-1]:
            apply(update, encode=False)
        if updates:
            last = updates[-1]
            body = apply(last, encode=self.wanted(last.code))
            if body is not None:
                self.bus.publish([(last.code, body)])

    def load_history(self, code: str, bars: dict[str, list[BarRow]], stats: DayStats) -> None:
        """History as bars and day statistics: kept, and stored with the next changes."""
        self.market.load_history(code, bars, stats)

    def advance(self, now_ms: int) -> None:
        self.market.advance(now_ms)

    def needs_history(self) -> bool:
        return self._empty_store

    def resume(self, code: str) -> tuple[float, float] | None:
        pm = self.market.products.get(code)
        if pm is None or not pm.quote.started:
            return None
        return pm.quote.stats.price, pm.quote.stats.last_close

    def persist(self) -> None:
        """Hand what changed to the store's writer."""
        closed, forming, stats = self.market.take_changes()
        if closed or forming or stats:
            self.store.put(closed, forming, stats)

    async def persist_forever(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            self.persist()

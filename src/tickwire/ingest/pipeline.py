"""The path of an update: feed -> market -> engine, and the market's changes to the store.

Each update of a product a gateway watches (`Engine.watched`) is encoded once and published;
the others are encoded only when read (`Market.body`), as most of a large catalogue is
watched by nobody most of the time. With a recorder, each live update of a recorded product
is encoded too and its body handed to the recorder (watched or not); history filled in
(`backfill`, `load_history`) is not recorded.
"""

from __future__ import annotations

import logging
import time

from tickwire.engine.base import Engine
from tickwire.engine.sqlite import SqliteStore
from tickwire.feeds.base import HistorySink
from tickwire.feeds.record import Recorder
from tickwire.ingest.writer import StoreWriter
from tickwire.market import Market
from tickwire.market.bars import BarRow
from tickwire.market.quotes import DayStats
from tickwire.models import INTERVALS, WINDOW, Update

log = logging.getLogger("tickwire.ingest")


class Ingest:
    """Folds the feeds' updates into the market, publishes bodies, persists changes."""

    def __init__(self, market: Market, engine: Engine, store: SqliteStore,
                 writer: StoreWriter, recorder: Recorder | None = None) -> None:
        self.market = market
        self.engine = engine
        self.store = store
        self.writer = writer
        self.recorder = recorder
        self._recorded: frozenset[str] = frozenset() if recorder is None else \
            recorder.codes if recorder.codes is not None else frozenset(market.products)
        """The codes whose updates are recorded (none without a recorder)."""
        self.updates_in = 0
        self.unknown = 0
        self._missing = {code: frozenset(INTERVALS) for code in market.products}
        """Intervals of each product of which the store has no bar (see `restore`)."""

    def restore(self) -> None:
        """Resume the market from the store: recent bars per interval and the day's stats;
        note what the store lacks (`missing_history`)."""
        if self.store.is_empty():
            return
        began = time.monotonic()
        market, store = self.market, self.store
        for code in market.products:
            missing = set()
            for interval in INTERVALS:
                rows = store.read_bars(code, interval, WINDOW[interval], None)
                if not rows:
                    missing.add(interval)
                rows.reverse()
                market.restore(code, interval, rows)
            self._missing[code] = frozenset(missing)
        for code, stats in store.load_stats().items():
            if code in market.products:
                market.restore_stats(code, stats)
        self.engine.restored()
        log.info("restored from store", extra={"seconds": round(time.monotonic() - began, 3)})

    def sink(self, codes: list[str]) -> FeedSink:
        """Where a feed driving `codes` hands its updates, on its own clock."""
        return FeedSink(self, codes)

    # updates -----------------------------------------------------------------------------

    def publish(self, updates: list[Update]) -> None:
        market = self.market
        known, apply, wanted = market.products, market.apply, self.engine.watched
        recorded = self._recorded
        batch, bodies = [], []
        for update in updates:
            code = update.code
            if code not in known:
                self.unknown += 1
            elif code in recorded:  # encoded whether watched or not
                body = apply(update)
                if body is not None:
                    bodies.append(body)
                    if wanted(code):
                        batch.append((code, body))
            elif wanted(code):
                body = apply(update)
                if body is not None:
                    batch.append((code, body))
            else:
                apply(update, encode=False)
        self.updates_in += len(updates)
        if batch:
            self.engine.publish(batch)
        if bodies and self.recorder is not None:
            self.recorder.record(bodies)

    def backfill(self, updates: list[Update]) -> None:
        """History: folded in without encoding; the newest is published as a live one."""
        apply = self.market.apply
        for update in updates[:-1]:
            apply(update, encode=False)
        if updates:
            last = updates[-1]
            body = apply(last, encode=self.engine.watched(last.code))
            if body is not None:
                self.engine.publish([(last.code, body)])

    def load_history(self, code: str, bars: dict[str, list[BarRow]],
                     stats: DayStats | None) -> None:
        self.market.load_history(code, bars, stats)
        self._missing[code] = self._missing.get(code, frozenset()) - set(bars)

    def missing_history(self, code: str) -> frozenset[str]:
        return self._missing.get(code, frozenset())

    def resume(self, code: str) -> tuple[float, float] | None:
        pm = self.market.products.get(code)
        if pm is None or not pm.quote.started:
            return None
        return pm.quote.stats.price, pm.quote.stats.last_close

    # the store ---------------------------------------------------------------------------

    def persist(self) -> None:
        """Hand what changed to the store writer, which writes it at once, and the bars to
        the engine."""
        closed, forming, stats = self.market.take_changes()
        if closed or forming or stats:
            self.writer.put(closed, forming, stats)
            if closed or forming:
                self.engine.bars(closed, forming)


class FeedSink:
    """One feed's view of the ingest: its updates, its clock over its own products, and
    the history capabilities of the ingest."""

    def __init__(self, ingest: Ingest, codes: list[str]) -> None:
        self._ingest = ingest
        self.codes = [code for code in codes if code in ingest.market.products]
        self.history: HistorySink | None = ingest
        self.clock = 0
        """The feed's event time: the newest `advance`."""
        self.updates = 0
        """Updates the feed has handed over (a count per batch: nothing per update)."""

    def publish(self, updates: list[Update]) -> None:
        self.updates += len(updates)
        self._ingest.publish(updates)

    def advance(self, now_ms: int) -> None:
        self.clock = now_ms
        self._ingest.market.advance(now_ms, self.codes)

    def skip_to(self, now_ms: int) -> None:
        self._ingest.market.skip_to(now_ms, self.codes)

    def rewind(self, now_ms: int) -> None:
        for code in self.codes:
            self._ingest.market.rewind(code, now_ms)

"""The whole market: each product's quote and its seven K-line series. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable

from tickwire.catalogue import CatalogueError
from tickwire.market.bars import OPEN_MS, BarBuilder, BarRow, BarSeries, Interval
from tickwire.market.clock import TimeZone
from tickwire.market.hours import HoursError, TradingHours
from tickwire.market.quotes import DayStats, QuoteState
from tickwire.models import INTERVALS, Product, Update

StoredBar = tuple[str, str, BarRow]
"""(code, interval, bar) as the store keeps it."""


class ProductMarket:
    """One product's quote, its K-line series and its newest encoded body."""

    __slots__ = ("_builders", "body", "hours", "product", "quote", "series")

    def __init__(self, product: Product, tz: TimeZone, intervals: dict[str, Interval]) -> None:
        self.product = product
        try:
            self.hours = TradingHours(product.hours, tz)
        except HoursError as exc:
            raise CatalogueError(f"products[{product.code!r}].hours: {exc}") from None
        self.quote = QuoteState(product, tz)
        self.series = {
            name: BarSeries(
                BarBuilder(interval, self.hours, product.volume_precision),
                tz, product.precision, product.volume_precision,
            )
            for name, interval in intervals.items()
        }
        self._builders = [s.builder for s in self.series.values()]
        self.body: bytes | None = None
        """The quote encoded for the wire; None until `Market.body` encodes the newest one."""


class Market:
    """Quote state and K-lines for every product of the catalogue."""

    def __init__(self, products: Iterable[Product], tz: TimeZone) -> None:
        self.tz = tz
        intervals = {name: Interval(name, tz) for name in INTERVALS}
        self.products = {p.code: ProductMarket(p, tz, intervals) for p in products}
        self._closed: list[StoredBar] = []
        self._touched: set[str] = set()

    def apply(self, update: Update, encode: bool = True) -> bytes | None:
        """Fold one update in; the product's new body (None for an unknown code or no encode).

        Without `encode` the body is left to `body()`, which encodes it when it is read: a
        replay or a product nobody watches never pays for it."""
        pm = self.products.get(update.code)
        if pm is None:
            return None
        moved = pm.quote.apply(update)
        if moved is not None:
            price, volume, units = moved
            ts = update.ts
            for builder in pm._builders:
                if builder.update(ts, price, volume, units):
                    self._collect(pm, builder)
        elif not pm.quote.started:
            return None  # a book before any price: nothing to show yet
        self._touched.add(update.code)
        verbatim = update.verbatim
        if verbatim is not None:
            pm.quote.adopt(verbatim)
            pm.body = verbatim.body
            return pm.body if encode else None
        if not encode:
            pm.body = None
            return None
        pm.body = pm.quote.encode()
        return pm.body

    def body(self, code: str) -> bytes | None:
        """The product's quote as it goes on the wire (None before its first update), encoded
        now if updates have come in since it last was."""
        pm = self.products.get(code)
        if pm is None:
            return None
        if pm.body is None and pm.quote.started:
            pm.body = pm.quote.encode()
        return pm.body

    def advance(self, now_ms: int, codes: Iterable[str]) -> None:
        """Close the bars of `codes` that have ended by `now_ms`, emitting flat bars as due.

        `now_ms` is the event time of the feed that drives `codes`: each feed has its own
        clock, so a replay of last year beside a live feed closes only its own bars."""
        products = self.products
        for code in codes:
            pm = products[code]
            for builder in pm._builders:
                builder.advance(now_ms)
                if builder.closed:
                    self._collect(pm, builder)
                    self._touched.add(code)

    def restore(self, code: str, interval: str, rows_oldest_first: list[BarRow]) -> None:
        """Load stored bars: the newest resumes as the forming bar, the rest are kept."""
        series = self.products[code].series[interval]
        if not rows_oldest_first:
            return
        for row in rows_oldest_first[:-1]:
            series.keep(row)
        series.builder.restore(rows_oldest_first[-1])

    def rewind(self, code: str, ts_ms: int) -> None:
        """Build `code`'s bars again from `ts_ms` on, and its day from nothing: what a
        replay does when it plays its data from the start. Restored from a store that
        holds part of that data already (the server stopped midway), the bars would
        otherwise count the same trades twice."""
        pm = self.products.get(code)
        if pm is None:
            return
        for series in pm.series.values():
            series.rewind(ts_ms)
        pm._builders = [s.builder for s in pm.series.values()]
        pm.quote = QuoteState(pm.product, self.tz)
        pm.body = None

    def restore_stats(self, code: str, stats: DayStats) -> None:
        self.products[code].quote.restore(stats)
        self.products[code].body = None

    def load_history(self, code: str, bars: dict[str, list[BarRow]],
                     stats: DayStats | None) -> None:
        """Take a history made elsewhere (a feed's fill of what the store lacks, an
        upstream's bars) as if it had been built here: each given interval's bars, oldest
        first, kept as finished but the newest, which goes on forming unless a bar here is
        newer (forming or kept), and the quote's day statistics when given. A given bar replaces
        a kept one of the same open time. `take_changes` hands them all out to be stored."""
        for interval, rows in bars.items():
            if not rows:
                continue
            series = self.products[code].series[interval]
            forming = series.builder.forming()
            newest: BarRow | None = rows[-1]
            finished = rows[:-1]
            if (forming is not None and forming[OPEN_MS] > rows[-1][OPEN_MS]) or \
                    (series.recent and series.recent[-1][0] >= rows[-1][OPEN_MS]):
                finished, newest = rows, None  # this side is further on: all are finished
            series.merge(finished)
            if newest is not None:
                series.builder.restore(newest)
            self._closed.extend((code, interval, row) for row in finished)
        if stats is not None:
            self.restore_stats(code, stats)
        self._touched.add(code)

    def skip_to(self, now_ms: int, codes: Iterable[str]) -> None:
        """Leave the time since the newest bars of `codes` up to `now_ms` as a gap (see
        `BarBuilder.skip_to`): what a restart does, so the time the server was down gets no
        invented flat bars."""
        for code in codes:
            pm = self.products[code]
            for builder in pm._builders:
                builder.skip_to(now_ms)
                if builder.closed:
                    self._collect(pm, builder)
                    self._touched.add(code)

    def take_changes(self) -> tuple[list[StoredBar], list[StoredBar], list[tuple[str, DayStats]]]:
        """What changed since the last call: finished bars, forming bars, day statistics."""
        closed, self._closed = self._closed, []
        forming: list[StoredBar] = []
        stats: list[tuple[str, DayStats]] = []
        for code in self._touched:
            pm = self.products[code]
            for name, series in pm.series.items():
                row = series.builder.forming()
                if row is not None:
                    forming.append((code, name, row))
            if pm.quote.started:
                stats.append((code, pm.quote.saved()))
        self._touched.clear()
        return closed, forming, stats

    def _collect(self, pm: ProductMarket, builder: BarBuilder) -> None:
        series = pm.series[builder.interval.name]
        code, name = pm.product.code, builder.interval.name
        for row in builder.closed:
            series.keep(row)
            self._closed.append((code, name, row))
        builder.closed.clear()

"""The shape of a first start's history: which bars every window needs, cut into pieces.

On an empty store the simulator fills history so that every K-line interval serves its full
window at once. Rather than replaying updates, it draws each *piece* of the past as one
candle: the newest 600 minutes (the 1m window) one piece per minute; before them, back to
where the 5m window starts, one per five minutes; and so on out to months. Each interval's
bars are then rolled up from the pieces and the finer bars inside them (a 5m bar from its
1m bars, a 1h bar from its 30m bars, ...), so the intervals agree wherever their windows
overlap, and a product's history is some 1,700 candles instead of hundreds of thousands of
updates.

A `HistoryPlan` (the windows, the pieces, how bars roll up) depends only on the trading
hours and the instant, so products with the same hours share one. Pure: no I/O, no clock.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

from tickwire.market.bars import BarRow, Interval, combine
from tickwire.market.clock import DAY_MS, TimeZone
from tickwire.market.hours import TradingHours
from tickwire.market.quotes import DayStats
from tickwire.models import INTERVALS, WINDOW, Update

Piece = tuple[int, int, int, int]
"""(open_ms, first, last, trading_ms): one piece of the past, the bar of its region's
interval that opens at `open_ms` (cut at the region's end), with trading from `first` to
`last` (exclusive), `trading_ms` of it inside trading hours."""


class History(NamedTuple):
    """One product's filled history, as the market takes it."""

    bars: dict[str, list[BarRow]]
    """Each interval's bars, oldest first; the newest is still forming."""
    stats: DayStats
    """The quote's day statistics at the end of the history (no book, no trades yet)."""
    updates: list[Update]
    """The last few updates, with the full book and recent trades for the live quote."""


def window_starts(hours: TradingHours, tz: TimeZone, now: int) -> dict[str, int]:
    """Open time of the oldest bar of each interval's full window: counting back from `now`
    over the bars that have trading before `now`."""
    return {name: _window_start(hours, Interval(name, tz), now, WINDOW[name])
            for name in INTERVALS}


def _window_start(hours: TradingHours, interval: Interval, now: int, count: int) -> int:
    length = interval.length  # bars of a fixed length are counted by arithmetic
    found = 0
    edge = now  # every bar opening at or after `edge` is counted (or has no trading yet)
    while True:
        close = hours.previous_close(edge)  # where the latest trading before `edge` ends
        bar = interval.floor(close - 1)
        if length:  # short bars: count all those of that stretch of trading at once
            oldest = interval.floor(hours.session_open(close))
            touched = (bar - oldest) // length + 1
            if found + touched >= count:
                return bar - (count - found - 1) * length
            found += touched
            edge = oldest
        else:  # a day or a month: one bar, however many sessions it has
            found += 1
            if found == count:
                return bar
            edge = bar


def _pieces(hours: TradingHours, interval: Interval, start: int, end: int) -> list[Piece]:
    """The bars of `interval` with trading in [start, end), the last one cut at `end`."""
    pieces: list[Piece] = []
    following = interval.following
    at = start
    while True:
        first = hours.next_open(at)
        if first >= end:
            return pieces
        close = min(hours.next_close(first), end)
        bar = interval.floor(first)
        bar_end = min(following(bar), end)
        while bar_end < close:  # trading runs through the bar
            pieces.append((bar, first, bar_end, bar_end - first))
            bar = first = bar_end
            bar_end = min(following(bar), end)
        if bar_end == close:
            pieces.append((bar, first, close, close - first))
        else:  # trading stops inside the bar, and may start again in it
            last = hours.previous_close(bar_end)
            pieces.append((bar, first, last, hours.open_ms(first, last)))
        at = bar_end


def _group(interval: Interval, opens: list[int]) -> list[tuple[int, int]]:
    """(bar open, how many of `opens` fall in it) for the bars of `interval` over `opens`
    (in time order)."""
    groups: list[list[int]] = []
    end = 0  # of the current bar (none yet)
    for start in opens:
        if start < end:
            groups[-1][1] += 1
        else:
            bar = interval.floor(start)
            end = interval.following(bar)
            groups.append([bar, 1])
    return [(bar, n) for bar, n in groups]


class HistoryPlan:
    """The history of one set of trading hours up to `now`: each interval's window
    (`starts`), the pieces (oldest first) with what the random walk needs to draw each
    (`opens`, `gaps`, `spans`, `days`, `seconds`, `day_of`; see `_walk_figures`), and how
    the bars roll up from them."""

    def __init__(self, hours: TradingHours, tz: TimeZone, now: int) -> None:
        self.now = now
        self.starts = window_starts(hours, tz, now)
        intervals = {name: Interval(name, tz) for name in INTERVALS}
        # Where each interval's own pieces begin: its window's start, or a finer window's if
        # that one reaches further back, at a bar boundary; they end where finer ones begin.
        bounds: dict[str, int] = {}
        earliest = now
        for name in INTERVALS:
            earliest = min(earliest, self.starts[name])
            bounds[name] = intervals[name].floor(earliest)
        ends = {coarser: bounds[finer] for finer, coarser in itertools.pairwise(INTERVALS)}
        self.pieces: list[Piece] = []
        self._regions: dict[str, tuple[int, int]] = {}
        for name in reversed(INTERVALS):  # the oldest (coarsest) pieces first
            region = _pieces(hours, intervals[name], bounds[name], ends.get(name, now))
            self._regions[name] = (len(self.pieces), len(self.pieces) + len(region))
            self.pieces += region
        self._groups: dict[str, list[tuple[int, int]]] = {}
        finer: list[int] = []
        for name in INTERVALS:
            lo, hi = self._regions[name]
            opens = [piece[0] for piece in self.pieces[lo:hi]] + finer
            self._groups[name] = _group(intervals[name], opens)
            finer = [bar for bar, _ in self._groups[name]]
        self.opens = [piece[0] for piece in self.pieces]
        self.gaps, self.spans, self.days, self.seconds, self.day_of = _walk_figures(
            self.pieces, tz)

    def roll_up(self, candles: list[BarRow], volume_decimals: int) -> dict[str, list[BarRow]]:
        """Each interval's bars from one candle per piece: an interval's own pieces, then the
        next finer interval's bars, aggregated into its bars."""
        bars: dict[str, list[BarRow]] = {}
        finer: list[BarRow] = []
        for name in INTERVALS:
            lo, hi = self._regions[name]
            finer = bars[name] = _roll(candles[lo:hi] + finer, self._groups[name],
                                       volume_decimals)
        return bars


def _walk_figures(pieces: list[Piece], tz: TimeZone) -> tuple[
        list[float], list[float], list[float], list[float], list[int | None]]:
    """What the random walk needs of each piece: square roots of the days of closed time
    before it and of its own span, the two in days, its trading seconds, and the local day
    it opens in (None for a piece longer than a day, which no daily price limit bounds)."""
    gaps, spans, days, seconds = [], [], [], []
    day_of: list[int | None] = []
    previous = pieces[0][1] if pieces else 0
    day_start = day_end = 0
    for open_ms, first, last, trading in pieces:
        gap, span = (first - previous) / DAY_MS, (last - first) / DAY_MS
        gaps.append(math.sqrt(gap))
        spans.append(math.sqrt(span))
        days.append(gap + span)
        seconds.append(trading / 1000)
        if not day_start <= open_ms < day_end:
            day_start, day_end = tz.day_span(open_ms)
        day_of.append(day_start if last <= day_end else None)
        previous = last
    return gaps, spans, days, seconds, day_of


def _roll(items: list[BarRow], groups: list[tuple[int, int]], decimals: int) -> list[BarRow]:
    """Aggregate consecutive `items` into bars, `n` of them into the bar opening at `bar`
    for each `(bar, n)` of `groups`."""
    out: list[BarRow] = []
    i = 0
    for bar, n in groups:
        out.append(combine(bar, items[i:i + n], decimals))
        i += n
    return out

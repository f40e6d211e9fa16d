"""K-line building: one builder per product and interval, driven by event time.

A bar covers [start, end) aligned in the service time zone. Open is the first price in the
interval, close the last, volume the sum of trade sizes. A quiet interval inside trading hours
becomes a flat bar at the previous close with volume 0; outside trading hours there is no bar.
Each interval is built from the updates themselves, never rolled up from a smaller one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import Final

import msgspec

from tickwire.market.clock import TimeZone
from tickwire.market.hours import TradingHours
from tickwire.models import WINDOW, num

_FIXED_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": 3_600_000}
"""Intervals of a fixed length; a day (23 or 25 hours where daylight saving time changes) and
a month are not."""


BarRow = tuple[int, float, float, float, float, float]
"""One bar of an interval, finished or forming: (open_ms, open, high, low, close, volume);
its fields by name are the indexes below. A plain tuple, not a named one: history fills,
restarts and deep reads handle hundreds of thousands of bars, and a named tuple costs a
Python call and a second object for each."""

OPEN_MS: Final = 0
OPEN: Final = 1
HIGH: Final = 2
LOW: Final = 3
CLOSE: Final = 4
VOLUME: Final = 5


def combine(open_ms: int, rows: Sequence[BarRow], volume_decimals: int) -> BarRow:
    """The bar opening at `open_ms` made of consecutive finer `rows` (at least one): first
    open, highest high, lowest low, last close, summed volume rounded to its decimals."""
    first = rows[0]
    if len(rows) == 1:
        return first if first[OPEN_MS] == open_ms else (open_ms, *first[OPEN:])
    _, o, high, low, _, volume = first
    for _, _, h, lo, _, v in rows[1:]:
        if h > high:
            high = h
        if lo < low:
            low = lo
        volume += v
    return (open_ms, o, high, low, rows[-1][CLOSE], round(volume, volume_decimals))

_encode = msgspec.json.Encoder().encode


class Interval:
    """Alignment of one K-line interval in a time zone."""

    def __init__(self, name: str, tz: TimeZone) -> None:
        if name not in WINDOW:
            raise ValueError(f"unknown interval {name!r}")
        self.name = name
        self._tz = tz
        self.length = _FIXED_MS.get(name, 0)
        """Milliseconds of every bar, or 0 where bars differ in length (days, months)."""

    def floor(self, ts_ms: int) -> int:
        """Open time of the bar that contains `ts_ms`."""
        if self.length:
            return ts_ms - self._tz.local_ms(ts_ms) % self.length
        if self.name == "1d":
            return self._tz.day_span(ts_ms)[0]
        return self._tz.month_start(ts_ms)

    def following(self, start_ms: int) -> int:
        """Open time of the bar after the one opening at `start_ms`."""
        if self.length:
            return start_ms + self.length
        if self.name == "1d":
            return self._tz.day_span(start_ms)[1]
        return self._tz.month_start(start_ms, 1)


def encode_bar(row: BarRow, tz: TimeZone, decimals: int, volume_decimals: int) -> bytes:
    """The protocol's K-line row: `[open_ms, o, h, l, c, "YYYY-MM-DD HH:MM:SS", volume]`."""
    start, o, h, low, c, v = row
    return _encode((
        start, num(o, decimals), num(h, decimals), num(low, decimals), num(c, decimals),
        tz.format(start), num(v, volume_decimals),
    ))


_MAX_UNITS = 2**40


def volume_units(volume: float, scale: float) -> int | None:
    """`volume` as a whole number of units of `1 / scale` (`scale` = 10**volume decimals),
    or None when it is not one (to within 1e-6 of a unit), or is huge, NaN or infinite.

    For such a volume `v` and a bar volume `b` already rounded to the same decimals,
    `round(b + v, decimals)` is exactly `(b * scale + units) / scale`: adding whole units
    (Python ints, exact) gives the same bars as adding and rounding, without the cost of
    `round` in each of the seven intervals. (The two could part only beyond 2**50 units in
    one bar, 10**11 lots at four decimals, where float rounding itself is no longer exact.)
    """
    scaled = volume * scale
    if not -_MAX_UNITS < scaled < _MAX_UNITS:  # also NaN and infinities
        return None
    units = round(scaled)
    return units if abs(scaled - units) < 1e-6 else None


class BarBuilder:
    """Accumulates one interval's bars for one product.

    Finished bars are appended to `closed`; `forming()` is the bar still open.
    """

    __slots__ = (
        "_c", "_end", "_h", "_has_data", "_hours", "_l", "_o", "_scale", "_start", "_units",
        "_v", "_vdec", "closed", "interval", "last_close",
    )

    def __init__(self, interval: Interval, hours: TradingHours, volume_decimals: int) -> None:
        self.interval = interval
        self._hours = hours
        self._vdec = volume_decimals
        self.closed: list[BarRow] = []
        self.last_close: float | None = None
        self._start: int | None = None
        self._end = 0
        self._o = self._h = self._l = self._c = self._v = 0.0
        self._scale = float(10 ** volume_decimals)
        self._units: int | None = None
        """The bar's volume as a whole number of `10**-volume_decimals` units while it is
        one (see `volume_units`); None when `_v` holds it."""
        self._has_data = False

    def restore(self, row: BarRow) -> None:
        """Resume from a stored bar (the newest one kept) as the bar being formed."""
        self._start, self._o, self._h, self._l, self._c, self._v = row
        self._units = None
        self._end = self.interval.following(row[OPEN_MS])
        self._has_data = True
        self.last_close = row[CLOSE]

    def fresh(self) -> BarBuilder:
        """A builder of the same interval, hours and volume precision that has seen
        nothing."""
        return BarBuilder(self.interval, self._hours, self._vdec)

    def update(self, ts_ms: int, price: float, volume: float, units: int | None = None
               ) -> bool:
        """Fold in a price and a traded volume at `ts_ms`; True when that closed bars (they
        are in `closed`). `units` is the volume as whole units of the volume precision when
        it is one (`volume_units(volume, scale)`), which saves rounding the bar's volume on
        every update: the result is the same."""
        rolled = False
        if ts_ms >= self._end:
            self._roll(ts_ms, force_open=True)
            rolled = True
        elif self._start is None:
            if self.interval.floor(ts_ms) != self.interval.floor(self._end - 1):
                return False  # late event for a bar already accounted for
            self._roll(ts_ms, force_open=True)  # data inside an idle (closed-hours) bar
            rolled = True
        elif ts_ms < self._start:
            return False  # late event for a bar already closed: bars never reopen
        if self._has_data:
            if price > self._h:
                self._h = price
            elif price < self._l:
                self._l = price
            self._c = price
            if volume:
                total = self._units
                if units is None or total is None:
                    self._v = round(self._volume() + volume, self._vdec)
                    self._units = None
                else:
                    self._units = total + units
        else:
            self._o = self._h = self._l = self._c = price
            if units is not None:
                self._units = units
            else:
                self._v = round(volume, self._vdec)
                self._units = None
            self._has_data = True
        return rolled

    def _volume(self) -> float:
        return self._v if self._units is None else self._units / self._scale

    def skip_to(self, now_ms: int) -> None:
        """Nothing was seen from the end of the current bar to `now_ms` (the server was
        down): close the current bar if it has ended, and leave the time up to the bar of
        `now_ms` as a gap, without flat bars."""
        if self._start is None and self.last_close is None:
            return  # nothing seen yet: no bar to close
        floor = self.interval.floor(now_ms)
        if self._end > floor:
            return  # the current bar goes on: no gap to leave
        if self._start is not None:
            bar = self.forming()
            assert bar is not None
            self.closed.append(bar)
            self.last_close = bar[CLOSE]
        self._start, self._end, self._has_data = None, floor, False

    def advance(self, now_ms: int) -> None:
        """Close every bar that has ended by `now_ms`, even if nothing arrived."""
        if self._start is None and self.last_close is None:
            return  # nothing seen yet: no bar to close, no price for flat ones
        if now_ms >= self._end:
            self._roll(now_ms, force_open=False)

    def forming(self) -> BarRow | None:
        if self._start is None:
            return None
        if self._has_data:
            return (self._start, self._o, self._h, self._l, self._c, self._volume())
        flat = self.last_close if self.last_close is not None else 0.0
        return (self._start, flat, flat, flat, flat, 0.0)

    def _roll(self, ts_ms: int, force_open: bool) -> None:
        """Close the current bar, add flat bars for quiet ones in trading hours up to the bar
        containing `ts_ms`, and make that one current (unless it is outside trading hours and
        nothing forces it open)."""
        target = self.interval.floor(ts_ms)
        if self._start is not None:
            bar = self.forming()
            assert bar is not None
            self.closed.append(bar)
            self.last_close = bar[CLOSE]
        if self._end and self.last_close is not None:
            flat = self.last_close
            for start in self._quiet_bars(self._end, target):
                self.closed.append((start, flat, flat, flat, flat, 0.0))
        self._has_data = False
        self._end = self.interval.following(target)
        if force_open or self._hours.overlaps(target, self._end):
            self._start = target
        else:
            self._start = None  # idle: `_end` still marks how far bars are accounted for

    def _quiet_bars(self, first: int, stop: int) -> Iterator[int]:
        """Open times in [first, stop) of bars inside trading hours (they get flat bars)."""
        if self.last_close is None:
            return
        interval = self.interval
        start = first
        while start < stop:
            end = interval.following(start)
            opens = self._hours.next_open(start)
            if opens < end:
                yield start
                start = end
            else:
                start = max(end, interval.floor(opens))


class BarSeries:
    """A builder plus the newest finished bars kept in memory, each encoded once for serving.

    Bars are encoded when first asked for, not when kept: a history fill or a restart keeps
    hundreds of thousands of bars, most of which nobody asks for soon.
    """

    def __init__(self, builder: BarBuilder, tz: TimeZone, decimals: int, volume_decimals: int):
        self.builder = builder
        self._tz = tz
        self._decimals = decimals
        self._vdec = volume_decimals
        self.recent: deque[tuple[int, bytes | BarRow]] = deque(
            maxlen=WINDOW[builder.interval.name])
        self._unencoded = 0  # the newest entries of `recent` still hold rows, not bytes

    def keep(self, row: BarRow) -> None:
        self.recent.append((row[OPEN_MS], row))
        self._unencoded += 1

    def merge(self, rows: list[BarRow]) -> None:
        """Keep finished bars, oldest first, that may overlap the kept ones: a bar of the
        same open time replaces the kept one (an upstream's bar over one built here)."""
        recent = self.recent
        if not rows:
            return
        if not recent or rows[0][OPEN_MS] > recent[-1][0]:
            for row in rows:
                self.keep(row)
            return
        entries: dict[int, bytes | BarRow] = dict(recent)
        for row in rows:
            entries[row[OPEN_MS]] = row
        recent.clear()
        recent.extend(sorted(entries.items())[-(recent.maxlen or 0):])
        self._unencoded = len(recent)  # some are rows again: encode where needed

    def rewind(self, ts_ms: int) -> None:
        """Start again at the bar of `ts_ms`: a fresh builder, and the kept bars from that
        one on forgotten (they are built again)."""
        self.builder = self.builder.fresh()
        start = self.builder.interval.floor(ts_ms)
        kept = [entry for entry in self.recent if entry[0] < start]
        removed = len(self.recent) - len(kept)
        if removed:
            self.recent.clear()
            self.recent.extend(kept)
            self._unencoded = max(0, self._unencoded - removed)  # the newest went

    def encode(self, row: BarRow) -> bytes:
        return encode_bar(row, self._tz, self._decimals, self._vdec)

    def _encode_kept(self) -> None:
        recent = self.recent
        rows = [recent.pop() for _ in range(min(self._unencoded, len(recent)))]
        for start, row in reversed(rows):
            recent.append((start, row if isinstance(row, bytes) else self.encode(row)))
        self._unencoded = 0

    def newest(self, rows: int, end_ms: int | None = None) -> tuple[list[bytes], bool]:
        """Up to `rows` encoded bars, newest first, with open time <= `end_ms`.

        The flag is True when memory held enough to answer (no need to ask the store).
        """
        if self._unencoded:
            self._encode_kept()
        out: list[bytes] = []
        forming = self.builder.forming()
        if forming is not None and (end_ms is None or forming[0] <= end_ms):
            out.append(self.encode(forming))
        for start, blob in reversed(self.recent):
            if len(out) >= rows:
                break
            if end_ms is None or start <= end_ms:
                assert isinstance(blob, bytes)  # all are, after _encode_kept
                out.append(blob)
        complete = len(out) >= rows or len(self.recent) < (self.recent.maxlen or 0)
        if end_ms is not None and self.recent and self.recent[0][0] > end_ms:
            complete = False
        return out, complete

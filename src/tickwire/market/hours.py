"""Trading hours: when a product trades, in the service time zone.

Grammar (see the catalogue): `"24/7"`, `"24/5"` (Monday 00:00 to Saturday 00:00), or groups
`"mon-fri 09:00-11:30,13:00-15:00; sat 09:00-12:00"`. A session whose end is not after its
start ends on the next day (`"mon-fri 21:00-02:30"`).
"""

from __future__ import annotations

import bisect
import re

from tickwire.market.clock import DAY_MS, WEEK_MS, TimeZone

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SESSION = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


class HoursError(ValueError):
    """A trading-hours string that does not follow the grammar."""


def _parse_days(text: str) -> list[int]:
    if "-" in text:
        first, last = text.split("-", 1)
        if first not in _DAYS or last not in _DAYS:
            raise HoursError(f"unknown day range {text!r}")
        a, b = _DAYS.index(first), _DAYS.index(last)
        return [d % 7 for d in range(a, b + 1 if b >= a else b + 8)]
    if text not in _DAYS:
        raise HoursError(f"unknown day {text!r}")
    return [_DAYS.index(text)]


def _parse_minutes(hours: str, minutes: str) -> int:
    h, m = int(hours), int(minutes)
    if h > 24 or m > 59 or (h == 24 and m):
        raise HoursError(f"bad time {hours}:{minutes}")
    return (h * 60 + m) * 60_000


def _parse(text: str) -> list[tuple[int, int]]:
    spec = text.strip()
    if spec == "24/7":
        return [(0, WEEK_MS)]
    if spec == "24/5":
        return [(0, 5 * DAY_MS)]
    spans: list[tuple[int, int]] = []
    for group in spec.split(";"):
        parts = group.split()
        if len(parts) != 2:
            raise HoursError(f"expected 'days sessions' in {group.strip()!r}")
        days, sessions = parts
        for session in sessions.split(","):
            match = _SESSION.match(session)
            if not match:
                raise HoursError(f"bad session {session!r} (want HH:MM-HH:MM)")
            start = _parse_minutes(match[1], match[2])
            end = _parse_minutes(match[3], match[4])
            if end <= start:
                end += DAY_MS
            for day in _parse_days(days):
                spans.append((day * DAY_MS + start, day * DAY_MS + end))
    if not spans:
        raise HoursError("no sessions")
    return spans


def _normalize(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Split spans at the week's end and merge overlapping ones."""
    pieces: list[tuple[int, int]] = []
    for start, end in spans:
        if end > WEEK_MS:
            pieces.append((start, WEEK_MS))
            pieces.append((0, end - WEEK_MS))
        else:
            pieces.append((start, end))
    pieces.sort()
    merged: list[tuple[int, int]] = []
    for start, end in pieces:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


class TradingHours:
    """When a product trades, as spans of the local week."""

    def __init__(self, text: str, tz: TimeZone) -> None:
        self.text = text
        self._tz = tz
        self._spans = _normalize(_parse(text))
        self._starts = [s for s, _ in self._spans]
        self._ends = [e for _, e in self._spans]
        self._before: list[int] = []  # trading time of the week before each span starts
        total = 0
        for start, end in self._spans:
            self._before.append(total)
            total += end - start
        self._week_total = total
        self.always = self._spans == [(0, WEEK_MS)]
        self._wraps = self._starts[0] == 0 and self._ends[-1] == WEEK_MS
        """Trading that runs to the week's end goes on at the next Monday 00:00."""

    def is_open(self, ts_ms: int) -> bool:
        if self.always:
            return True
        week = self._tz.week_ms(ts_ms)
        i = bisect.bisect_right(self._starts, week) - 1
        return i >= 0 and week < self._spans[i][1]

    # Waits are worked out on the local clock. Where daylight saving time changes on the
    # way, the instant reached can be an hour out; each method below then works its answer
    # out again from there, so that it always holds what its docstring says.

    def next_open(self, ts_ms: int) -> int:
        """The first instant at or after `ts_ms` inside trading hours."""
        while not self.is_open(ts_ms):
            week = self._tz.week_ms(ts_ms)
            i = bisect.bisect_right(self._starts, week)
            ts_ms += self._starts[i] - week if i < len(self._starts) \
                else WEEK_MS - week + self._starts[0]
        return ts_ms

    def next_close(self, ts_ms: int) -> int:
        """The first instant at or after `ts_ms` outside trading hours (far future if never)."""
        if self.always:
            return ts_ms + 100 * 365 * DAY_MS
        while self.is_open(ts_ms):
            week = self._tz.week_ms(ts_ms)
            i = bisect.bisect_right(self._starts, week) - 1
            end = self._spans[i][1]
            if end == WEEK_MS and self._wraps:  # the span goes on into next Monday
                end += self._spans[0][1]
            ts_ms += end - week
        return ts_ms

    def previous_close(self, ts_ms: int) -> int:
        """The end of the latest trading at or before `ts_ms`: `ts_ms` itself when the instant
        before it is inside trading hours."""
        if self.always:
            return ts_ms
        while not self.is_open(ts_ms - 1):
            week = self._tz.week_ms(ts_ms - 1) + 1
            i = bisect.bisect_right(self._ends, week) - 1
            ts_ms -= week - self._ends[i] if i >= 0 else week + WEEK_MS - self._ends[-1]
        return ts_ms

    def session_open(self, ts_ms: int) -> int:
        """When the trading that runs up to `ts_ms` began (far past if it never stops); the
        instant before `ts_ms` must be inside trading hours."""
        if self.always:
            return ts_ms - 100 * 365 * DAY_MS
        while True:
            week = self._tz.week_ms(ts_ms - 1)
            i = bisect.bisect_right(self._starts, week) - 1
            start = self._starts[i]
            if i == 0 and self._wraps:  # the span began in the previous week
                start = self._starts[-1] - WEEK_MS
            ts_ms -= 1 + week - start
            if not self.is_open(ts_ms - 1):
                return self.next_open(ts_ms)

    def open_ms(self, start_ms: int, end_ms: int) -> int:
        """Milliseconds inside trading hours in [start_ms, end_ms)."""
        if end_ms <= start_ms:
            return 0
        return self._open_before(end_ms) - self._open_before(start_ms)

    def _open_before(self, ts_ms: int) -> int:
        """Trading time from a fixed (local) Monday 00:00 long ago up to `ts_ms`."""
        week = self._tz.week_ms(ts_ms)
        weeks = (self._tz.local_ms(ts_ms) - week) // WEEK_MS
        i = bisect.bisect_right(self._starts, week) - 1
        within = self._before[i] + min(week, self._ends[i]) - self._starts[i] if i >= 0 else 0
        return weeks * self._week_total + within

    def overlaps(self, start_ms: int, end_ms: int) -> bool:
        """True when any instant of [start_ms, end_ms) is inside trading hours."""
        return self.next_open(start_ms) < end_ms

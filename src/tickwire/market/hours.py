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
        self.always = self._spans == [(0, WEEK_MS)]

    def is_open(self, ts_ms: int) -> bool:
        if self.always:
            return True
        week = self._tz.week_ms(ts_ms)
        i = bisect.bisect_right(self._starts, week) - 1
        return i >= 0 and week < self._spans[i][1]

    def next_open(self, ts_ms: int) -> int:
        """The first instant at or after `ts_ms` inside trading hours."""
        if self.is_open(ts_ms):
            return ts_ms
        week = self._tz.week_ms(ts_ms)
        i = bisect.bisect_right(self._starts, week)
        wait = self._starts[i] - week if i < len(self._starts) else WEEK_MS - week + self._starts[0]
        return ts_ms + wait

    def next_close(self, ts_ms: int) -> int:
        """The first instant at or after `ts_ms` outside trading hours (far future if never)."""
        if self.always:
            return ts_ms + 100 * 365 * DAY_MS
        if not self.is_open(ts_ms):
            return ts_ms
        week = self._tz.week_ms(ts_ms)
        i = bisect.bisect_right(self._starts, week) - 1
        end = self._spans[i][1]
        if end == WEEK_MS and self._starts[0] == 0:  # the span wraps into next Monday
            end += self._spans[0][1]
        return ts_ms + end - week

    def overlaps(self, start_ms: int, end_ms: int) -> bool:
        """True when any instant of [start_ms, end_ms) is inside trading hours."""
        return self.next_open(start_ms) < end_ms

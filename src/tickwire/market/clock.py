"""Service time zone arithmetic: offsets, local days and the protocol's time strings.

Pure: every function takes the instant (Unix ms) it works on.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
_EPOCH_WEEKDAY_SHIFT_MS = 3 * DAY_MS  # 1970-01-01 was a Thursday; shift so Monday is 0
_HH_MM = [f"{minute // 60:02d}:{minute % 60:02d}:" for minute in range(1440)]
_SS = [f"{second:02d}" for second in range(60)]
"""`HH:MM:SS` of a second of the day is `_HH_MM[s // 60] + _SS[s % 60]`: quicker than
formatting three numbers, which costs more than the rest of a trade's encoding."""


class TimeZone:
    """A zone with cached UTC offsets (offsets change at most hourly)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._zone = ZoneInfo(name)
        self._offsets: dict[int, int] = {}
        self._last_second = -1
        self._last_text = ""
        self._dates: dict[int, str] = {}

    def offset_ms(self, ts_ms: int) -> int:
        hour = ts_ms // 3_600_000
        offset = self._offsets.get(hour)
        if offset is None:
            if len(self._offsets) > 100_000:
                self._offsets.clear()
            # the instant converted into the zone: utcoffset() of a UTC datetime would read
            # its fields as this zone's wall clock, hours away from the instant meant
            moment = datetime.fromtimestamp(hour * 3600, tz=UTC).astimezone(self._zone)
            delta = moment.utcoffset()
            offset = int(delta.total_seconds() * 1000) if delta else 0
            self._offsets[hour] = offset
        return offset

    def local_ms(self, ts_ms: int) -> int:
        """Milliseconds since the epoch as a wall clock in this zone would read them."""
        return ts_ms + self.offset_ms(ts_ms)

    def day(self, ts_ms: int) -> int:
        """The local calendar day as a day number (days since 1970-01-01)."""
        return self.local_ms(ts_ms) // DAY_MS

    def day_span(self, ts_ms: int) -> tuple[int, int]:
        """(start, end) in Unix ms of the local day containing `ts_ms`; start identifies it.

        A day is 23 or 25 hours long where daylight saving time begins or ends in it."""
        offset = self.offset_ms(ts_ms)
        midnight = ts_ms + offset - (ts_ms + offset) % DAY_MS  # local wall clock
        return self._instant(midnight, offset), self._instant(midnight + DAY_MS, offset)

    def _instant(self, wall_ms: int, near_offset: int) -> int:
        """The Unix ms at which this zone's wall clock reads `wall_ms`, found from an offset
        in force nearby (offsets change by at most a few hours)."""
        instant = wall_ms - near_offset
        instant = wall_ms - self.offset_ms(instant)
        return wall_ms - self.offset_ms(instant)

    def week_ms(self, ts_ms: int) -> int:
        """Milliseconds since local Monday 00:00."""
        return (self.local_ms(ts_ms) + _EPOCH_WEEKDAY_SHIFT_MS) % WEEK_MS

    def format(self, ts_ms: int) -> str:
        """`YYYY-MM-DD HH:MM:SS` in this zone."""
        second = ts_ms // 1000
        if second != self._last_second:
            local = second + self.offset_ms(ts_ms) // 1000
            day, clock = divmod(local, 86_400)
            date = self._dates.get(day)
            if date is None:  # strftime once a day; bars and trades span few days
                if len(self._dates) > 10_000:
                    self._dates.clear()
                date = self._dates[day] = time.strftime("%Y-%m-%d ", time.gmtime(day * 86_400))
            self._last_text = date + _HH_MM[clock // 60] + _SS[clock % 60]
            self._last_second = second
        return self._last_text

    def format_hms(self, ts_ms: int) -> str:
        """`HH:MM:SS` in this zone."""
        second = (ts_ms + self.offset_ms(ts_ms)) // 1000 % 86_400
        return _HH_MM[second // 60] + _SS[second % 60]

    def month_start(self, ts_ms: int, months_ahead: int = 0) -> int:
        """Unix ms of local 00:00 on the 1st of the month of `ts_ms`, shifted by `months_ahead`."""
        local = time.gmtime(self.local_ms(ts_ms) // 1000)
        index = local.tm_year * 12 + local.tm_mon - 1 + months_ahead
        year, month = divmod(index, 12)
        naive_ms = int(datetime(year, month + 1, 1, tzinfo=UTC).timestamp() * 1000)
        return naive_ms - self.offset_ms(naive_ms - self.offset_ms(naive_ms))


def now_ms() -> int:
    return time.time_ns() // 1_000_000

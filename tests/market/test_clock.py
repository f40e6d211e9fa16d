"""Time strings and day spans in the service time zone, against the standard library."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from tickwire.market.clock import TimeZone


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "America/New_York", "Asia/Kolkata", "UTC"])
def test_time_strings_match_the_standard_library(zone: str) -> None:
    """Random instants over decades (daylight saving changes included), and the same second
    asked twice in a row, as quotes do."""
    tz, info = TimeZone(zone), ZoneInfo(zone)
    rng = random.Random(zone)
    for _ in range(3000):
        ts = rng.randrange(0, 2_000_000_000_000)
        local = datetime.fromtimestamp(ts / 1000, tz=UTC).astimezone(info)
        expected = local.strftime("%Y-%m-%d %H:%M:%S")
        assert tz.format(ts) == expected
        assert tz.format(ts) == expected
        assert tz.format_hms(ts) == expected[11:]
        start, end = tz.day_span(ts)
        assert start <= ts < end
        assert datetime.fromtimestamp(start / 1000, tz=UTC).astimezone(info).strftime(
            "%H:%M:%S") == "00:00:00"

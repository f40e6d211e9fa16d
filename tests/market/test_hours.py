"""Trading hours: the grammar, and open/close questions at precise instants in Asia/Shanghai."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickwire.market.clock import DAY_MS, TimeZone
from tickwire.market.hours import HoursError, TradingHours

SHANGHAI = ZoneInfo("Asia/Shanghai")
TZ = TimeZone("Asia/Shanghai")
MS = 1
SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

# The week of Monday 2024-01-01 .. Sunday 2024-01-07, then Monday 2024-01-08.
MON, TUE, WED, THU, FRI, SAT, SUN, NEXT_MON = 1, 2, 3, 4, 5, 6, 7, 8


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0, year: int = 2024,
       month: int = 1) -> int:
    """Unix ms of a wall-clock instant in Asia/Shanghai."""
    return int(datetime(year, month, day, hour, minute, second, tzinfo=SHANGHAI).timestamp()
               * 1000)


def hours(text: str) -> TradingHours:
    return TradingHours(text, TZ)


def test_the_reference_week_starts_on_a_monday() -> None:
    assert datetime(2024, 1, MON).weekday() == 0
    assert datetime(2024, 1, SAT).weekday() == 5


# ---- 24/7 -------------------------------------------------------------------------------

def test_round_the_clock_is_always_open() -> None:
    h = hours("24/7")
    assert h.always
    for ts in (at(MON), at(SAT, 3, 17), at(SUN, 23, 59, 59) + 999, 0, 4_102_444_800_000):
        assert h.is_open(ts)
        assert h.next_open(ts) == ts
        assert h.next_close(ts) > ts + 50 * 365 * DAY_MS
        assert h.overlaps(ts, ts + 1)


# ---- 24/5 -------------------------------------------------------------------------------

def test_24_5_runs_from_monday_0000_to_saturday_0000_local() -> None:
    h = hours("24/5")
    assert not h.always
    assert h.is_open(at(MON))
    assert not h.is_open(at(MON) - MS)  # Sunday 23:59:59.999
    assert h.is_open(at(WED, 3))
    assert h.is_open(at(SAT) - MS)  # Friday 23:59:59.999
    assert not h.is_open(at(SAT))
    assert not h.is_open(at(SUN, 12))


def test_24_5_boundaries_are_local_midnight_which_is_16_00_utc() -> None:
    h = hours("24/5")
    monday_open = int(datetime(2023, 12, 31, 16, tzinfo=UTC).timestamp() * 1000)
    assert monday_open == at(MON)
    assert h.next_open(at(SAT, 12)) == monday_open + 7 * DAY_MS
    assert h.next_open(at(SUN, 15, 59)) == at(NEXT_MON)
    assert h.next_close(at(WED, 12)) == at(SAT)
    assert h.next_close(at(MON)) == at(SAT)
    # 00:00 UTC on Saturday is 08:00 local on Saturday: closed
    assert not h.is_open(int(datetime(2024, 1, 6, tzinfo=UTC).timestamp() * 1000))
    # 20:00 UTC on Friday is 04:00 local on Saturday: closed
    assert not h.is_open(int(datetime(2024, 1, 5, 20, tzinfo=UTC).timestamp() * 1000))
    # 15:00 UTC on Friday is 23:00 local on Friday: open
    assert h.is_open(int(datetime(2024, 1, 5, 15, tzinfo=UTC).timestamp() * 1000))


# ---- day groups and sessions ------------------------------------------------------------

SPLIT = "mon-fri 09:00-11:30,13:30-15:00; sat 09:00-10:00"


def test_sessions_are_closed_at_their_end_and_open_at_their_start() -> None:
    h = hours(SPLIT)
    assert not h.is_open(at(MON, 9) - MS)
    assert h.is_open(at(MON, 9))
    assert h.is_open(at(MON, 11, 30) - MS)
    assert not h.is_open(at(MON, 11, 30))
    assert not h.is_open(at(MON, 12, 45))
    assert h.is_open(at(MON, 13, 30))
    assert h.is_open(at(FRI, 15) - MS)
    assert not h.is_open(at(FRI, 15))
    assert h.is_open(at(SAT, 9, 30))
    assert not h.is_open(at(SAT, 10))
    assert not h.is_open(at(SAT, 13, 45))  # the weekday afternoon session is not Saturday's
    assert not h.is_open(at(SUN, 9, 30))


def test_next_open_and_next_close_in_a_split_day() -> None:
    h = hours(SPLIT)
    assert h.next_open(at(MON, 9, 15)) == at(MON, 9, 15)  # already open: now
    assert h.next_open(at(MON, 8)) == at(MON, 9)
    assert h.next_open(at(MON, 11, 30)) == at(MON, 13, 30)
    assert h.next_open(at(TUE, 15)) == at(WED, 9)
    assert h.next_open(at(FRI, 15)) == at(SAT, 9)
    assert h.next_open(at(SAT, 10)) == at(NEXT_MON, 9)
    assert h.next_close(at(MON, 10)) == at(MON, 11, 30)
    assert h.next_close(at(MON, 13, 30)) == at(MON, 15)
    assert h.next_close(at(SAT, 9)) == at(SAT, 10)
    assert h.next_close(at(MON, 12)) == at(MON, 12)  # already closed: now


def test_overlaps_is_half_open() -> None:
    h = hours(SPLIT)
    assert not h.overlaps(at(MON, 8), at(MON, 9))
    assert h.overlaps(at(MON, 8), at(MON, 9) + MS)
    assert not h.overlaps(at(MON, 11, 30), at(MON, 13, 30))
    assert h.overlaps(at(MON, 11, 29), at(MON, 11, 30))
    assert h.overlaps(at(MON), at(TUE))  # a whole day
    assert not h.overlaps(at(SUN), at(NEXT_MON))
    assert h.overlaps(at(SAT), at(SUN))


# ---- sessions crossing midnight, and the week's wrap-around -----------------------------

NIGHT = "mon-fri 21:00-02:30"


def test_a_session_crossing_midnight_ends_the_next_day() -> None:
    h = hours(NIGHT)
    assert h.is_open(at(TUE, 21))
    assert h.is_open(at(WED, 1, 59))
    assert h.is_open(at(WED, 2, 30) - MS)
    assert not h.is_open(at(WED, 2, 30))
    assert not h.is_open(at(WED, 12))
    assert h.next_close(at(TUE, 23)) == at(WED, 2, 30)
    assert h.next_open(at(WED, 2, 30)) == at(WED, 21)


def test_friday_night_session_runs_into_saturday() -> None:
    h = hours(NIGHT)
    assert h.is_open(at(FRI, 21))
    assert h.is_open(at(SAT, 1))
    assert not h.is_open(at(SAT, 2, 30))
    assert h.next_close(at(FRI, 22)) == at(SAT, 2, 30)
    assert h.next_open(at(SAT, 2, 30)) == at(NEXT_MON, 21)
    assert h.overlaps(at(SAT), at(SUN))  # Saturday has trading (the Friday night session)
    assert not h.overlaps(at(SUN), at(NEXT_MON))


def test_monday_early_hours_are_closed_without_a_sunday_session() -> None:
    h = hours(NIGHT)
    assert not h.is_open(at(MON, 1))
    assert h.is_open(at(TUE, 1))
    assert h.next_open(at(MON, 1)) == at(MON, 21)


def test_a_sunday_night_session_wraps_into_the_next_week() -> None:
    h = hours("sun 22:00-02:00")
    assert h.is_open(at(SUN, 23))
    assert h.is_open(at(MON, 1))  # the week's start: Monday 01:00 of the same "week" too
    assert h.is_open(at(NEXT_MON, 1))
    assert not h.is_open(at(MON, 2))
    assert h.next_close(at(SUN, 23)) == at(NEXT_MON, 2)
    assert h.next_open(at(MON, 3)) == at(SUN, 22)


def test_a_day_range_may_wrap_round_the_week() -> None:
    h = hours("fri-mon 10:00-11:00")
    for day in (FRI, SAT, SUN, MON):
        assert h.is_open(at(day, 10, 30)), day
    for day in (TUE, WED, THU):
        assert not h.is_open(at(day, 10, 30)), day
    assert h.next_open(at(MON, 11)) == at(FRI, 10)


def test_next_close_follows_a_span_over_the_week_boundary() -> None:
    h = hours("sun 12:00-24:00; mon 00:00-06:00")
    assert h.next_close(at(SUN, 13)) == at(NEXT_MON, 6)
    assert h.next_close(at(MON, 3)) == at(MON, 6)


def test_back_to_back_sessions_merge() -> None:
    h = hours("mon-fri 09:00-12:00,12:00-15:00")
    assert h.is_open(at(MON, 12))
    assert h.next_close(at(MON, 10)) == at(MON, 15)


def test_catalogue_style_strings_parse() -> None:
    for text in ("mon-fri 09:00-10:15,10:30-11:30,13:30-15:00,21:00-02:30",
                 "mon-fri 06:00-05:00", "mon-fri 07:45-14:45,16:00-05:00",
                 "  24/7  ", "mon 0:00-24:00", "sat-sun 9:05-9:06"):
        hours(text)
    h = hours("mon-fri 06:00-05:00")  # almost a full day: closed 05:00-06:00 only
    assert not h.is_open(at(TUE, 5, 30))
    assert h.is_open(at(TUE, 4, 59))
    assert h.is_open(at(SAT, 4, 59))
    assert not h.is_open(at(SAT, 6))


# ---- bad strings ------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "",
    "   ",
    "24/6",
    "mon-fri",
    "09:00-10:00",
    "mon-fri 9-10",
    "mon-fri 09:00",
    "mon-fri 09:00-10:00 extra",
    "xyz 09:00-10:00",
    "mon-xyz 09:00-10:00",
    "monday 09:00-10:00",
    "mon-fri 25:00-26:00",
    "mon-fri 09:60-10:00",
    "mon-fri 24:30-01:00",
    "mon-fri 09:00-10:00,",
    "mon-fri 09:00-10:00;",
    "mon-fri 09:00-10:00;; sat 09:00-10:00",
    "mon-fri 09h00-10h00",
    "mon-fri -09:00-10:00",
])
def test_bad_strings_raise_hours_error(text: str) -> None:
    with pytest.raises(HoursError):
        hours(text)


def test_hours_error_is_a_value_error_with_a_useful_message() -> None:
    with pytest.raises(ValueError, match="xyz"):
        hours("xyz 09:00-10:00")
    with pytest.raises(HoursError, match="09h00"):
        hours("mon 09h00-10h00")


# ---- properties -------------------------------------------------------------------------

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@st.composite
def sessions(draw: st.DrawFn) -> tuple[str, list[tuple[list[int], int, int]]]:
    """A random valid hours string and its sessions as (weekdays, start min, end min)."""
    groups = []
    parsed: list[tuple[list[int], int, int]] = []
    for _ in range(draw(st.integers(1, 3))):
        first = draw(st.integers(0, 6))
        last = draw(st.integers(0, 6))
        days_text = _DAYS[first] if first == last else f"{_DAYS[first]}-{_DAYS[last]}"
        days = [d % 7 for d in range(first, last + 1 if last >= first else last + 8)]
        texts = []
        for _ in range(draw(st.integers(1, 3))):
            start = draw(st.integers(0, 24 * 60 - 1))
            end = draw(st.integers(0, 24 * 60 - 1))
            end += end >= start  # anything in 00:00..24:00 but the start
            texts.append(f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}")
            parsed.append((days, start, end))
        groups.append(f"{days_text} {','.join(texts)}")
    return "; ".join(groups), parsed


def _reference_is_open(ts: int, parsed: list[tuple[list[int], int, int]]) -> bool:
    """Straight from the grammar's definition, via datetime."""
    local = datetime.fromtimestamp(ts / 1000, tz=SHANGHAI)
    day = local.weekday()
    minute_ms = (local.hour * 60 + local.minute) * MINUTE + local.second * SECOND \
        + local.microsecond // 1000
    for days, start, end in parsed:
        s, e = start * MINUTE, end * MINUTE
        if e > s:
            if day in days and s <= minute_ms < e:
                return True
        else:  # ends on the next day
            if day in days and minute_ms >= s:
                return True
            if (day - 1) % 7 in days and minute_ms < e:
                return True
    return False


INSTANTS = st.integers(at(MON, year=2020), at(MON, year=2030))
FIXED = st.sampled_from(["24/7", "24/5", SPLIT, NIGHT, "sun 22:00-02:00",
                         "mon-fri 09:00-10:15,10:30-11:30,13:30-15:00,21:00-02:30"])


@settings(max_examples=300, deadline=None)
@given(text=FIXED, ts=INSTANTS)
def test_next_open_is_at_or_after_and_open(text: str, ts: int) -> None:
    h = hours(text)
    opens = h.next_open(ts)
    assert opens >= ts
    assert h.is_open(opens)
    if opens > ts:
        assert not h.is_open(opens - 1)
        assert not h.is_open(ts)


@settings(max_examples=300, deadline=None)
@given(spec=sessions(), ts=INSTANTS)
def test_random_hours_agree_with_the_grammar(
    spec: tuple[str, list[tuple[list[int], int, int]]], ts: int
) -> None:
    text, parsed = spec
    h = hours(text)
    assert h.is_open(ts) == _reference_is_open(ts, parsed)
    opens = h.next_open(ts)
    assert opens >= ts
    assert h.is_open(opens)
    assert _reference_is_open(opens, parsed)
    assert opens - ts <= 8 * DAY_MS
    if opens > ts:
        assert not h.is_open(opens - 1)
    closes = h.next_close(ts)
    assert closes >= ts
    if not h.always:
        assert not h.is_open(closes)
        if closes > ts:
            assert h.is_open(closes - 1)
            # open all the way: sample a few instants in between
            for k in range(1, 8):
                assert h.is_open(ts + (closes - ts) * k // 8)
    assert h.overlaps(ts, opens + 1)
    if opens > ts:
        assert not h.overlaps(ts, opens)


@settings(max_examples=100, deadline=None)
@given(ts=INSTANTS, minutes=st.integers(1, 7 * 24 * 60))
def test_overlaps_matches_a_scan(ts: int, minutes: int) -> None:
    h = hours(SPLIT)
    end = ts + minutes * MINUTE
    scan = any(h.is_open(t) for t in range(ts - ts % MINUTE + MINUTE, end, MINUTE)) \
        or h.is_open(ts)
    assert h.overlaps(ts, end) == scan


@settings(max_examples=300, deadline=None)
@given(spec=sessions(), ts=INSTANTS)
def test_previous_close_and_session_open_mirror_next_open_and_close(
    spec: tuple[str, list[tuple[list[int], int, int]]], ts: int
) -> None:
    h = hours(spec[0])
    close = h.previous_close(ts)
    assert close <= ts
    assert ts - close <= 8 * DAY_MS
    assert h.is_open(close - 1)
    assert not h.overlaps(close, ts)  # closed all the way from there to ts
    opened = h.session_open(close)
    assert opened < close
    if not h.always:
        assert not h.is_open(opened - 1)
        assert h.next_open(opened) == opened
        assert h.next_close(opened) >= close
        assert h.next_close(opened) == h.next_close(close - 1)


@settings(max_examples=200, deadline=None)
@given(spec=sessions(), ts=INSTANTS, minutes=st.integers(0, 10 * 24 * 60))
def test_open_ms_adds_up_the_sessions(
    spec: tuple[str, list[tuple[list[int], int, int]]], ts: int, minutes: int
) -> None:
    h = hours(spec[0])
    end = ts + minutes * MINUTE + 7
    total, at_ = 0, ts
    while (opens := h.next_open(at_)) < end:
        at_ = min(h.next_close(opens), end)
        total += at_ - opens
    assert h.open_ms(ts, end) == total
    assert h.open_ms(end, ts) == 0


def test_previous_close_session_open_and_open_ms_in_a_split_day() -> None:
    h = hours(SPLIT)
    assert h.previous_close(at(MON, 12)) == at(MON, 11, 30)
    assert h.previous_close(at(MON, 11, 30)) == at(MON, 11, 30)
    assert h.previous_close(at(MON, 10)) == at(MON, 10)  # open: itself
    assert h.previous_close(at(MON, 8)) == at(30, 10, year=2023, month=12)  # Saturday's
    assert h.session_open(at(MON, 14)) == at(MON, 13, 30)
    assert h.session_open(at(MON, 11, 30)) == at(MON, 9)
    assert h.open_ms(at(MON), at(TUE)) == 4 * HOUR
    assert h.open_ms(at(MON, 10), at(MON, 14)) == 2 * HOUR
    assert h.open_ms(at(MON), at(NEXT_MON)) == 5 * 4 * HOUR + HOUR


def test_a_session_over_the_week_boundary_opened_the_week_before() -> None:
    h = hours("sun 22:00-02:00")
    assert h.session_open(at(NEXT_MON, 1)) == at(SUN, 22)
    assert h.previous_close(at(NEXT_MON, 5)) == at(NEXT_MON, 2)
    assert h.open_ms(at(SUN, 23), at(NEXT_MON, 3)) == 3 * HOUR


NEW_YORK = ZoneInfo("America/New_York")
DST_CHANGES = [datetime(2024, 3, 10, 2, tzinfo=NEW_YORK), datetime(2024, 11, 3, 2, tzinfo=NEW_YORK)]
"""Daylight saving time begins, and ends, in New York (an hour skipped, an hour repeated)."""


@settings(max_examples=300, deadline=None)
@given(text=FIXED, change=st.sampled_from(DST_CHANGES),
       offset=st.integers(-4 * DAY_MS, 4 * DAY_MS))
def test_answers_hold_where_daylight_saving_time_changes(text: str, change: datetime,
                                                        offset: int) -> None:
    h = TradingHours(text, TimeZone("America/New_York"))
    ts = int(change.timestamp() * 1000) + offset
    opens = h.next_open(ts)
    assert opens >= ts and h.is_open(opens)
    closes = h.next_close(ts)
    assert closes >= ts and (h.always or not h.is_open(closes))
    close = h.previous_close(ts)
    assert close <= ts and h.is_open(close - 1)
    opened = h.session_open(close)
    assert opened < close and h.is_open(opened)
    assert h.always or not h.is_open(opened - 1)


def test_local_time_helper_is_shanghai() -> None:
    assert at(MON) == int(datetime(2024, 1, 1, tzinfo=SHANGHAI).timestamp() * 1000)
    assert datetime.fromtimestamp(at(MON) / 1000, tz=UTC) == \
        datetime(2024, 1, 1, tzinfo=UTC) - timedelta(hours=8)

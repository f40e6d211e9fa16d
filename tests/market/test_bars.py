"""K-lines: interval alignment in Asia/Shanghai and the builder's rules (PROTOCOL section 6)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickwire.market.bars import BarBuilder, BarRow, BarSeries, Interval, encode_bar
from tickwire.market.clock import DAY_MS, TimeZone
from tickwire.market.hours import TradingHours
from tickwire.models import INTERVALS, WINDOW

SHANGHAI = ZoneInfo("Asia/Shanghai")
TZ = TimeZone("Asia/Shanghai")
SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
ALWAYS = TradingHours("24/7", TZ)


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
       ms: int = 0) -> int:
    """Unix ms of a wall-clock instant in Asia/Shanghai."""
    base = datetime(year, month, day, hour, minute, second, tzinfo=SHANGHAI).timestamp()
    return int(base * 1000) + ms


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


def builder(name: str = "1m", hours: TradingHours = ALWAYS, vdec: int = 2) -> BarBuilder:
    return BarBuilder(Interval(name, TZ), hours, vdec)


def all_bars(b: BarBuilder) -> list[BarRow]:
    forming = b.forming()
    return [*b.closed, *([forming] if forming else [])]


def local(ts: int) -> str:
    return TZ.format(ts)


# ---- alignment --------------------------------------------------------------------------

T = at(2024, 3, 6, 14, 23, 17, 250)


@pytest.mark.parametrize(("name", "opens"), [
    ("1m", at(2024, 3, 6, 14, 23)),
    ("5m", at(2024, 3, 6, 14, 20)),
    ("15m", at(2024, 3, 6, 14, 15)),
    ("30m", at(2024, 3, 6, 14, 0)),
    ("1h", at(2024, 3, 6, 14, 0)),
    ("1d", at(2024, 3, 6)),
    ("1M", at(2024, 3, 1)),
])
def test_floor_in_shanghai(name: str, opens: int) -> None:
    interval = Interval(name, TZ)
    assert interval.floor(T) == opens
    assert interval.floor(opens) == opens
    assert interval.floor(interval.following(opens) - 1) == opens
    assert interval.floor(interval.following(opens)) == interval.following(opens)


def test_hour_bars_open_on_the_hour() -> None:
    interval = Interval("1h", TZ)
    start = interval.floor(T)
    assert local(start) == "2024-03-06 14:00:00"
    assert interval.following(start) - start == HOUR
    assert start % HOUR == 0  # UTC+8 is a whole number of hours


def test_day_bars_open_at_local_midnight_which_is_16_00_utc_the_day_before() -> None:
    interval = Interval("1d", TZ)
    start = interval.floor(T)
    assert start == utc(2024, 3, 5, 16)
    assert local(start) == "2024-03-06 00:00:00"
    assert interval.following(start) == utc(2024, 3, 6, 16)
    # 17:00 UTC on the 5th is already the 6th in Shanghai
    assert interval.floor(utc(2024, 3, 5, 17)) == utc(2024, 3, 5, 16)
    # 15:59 UTC on the 5th is still the 5th
    assert interval.floor(utc(2024, 3, 5, 15, 59)) == utc(2024, 3, 4, 16)


def test_day_bars_in_utc_differ() -> None:
    assert Interval("1d", TimeZone("UTC")).floor(T) == utc(2024, 3, 6)


def test_month_bars_open_on_the_first_at_local_midnight() -> None:
    interval = Interval("1M", TZ)
    assert interval.floor(T) == utc(2024, 2, 29, 16)
    assert local(interval.floor(T)) == "2024-03-01 00:00:00"
    # 20:00 UTC on 29 February is 1 March in Shanghai
    assert interval.floor(utc(2024, 2, 29, 20)) == at(2024, 3, 1)
    assert interval.floor(utc(2024, 2, 29, 15)) == at(2024, 2, 1)
    assert interval.following(at(2024, 2, 1)) == at(2024, 3, 1)  # leap February
    assert interval.following(at(2023, 2, 1)) == at(2023, 3, 1)
    assert interval.following(at(2024, 12, 1)) == at(2025, 1, 1)
    assert interval.following(at(2024, 1, 1)) - at(2024, 1, 1) == 31 * DAY_MS


def test_unknown_interval_is_refused() -> None:
    for name in ("2h", "1D", "1w", "", "1"):
        with pytest.raises(ValueError):
            Interval(name, TZ)
    assert set(INTERVALS) == set(WINDOW)


# ---- builder: OHLCV ---------------------------------------------------------------------

M0 = at(2024, 3, 6, 10, 0)


def test_open_is_first_close_is_last_volume_is_the_sum() -> None:
    b = builder()
    b.update(M0 + 5 * SECOND, 10.0, 1.0)
    b.update(M0 + 20 * SECOND, 12.0, 2.0)
    b.update(M0 + 40 * SECOND, 9.0, 0.5)
    b.update(M0 + MINUTE - 1, 11.0, 0.25)
    assert b.closed == []
    assert b.forming() == (M0, 10.0, 12.0, 9.0, 11.0, 3.75)
    b.update(M0 + MINUTE, 20.0, 1.0)
    assert b.closed == [(M0, 10.0, 12.0, 9.0, 11.0, 3.75)]
    assert b.forming() == (M0 + MINUTE, 20.0, 20.0, 20.0, 20.0, 1.0)
    assert b.last_close == 11.0


def test_volume_has_no_float_noise() -> None:
    b = builder(vdec=2)
    for _ in range(10):
        b.update(M0 + SECOND, 1.0, 0.1)
    forming = b.forming()
    assert forming is not None
    assert forming[5] == 1.0
    b2 = builder(vdec=5)
    b2.update(M0, 1.0, 0.1)
    b2.update(M0 + 1, 1.0, 0.2)
    assert b2.forming() == (M0, 1.0, 1.0, 1.0, 1.0, 0.3)


def test_zero_volume_updates_leave_volume_zero() -> None:
    b = builder()
    b.update(M0, 1.15, 0.0)
    b.update(M0 + SECOND, 1.16, 0.0)
    assert b.forming() == (M0, 1.15, 1.16, 1.15, 1.16, 0.0)


def test_quiet_intervals_inside_hours_get_flat_bars_at_the_previous_close() -> None:
    b = builder()
    b.update(M0 + 10 * SECOND, 10.0, 1.0)
    b.update(M0 + 30 * SECOND, 10.5, 1.0)
    b.update(M0 + 3 * MINUTE + 30 * SECOND, 11.0, 2.0)
    assert b.closed == [
        (M0, 10.0, 10.5, 10.0, 10.5, 2.0),
        (M0 + MINUTE, 10.5, 10.5, 10.5, 10.5, 0.0),
        (M0 + 2 * MINUTE, 10.5, 10.5, 10.5, 10.5, 0.0),
    ]
    assert b.forming() == (M0 + 3 * MINUTE, 11.0, 11.0, 11.0, 11.0, 2.0)


def test_late_events_never_reopen_a_closed_bar() -> None:
    b = builder()
    b.update(M0 + 10 * SECOND, 10.0, 1.0)
    b.update(M0 + MINUTE + 10 * SECOND, 11.0, 1.0)
    b.update(M0 + 20 * SECOND, 99.0, 5.0)  # late: belongs to the closed 10:00 bar
    assert b.closed == [(M0, 10.0, 10.0, 10.0, 10.0, 1.0)]
    assert b.forming() == (M0 + MINUTE, 11.0, 11.0, 11.0, 11.0, 1.0)


# ---- builder: trading hours -------------------------------------------------------------

FRI = (2024, 1, 5)  # a Friday
MON = (2024, 1, 8)
MORNING = TradingHours("mon-fri 09:00-10:00", TZ)


def test_no_bars_outside_trading_hours_across_a_weekend() -> None:
    b = builder("1m", MORNING)
    b.update(at(*FRI, 9, 58, 30), 10.0, 1.0)
    b.update(at(*FRI, 9, 59, 30), 11.0, 1.0)
    b.advance(at(*MON, 9, 5, 30))
    starts = [local(row[0]) for row in all_bars(b)]
    assert starts == [
        "2024-01-05 09:58:00", "2024-01-05 09:59:00",
        "2024-01-08 09:00:00", "2024-01-08 09:01:00", "2024-01-08 09:02:00",
        "2024-01-08 09:03:00", "2024-01-08 09:04:00", "2024-01-08 09:05:00",
    ]
    for row in all_bars(b)[2:]:
        assert row[1:] == (11.0, 11.0, 11.0, 11.0, 0.0)


def test_day_bars_skip_the_weekend() -> None:
    b = builder("1d", MORNING)
    b.update(at(2024, 1, 4, 9, 30), 10.0, 1.0)  # Thursday
    b.update(at(*FRI, 9, 30), 11.0, 2.0)
    b.update(at(*FRI, 9, 45), 12.0, 2.0)
    b.advance(at(*MON, 9, 30))
    assert [local(row[0])[:10] for row in all_bars(b)] == [
        "2024-01-04", "2024-01-05", "2024-01-08"]
    assert b.closed[-1] == (at(*FRI), 11.0, 12.0, 11.0, 12.0, 4.0)
    assert b.forming() == (at(*MON), 12.0, 12.0, 12.0, 12.0, 0.0)


def test_closing_outside_hours_leaves_no_forming_bar() -> None:
    b = builder("1m", MORNING)
    b.update(at(*FRI, 9, 58, 30), 10.0, 1.0)
    b.update(at(*FRI, 9, 59, 30), 11.0, 1.0)
    b.advance(at(*FRI, 10, 0, 30))
    assert b.forming() is None
    assert local(b.closed[-1][0]) == "2024-01-05 09:59:00"
    b.advance(at(2024, 1, 6, 9, 30))  # Saturday morning: still nothing
    assert b.forming() is None
    assert len(b.closed) == 2


def test_advancing_in_small_steps_builds_the_same_bars_as_one_jump() -> None:
    jump = builder("1m", MORNING)
    steps = builder("1m", MORNING)
    for b in (jump, steps):
        b.update(at(*FRI, 9, 58, 30), 10.0, 1.0)
        b.update(at(*FRI, 9, 59, 30), 11.0, 1.0)
    jump.advance(at(*MON, 9, 5, 30))
    ts = at(*FRI, 10, 0, 30)
    while ts <= at(*MON, 9, 5, 30):
        steps.advance(ts)
        ts += 6 * HOUR  # Sat 04:00:30, ..., Mon 04:00:30: all closed
    steps.advance(at(*MON, 9, 5, 30))
    assert all_bars(steps) == all_bars(jump)


def test_sessions_crossing_midnight_build_saturday_bars_from_friday_night() -> None:
    night = TradingHours("mon-fri 21:00-02:30", TZ)
    b = builder("1h", night)
    b.update(at(*FRI, 21, 10), 100.0, 1.0)
    b.update(at(*FRI, 22, 10), 101.0, 1.0)
    b.update(at(2024, 1, 6, 2, 10), 102.0, 1.0)  # Saturday 02:10, still Friday's session
    b.advance(at(*MON, 21, 30))
    starts = [local(row[0]) for row in all_bars(b)]
    assert starts == [
        "2024-01-05 21:00:00", "2024-01-05 22:00:00", "2024-01-05 23:00:00",
        "2024-01-06 00:00:00", "2024-01-06 01:00:00", "2024-01-06 02:00:00",
        "2024-01-08 21:00:00",
    ]


# ---- builder: advance -------------------------------------------------------------------

def test_advance_closes_a_bar_on_time_without_a_new_update() -> None:
    b = builder()
    b.update(M0 + 10 * SECOND, 10.0, 1.0)
    b.update(M0 + MINUTE + 10 * SECOND, 11.0, 2.0)
    b.advance(M0 + 2 * MINUTE - 1)
    assert len(b.closed) == 1
    b.advance(M0 + 2 * MINUTE)
    assert b.closed[-1] == (M0 + MINUTE, 11.0, 11.0, 11.0, 11.0, 2.0)
    assert b.forming() == (M0 + 2 * MINUTE, 11.0, 11.0, 11.0, 11.0, 0.0)
    b.advance(M0 + 4 * MINUTE + 1)
    assert [row[0] for row in b.closed] == [M0 + k * MINUTE for k in range(4)]
    assert b.forming() == (M0 + 4 * MINUTE, 11.0, 11.0, 11.0, 11.0, 0.0)


def test_advance_closes_the_very_first_bar_on_time() -> None:
    b = builder()
    b.update(M0 + 10 * SECOND, 10.0, 1.0)
    b.advance(M0 + MINUTE + 5 * SECOND)
    assert b.closed == [(M0, 10.0, 10.0, 10.0, 10.0, 1.0)]
    assert b.forming() == (M0 + MINUTE, 10.0, 10.0, 10.0, 10.0, 0.0)


def test_advance_before_any_update_makes_no_bars() -> None:
    b = builder()
    b.advance(M0 + 10 * MINUTE)
    assert b.closed == []
    assert b.forming() is None


# ---- builder: a restart leaves the time the server was down as a gap ---------------------

def test_skip_to_closes_the_restored_bar_and_makes_no_flat_bars_for_the_downtime() -> None:
    b = builder()
    b.restore((M0, 10.0, 12.0, 9.0, 11.0, 3.0))  # the bar forming when the server stopped
    b.skip_to(M0 + 90 * MINUTE + 20 * SECOND)  # started again an hour and a half later
    assert b.closed == [(M0, 10.0, 12.0, 9.0, 11.0, 3.0)]
    assert b.forming() is None
    b.closed.clear()
    b.update(M0 + 92 * MINUTE + 5 * SECOND, 11.5, 1.0)
    # the quiet minutes since the restart are flat; the downtime before it stays a gap
    assert [row[0] for row in b.closed] == [M0 + 90 * MINUTE, M0 + 91 * MINUTE]
    assert b.closed[0] == (M0 + 90 * MINUTE, 11.0, 11.0, 11.0, 11.0, 0.0)
    assert b.forming() == (M0 + 92 * MINUTE, 11.5, 11.5, 11.5, 11.5, 1.0)


def test_skip_to_within_the_forming_bar_changes_nothing() -> None:
    b = builder()
    b.restore((M0, 10.0, 12.0, 9.0, 11.0, 3.0))
    b.skip_to(M0 + 40 * SECOND)
    assert b.closed == [] and b.forming() == (M0, 10.0, 12.0, 9.0, 11.0, 3.0)
    b.update(M0 + 50 * SECOND, 13.0, 1.0)
    assert b.forming() == (M0, 10.0, 13.0, 9.0, 13.0, 4.0)


def test_skip_to_before_anything_was_seen_changes_nothing() -> None:
    b = builder()
    b.skip_to(M0 + 10 * MINUTE)
    assert b.closed == [] and b.forming() is None
    b.update(M0 + 5 * MINUTE, 10.0, 1.0)  # not refused as late
    assert b.forming() == (M0 + 5 * MINUTE, 10.0, 10.0, 10.0, 10.0, 1.0)


def test_a_provisional_flat_bar_takes_the_first_real_price_as_open() -> None:
    b = builder()
    b.update(M0 + 10 * SECOND, 10.0, 1.0)
    b.update(M0 + MINUTE + 10 * SECOND, 11.0, 2.0)
    b.advance(M0 + 2 * MINUTE + 5 * SECOND)
    assert b.forming() == (M0 + 2 * MINUTE, 11.0, 11.0, 11.0, 11.0, 0.0)
    b.update(M0 + 2 * MINUTE + 30 * SECOND, 13.0, 0.5)
    assert b.forming() == (M0 + 2 * MINUTE, 13.0, 13.0, 13.0, 13.0, 0.5)
    b.update(M0 + 2 * MINUTE + 40 * SECOND, 12.0, 0.5)
    assert b.forming() == (M0 + 2 * MINUTE, 13.0, 13.0, 12.0, 12.0, 1.0)
    b.advance(M0 + 3 * MINUTE)
    assert b.closed[-1] == (M0 + 2 * MINUTE, 13.0, 13.0, 12.0, 12.0, 1.0)


def test_each_interval_is_built_from_the_updates_not_rolled_up() -> None:
    one, five = builder("1m"), builder("5m")
    events = [
        (M0 - 40 * SECOND, 90.0, 1.0),  # 09:59:20, previous bars
        (M0 + MINUTE + 10 * SECOND, 100.0, 1.0),  # 10:00 is quiet; first trade 10:01:10
        (M0 + 2 * MINUTE + 10 * SECOND, 102.0, 1.0),
        (M0 + 4 * MINUTE + 10 * SECOND, 101.0, 1.0),
        (M0 + 5 * MINUTE + 10 * SECOND, 103.0, 1.0),  # opens the next 5m bar
    ]
    for ts, price, volume in events:
        one.update(ts, price, volume)
        five.update(ts, price, volume)
    ones = {row[0]: row for row in one.closed}
    assert ones[M0] == (M0, 90.0, 90.0, 90.0, 90.0, 0.0)  # the quiet minute is flat
    assert ones[M0 + 3 * MINUTE] == (M0 + 3 * MINUTE, 102.0, 102.0, 102.0, 102.0, 0.0)
    fives = {row[0]: row for row in five.closed}
    assert fives[M0] == (M0, 100.0, 102.0, 100.0, 101.0, 3.0)


def test_restore_resumes_the_stored_bar_as_forming() -> None:
    b = builder()
    b.restore((M0, 10.0, 12.0, 9.0, 11.0, 3.0))
    b.update(M0 + 30 * SECOND, 13.0, 1.0)
    assert b.forming() == (M0, 10.0, 13.0, 9.0, 13.0, 4.0)
    b.advance(M0 + 2 * MINUTE)
    assert b.closed == [(M0, 10.0, 13.0, 9.0, 13.0, 4.0),
                        (M0 + MINUTE, 13.0, 13.0, 13.0, 13.0, 0.0)]


# ---- BarSeries --------------------------------------------------------------------------

def series_with(closed: int, interval: str = "1m") -> BarSeries:
    b = builder(interval)
    s = BarSeries(b, TZ, 2, 2)
    for k in range(closed + 1):
        b.update(M0 + k * MINUTE, 100.0 + k, 1.0)
    for row in b.closed:
        s.keep(row)
    b.closed.clear()
    return s


def decoded(blobs: list[bytes]) -> list[list[object]]:
    return [json.loads(blob) for blob in blobs]


def test_newest_is_forming_first_then_newest_closed() -> None:
    s = series_with(5)
    rows, complete = s.newest(3)
    assert [r[0] for r in decoded(rows)] == [M0 + 5 * MINUTE, M0 + 4 * MINUTE, M0 + 3 * MINUTE]
    assert complete
    rows, complete = s.newest(40)
    assert [r[0] for r in decoded(rows)] == [M0 + k * MINUTE for k in range(5, -1, -1)]
    assert complete  # memory holds everything there is
    assert len(s.newest(1)[0]) == 1


def test_newest_filters_by_end() -> None:
    s = series_with(5)
    rows, complete = s.newest(10, end_ms=M0 + 2 * MINUTE)
    assert [r[0] for r in decoded(rows)] == [M0 + 2 * MINUTE, M0 + MINUTE, M0]
    assert complete
    rows, _ = s.newest(2, end_ms=M0 + 3 * MINUTE + 30 * SECOND)
    assert [r[0] for r in decoded(rows)] == [M0 + 3 * MINUTE, M0 + 2 * MINUTE]
    rows, _ = s.newest(10, end_ms=M0 - 1)
    assert rows == []


def test_newest_says_incomplete_when_memory_is_full_and_end_is_older() -> None:
    s = series_with(WINDOW["1m"] + 10)
    assert len(s.recent) == WINDOW["1m"]
    rows, complete = s.newest(5, end_ms=M0 + 5 * MINUTE)
    assert not complete  # older than what memory holds: the store must answer
    rows, complete = s.newest(WINDOW["1m"])
    assert complete and len(rows) == WINDOW["1m"]


# ---- encoding ---------------------------------------------------------------------------

def test_encode_bar_is_the_protocols_row() -> None:
    start = at(2023, 5, 28, 15, 43)
    row: BarRow = (start, 27206.0, 27206.019999999997, 27000.5, 27100.0, 3.0)
    assert encode_bar(row, TZ, 2, 2) == (
        b'[' + str(start).encode() + b',27206,27206.02,27000.5,27100,"2023-05-28 15:43:00",3]')
    parsed = json.loads(encode_bar(row, TZ, 2, 2))
    assert [type(v) for v in parsed] == [int, int, float, float, int, str, int]


def test_encode_bar_rounds_to_the_products_precision() -> None:
    start = at(2021, 6, 7, 18, 31)
    row: BarRow = (start, 1.123456789, 1.2, 1.1, 1.15, 0.30000000000000004)
    assert json.loads(encode_bar(row, TZ, 5, 2)) == [
        start, 1.12346, 1.2, 1.1, 1.15, "2021-06-07 18:31:00", 0.3]
    assert start == 1623061860000  # the document's sample row


def test_series_encode_uses_its_decimals_and_time_zone() -> None:
    s = BarSeries(builder("1d"), TimeZone("UTC"), 0, 0)
    assert json.loads(s.encode((utc(2024, 1, 1), 3.4, 3.6, 2.5, 3.0, 7.2))) == [
        utc(2024, 1, 1), 3, 4, 2, 3, "2024-01-01 00:00:00", 7]


# ---- properties -------------------------------------------------------------------------

PRICES = st.floats(min_value=0.01, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    ticks=st.lists(
        st.tuples(st.integers(0, 5 * MINUTE - 1), PRICES,
                  st.integers(0, 10_000).map(lambda v: v / 100)),
        min_size=1, max_size=60,
    ),
)
def test_five_minute_bar_is_max_min_first_last_of_its_prices(
    ticks: list[tuple[int, float, float]],
) -> None:
    ticks = sorted(ticks, key=lambda t: t[0])
    five, one = builder("5m"), builder("1m")
    for offset, price, volume in ticks:
        five.update(M0 + offset, price, volume)
        one.update(M0 + offset, price, volume)
    five.advance(M0 + 5 * MINUTE)
    prices = [p for _, p, _ in ticks]
    bar = five.forming() if not five.closed else five.closed[0]
    assert bar is not None
    assert bar[0] == M0
    assert bar[1] == prices[0]
    assert bar[2] == max(prices)
    assert bar[3] == min(prices)
    assert bar[4] == prices[-1]
    assert bar[5] == pytest.approx(sum(v for _, _, v in ticks), abs=0.011 * len(ticks))
    # each minute bar that had trades: its own max/min
    for row in all_bars(one):
        inside = [p for off, p, _ in ticks if row[0] <= M0 + off < row[0] + MINUTE]
        if inside:
            assert (row[1], row[2], row[3], row[4]) == (
                inside[0], max(inside), min(inside), inside[-1])
        else:
            assert row[1] == row[2] == row[3] == row[4] and row[5] == 0.0


@pytest.mark.parametrize(("day", "hours"), [((2024, 3, 10), 23), ((2024, 11, 3), 25),
                                            ((2024, 6, 5), 24)])
def test_a_day_bar_runs_from_local_midnight_to_midnight_across_daylight_saving(
        day: tuple[int, int, int], hours: int) -> None:
    zone = ZoneInfo("America/New_York")
    interval = Interval("1d", TimeZone("America/New_York"))
    midnight = int(datetime(*day, tzinfo=zone).timestamp() * 1000)
    for at_ms in (midnight, midnight + 12 * 3_600_000, midnight + hours * 3_600_000 - 1):
        assert interval.floor(at_ms) == midnight
    assert interval.following(midnight) - midnight == hours * 3_600_000
    assert datetime.fromtimestamp(interval.following(midnight) / 1000, tz=zone).hour == 0

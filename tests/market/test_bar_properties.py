"""Properties of the K-line builder over any sequence of updates (PROTOCOL section 6).

- Batch boundaries change nothing: closing bars on the clock (`advance`) at any moments
  between updates gives the bars that the updates alone give.
- Each bar is its updates: first, highest, lowest, last price, summed volume.
- The intervals agree: a bar is its finer bars that had updates, combined; a quiet bar is
  quiet all through.
- No gap inside trading hours: from the first bar to the last, each interval has a bar for
  every span that overlaps trading hours or had an update, and for no other.
- Late updates never reopen a bar: open times only grow, whatever the order.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzzing import fuzz_settings
from tickwire.market.bars import (
    CLOSE,
    HIGH,
    LOW,
    OPEN,
    OPEN_MS,
    VOLUME,
    BarBuilder,
    BarRow,
    Interval,
    combine,
    volume_units,
)
from tickwire.market.clock import TimeZone
from tickwire.market.hours import TradingHours
from tickwire.models import INTERVALS

pytestmark = pytest.mark.fuzz

TZ = TimeZone("Asia/Shanghai")
START = int(datetime(2024, 3, 1, 8, 55, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)
"""A Friday morning: the sequences run into a weekend and a month's end."""
HOURS = ["24/7", "mon-fri 09:00-11:30,13:30-15:00", "mon-fri 21:00-02:30", "24/5"]
VDEC = 2
SCALE = 10.0 ** VDEC
CASES = (100, 3000)
FINER = [("1m", "5m"), ("5m", "15m"), ("15m", "30m"), ("30m", "1h"), ("1h", "1d"),
         ("1d", "1M")]

Tick = tuple[int, float, float]
"""(event time, price, volume)"""

steps = st.one_of(st.integers(0, 5_000), st.integers(0, 600_000),
                  st.integers(0, 3 * 86_400_000))
ticks = st.lists(st.tuples(steps, st.integers(1, 10**7).map(lambda p: p / 100),
                           st.integers(0, 10**5).map(lambda v: v / 100)),
                 min_size=1, max_size=80)


def in_time_order(raw: list[tuple[int, float, float]]) -> list[Tick]:
    out, ts = [], START
    for step, price, volume in raw:
        ts += step
        out.append((ts, price, volume))
    return out


def build(hours: TradingHours, name: str, updates: list[Tick],
          clock: dict[int, int] | None = None) -> list[BarRow]:
    """Every bar of one interval: the updates in order, `advance(now)` after update i for
    each `clock[i] = now`, then the clock at the last update."""
    builder = BarBuilder(Interval(name, TZ), hours, VDEC)
    for i, (ts, price, volume) in enumerate(updates):
        builder.update(ts, price, volume, volume_units(volume, SCALE))
        if clock and i in clock:
            builder.advance(clock[i])
    builder.advance(updates[-1][0])
    forming = builder.forming()
    return [*builder.closed, *([forming] if forming is not None else [])]


@st.composite
def clocks(draw: st.DrawFn, updates: list[Tick]) -> dict[int, int]:
    """Batch boundaries: after some updates, the clock at a moment before the next one."""
    clock = {}
    for i in draw(st.sets(st.integers(0, len(updates) - 1))):
        later = updates[i + 1][0] if i + 1 < len(updates) else updates[i][0]
        clock[i] = draw(st.integers(updates[i][0], later))
    return clock


@fuzz_settings(*CASES)
@given(raw=ticks, spec=st.sampled_from(HOURS), data=st.data())
def test_batch_boundaries_change_no_bar(raw: list[tuple[int, float, float]], spec: str,
                                        data: st.DataObject) -> None:
    updates = in_time_order(raw)
    hours = TradingHours(spec, TZ)
    clock = data.draw(clocks(updates))
    for name in INTERVALS:
        assert build(hours, name, updates, clock) == build(hours, name, updates), name


def window(name: str, bar: BarRow) -> tuple[int, int]:
    interval = Interval(name, TZ)
    return bar[OPEN_MS], interval.following(bar[OPEN_MS])


@fuzz_settings(*CASES)
@given(raw=ticks, spec=st.sampled_from(HOURS))
def test_each_bar_is_its_updates_and_intervals_agree(raw: list[tuple[int, float, float]],
                                                     spec: str) -> None:
    updates = in_time_order(raw)
    hours = TradingHours(spec, TZ)
    bars = {name: build(hours, name, updates) for name in INTERVALS}
    for name, rows in bars.items():
        for bar in rows:
            start, end = window(name, bar)
            inside = [(p, v) for ts, p, v in updates if start <= ts < end]
            if inside:
                prices = [p for p, _ in inside]
                assert bar[OPEN:VOLUME] == (prices[0], max(prices), min(prices), prices[-1])
                assert bar[VOLUME] == round(sum(v for _, v in inside), VDEC)
            else:
                assert bar[OPEN] == bar[HIGH] == bar[LOW] == bar[CLOSE] and bar[VOLUME] == 0
    for fine, coarse in FINER:
        for bar in bars[coarse]:
            start, end = window(coarse, bar)
            within = [b for b in bars[fine] if start <= b[OPEN_MS] < end]
            traded = [b for b in within
                      if any(window(fine, b)[0] <= ts < window(fine, b)[1]
                             for ts, _, _ in updates)]
            if traded:
                assert combine(start, traded, VDEC) == bar, (fine, coarse)
            else:
                assert all(b[OPEN:VOLUME] == (bar[CLOSE],) * 4 for b in within)


@fuzz_settings(*CASES)
@given(raw=ticks, spec=st.sampled_from(HOURS))
def test_no_gap_inside_trading_hours(raw: list[tuple[int, float, float]], spec: str) -> None:
    updates = in_time_order(raw)
    hours = TradingHours(spec, TZ)
    for name in INTERVALS:
        interval = Interval(name, TZ)
        opens = [bar[OPEN_MS] for bar in build(hours, name, updates)]
        traded = {interval.floor(ts) for ts, _, _ in updates}
        expected, start = [], opens[0]
        while start <= opens[-1]:
            end = interval.following(start)
            if start in traded or hours.overlaps(start, end):
                expected.append(start)
            start = end
        assert opens == expected, name


@fuzz_settings(*CASES)
@given(raw=st.lists(st.tuples(st.integers(0, 4 * 86_400_000), st.integers(1, 10**6),
                              st.integers(0, 1000)), min_size=1, max_size=60),
       spec=st.sampled_from(HOURS))
def test_late_updates_never_reopen_a_bar(raw: list[tuple[int, int, int]], spec: str) -> None:
    updates = [(START + offset, price / 100, volume / 100) for offset, price, volume in raw]
    hours = TradingHours(spec, TZ)
    for name in INTERVALS:
        bars = build(hours, name, updates)
        assert [b[OPEN_MS] for b in bars] == sorted({b[OPEN_MS] for b in bars})
        for bar in bars:
            assert bar[LOW] <= min(bar[OPEN], bar[CLOSE]) <= max(bar[OPEN], bar[CLOSE]) \
                <= bar[HIGH] and bar[VOLUME] >= 0

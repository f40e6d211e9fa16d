"""A rolling rate from a running total, sampled at status reports."""

from __future__ import annotations

import pytest

from tickwire.ingest.rate import RollingRate


def test_no_rate_before_time_has_passed() -> None:
    rate = RollingRate()
    assert rate.sample(100.0, 0) == 0.0
    assert rate.sample(100.0, 50) == 0.0  # no time yet to divide by
    assert rate.sample(101.0, 50) == 50.0


def test_a_steady_rate_over_the_window_then_silence() -> None:
    rate = RollingRate(window=10.0)
    total, now = 0, 0.0
    rate.sample(now, total)
    for _ in range(200):  # 50 s at 40 per second, looked at every 0.25 s
        now += 0.25
        total += 10
        assert rate.sample(now, total) == pytest.approx(40.0)
    for _ in range(39):  # nothing more: the rate falls as the window moves past
        now += 0.25
        assert 0.0 < rate.sample(now, total) < 40.0
    now += 0.25 + 0.5  # a window and a slot after the last update
    assert rate.sample(now, total) == 0.0


def test_a_burst_counts_only_while_in_the_window() -> None:
    rate = RollingRate(window=10.0, slots=20)
    rate.sample(0.0, 0)
    assert rate.sample(1.0, 1000) == pytest.approx(1000.0)  # over the time known so far
    for second in range(2, 11):
        assert rate.sample(float(second), 1000) == pytest.approx(1000 / second)
    assert rate.sample(11.0, 1000) == 0.0  # the second of the burst is out of the window


def test_looks_closer_than_a_slot_are_not_kept() -> None:
    rate = RollingRate(window=10.0, slots=10)
    for i in range(10_000):  # looked at far more often than once a slot: stays bounded
        rate.sample(i * 0.01, i)
    assert len(rate._samples) <= 12
    assert rate.sample(100.0, 10_000) == pytest.approx(100.0, rel=0.02)


def test_a_sample_far_after_the_last_measures_from_the_last() -> None:
    rate = RollingRate(window=10.0)
    rate.sample(0.0, 0)
    rate.sample(5.0, 500)
    assert rate.sample(65.0, 560) == pytest.approx(1.0)  # 60 updates over the last 60 s


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="window"):
        RollingRate(window=0)

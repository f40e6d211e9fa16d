"""Backoff: capped, jittered, growing, and reset."""

from __future__ import annotations

import itertools
import random

import pytest

from tickwire import Backoff


def test_delays_grow_to_the_cap_and_never_shrink_before_it() -> None:
    backoff = Backoff(initial=0.5, maximum=8, rng=random.Random(1))
    delays = [backoff.next() for _ in range(12)]
    assert all(b >= a for a, b in itertools.pairwise(delays[:5]))  # 0.5 1 2 4 8, jittered
    assert all(0 < d <= 8 for d in delays)
    assert delays[0] <= 0.5 and delays[-1] >= 4  # capped at 8, jitter takes at most half
    assert backoff.attempts == 12


def test_jitter_spreads_delays_within_the_bound() -> None:
    delays = {Backoff(initial=1, rng=random.Random(seed)).next() for seed in range(50)}
    assert len(delays) == 50
    assert all(0.5 <= d <= 1 for d in delays)


def test_no_jitter_is_plain_exponential() -> None:
    backoff = Backoff(initial=0.1, maximum=1, jitter=0)
    assert [round(backoff.next(), 3) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1, 1]


def test_reset_starts_again() -> None:
    backoff = Backoff(initial=0.1, maximum=10, jitter=0)
    for _ in range(5):
        backoff.next()
    backoff.reset()
    assert backoff.attempts == 0 and backoff.next() == 0.1


def test_huge_attempt_counts_stay_capped() -> None:
    backoff = Backoff(initial=1, maximum=30, jitter=0)
    backoff.attempts = 10_000
    assert backoff.next() == 30


@pytest.mark.parametrize("kwargs", [{"initial": 0}, {"initial": 5, "maximum": 1},
                                    {"factor": 0.5}, {"jitter": 1}])
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)  # type: ignore[arg-type]

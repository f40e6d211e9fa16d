"""The in-process rate limiter keeps what its window needs, whatever the limit."""

from __future__ import annotations

import time

from tickwire.engine.ratelimit import SlidingWindow


def test_a_busy_key_under_a_huge_limit_keeps_only_its_last_window() -> None:
    limiter = SlidingWindow(window=0.05)
    for _ in range(1000):
        assert not limiter.check(["127.0.0.1|btcusdt"], 10**9).over
    time.sleep(0.06)  # every time recorded so far is out of the window
    assert not limiter.check(["127.0.0.1|btcusdt"], 10**9).over
    assert len(limiter._log["127.0.0.1|btcusdt"]) == 1


def test_the_limit_still_holds_within_the_window() -> None:
    limiter = SlidingWindow(window=60)
    verdicts = [limiter.check(["k"], 3).over for _ in range(5)]
    assert verdicts == [[], [], [], [0], [0]]

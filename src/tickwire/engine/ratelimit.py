"""A sliding one-second log per key: the in-process rate limiter of the memory engine."""

from __future__ import annotations

import time
from collections import deque

from tickwire.engine.base import RateVerdict


class SlidingWindow:
    """At most `limit` requests in any `window` seconds per key.

    Keys idle for a window are forgotten on the next sweep, and a busy key keeps only the
    times of its last window, so memory follows the requests of the last second (not the
    limit, which an operator may raise out of the way).
    """

    def __init__(self, window: float = 1.0) -> None:
        self._window = window
        self._log: dict[str, deque[float]] = {}
        self._last_sweep = time.monotonic()

    def check(self, keys: list[str], limit: int) -> RateVerdict:
        """Record one request for each key, or none when any key is over (see `Engine`)."""
        now = time.monotonic()
        if now - self._last_sweep > 10 * self._window:
            self._sweep(now)
        over: list[int] = []
        wait = 0.0
        for i, key in enumerate(keys):
            times = self._log.get(key)
            if times is not None and len(times) >= limit and now - times[0] < self._window:
                over.append(i)
                wait = max(wait, self._window - (now - times[0]))
        if over:
            return RateVerdict(over, wait)
        horizon = now - self._window
        for key in keys:
            times = self._log.get(key)
            if times is None or times.maxlen != limit:
                times = self._log[key] = deque(times or (), maxlen=limit)
            while times and times[0] <= horizon:
                times.popleft()
            times.append(now)
        return RateVerdict([], 0.0)

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        stale = [k for k, t in self._log.items() if not t or now - t[-1] >= self._window]
        for key in stale:
            del self._log[key]

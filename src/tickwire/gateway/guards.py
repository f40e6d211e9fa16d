"""Guards: who the client is, and how often it may ask."""

from __future__ import annotations

import time
from collections import deque

from aiohttp import web

from tickwire.errors import RateLimited


def client_ip(request: web.Request) -> str:
    """The peer's address, with `::ffff:a.b.c.d` read as `a.b.c.d`."""
    peer = request.remote or ""
    return peer[7:] if peer.startswith("::ffff:") and "." in peer else peer


class RateLimiter:
    """At most `limit` requests in any one-second window per key (a sliding log).

    Keys idle for a second are forgotten on the next sweep, so memory follows the number of
    clients and products asked in the last second.
    """

    def __init__(self, window: float = 1.0) -> None:
        self._window = window
        self._log: dict[tuple[str, ...], deque[float]] = {}
        self._last_sweep = time.monotonic()
        self.refused = 0

    def check(self, keys: list[tuple[str, ...]], limit: int, what: list[str]) -> None:
        """Record one request for each key, or raise RateLimited naming what is over."""
        now = time.monotonic()
        if now - self._last_sweep > 10 * self._window:
            self._sweep(now)
        over: list[str] = []
        wait = 0.0
        for key, name in zip(keys, what, strict=True):
            times = self._log.get(key)
            if times is not None and len(times) >= limit and now - times[0] < self._window:
                over.append(name)
                wait = max(wait, self._window - (now - times[0]))
        if over:
            self.refused += 1
            raise RateLimited(f"rate limited: {', '.join(over)} (at most {limit} per second)",
                              retry_after=wait)
        for key in keys:
            times = self._log.get(key)
            if times is None or times.maxlen != limit:
                times = self._log[key] = deque(times or (), maxlen=limit)
            times.append(now)

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        stale = [k for k, t in self._log.items() if not t or now - t[-1] >= self._window]
        for key in stale:
            del self._log[key]

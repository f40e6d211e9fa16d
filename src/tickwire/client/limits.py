"""Client-side rate limiting that matches the server's (PROTOCOL section 4).

The server allows at most N requests per key in any one-second window, counted when each
request arrives. The client cannot see arrival times, but it knows that a request arrived
before its answer did. So a request here holds a slot from the moment it is sent until one
window after its answer came back, and a new request is sent only while fewer than N slots
are held. Whatever the network's latency or jitter, the server then never counts more than
N in a window, and normal use never meets a 429.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

Key = tuple[str, ...]


@dataclass(frozen=True)
class Limits:
    """Requests per second the client allows itself; None for no client-side limit.

    The defaults are the protocol's (and the vendor's). Match them to a server configured
    otherwise, or use `Limits.none()` to leave limiting to the server (429s are retried).
    """

    quote_per_code: int | None = 3
    kline_per_code: int | None = 5
    category: int | None = 2
    symbols: int | None = 2

    @classmethod
    def none(cls) -> Limits:
        return cls(None, None, None, None)


class RateLimiter:
    """Per-key sliding windows of held slots (see the module docstring)."""

    POLL = 0.02
    """How often a request waiting only on answers still in flight looks again (s)."""

    def __init__(self, window: float = 1.0) -> None:
        self._window = window
        self._done: dict[Key, deque[float]] = {}
        self._busy: dict[Key, int] = {}

    def _wait_needed(self, keys: Sequence[Key], limit: int, now: float) -> float:
        wait = 0.0
        for key in keys:
            done = self._done.get(key)
            while done and now - done[0] >= self._window:
                done.popleft()
            held = (len(done) if done else 0) + self._busy.get(key, 0)
            if held >= limit:
                wait = max(wait, done[0] + self._window - now if done else self.POLL)
        return wait

    @asynccontextmanager
    async def hold(self, keys: Sequence[Key], limit: int | None) -> AsyncIterator[None]:
        """Wait until every key has a free slot, hold them for the request's duration."""
        if limit is None or not keys:
            yield
            return
        while (wait := self._wait_needed(keys, limit, time.monotonic())) > 0:
            await asyncio.sleep(wait)
        for key in keys:
            self._busy[key] = self._busy.get(key, 0) + 1
        try:
            yield
        finally:
            finished = time.monotonic()
            for key in keys:
                busy = self._busy[key] - 1
                if busy:
                    self._busy[key] = busy
                else:
                    del self._busy[key]
                self._done.setdefault(key, deque()).append(finished)
            self._forget_idle(finished)

    def _forget_idle(self, now: float) -> None:
        """Keys idle for a window are dropped, so memory follows the codes asked lately."""
        if len(self._done) < 256:
            return
        for key in [k for k, d in self._done.items()
                    if (not d or now - d[-1] >= self._window) and k not in self._busy]:
            del self._done[key]

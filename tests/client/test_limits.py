"""The client-side limiter: no more than N held slots per key in any window."""

from __future__ import annotations

import asyncio
import time

from tickwire.client.limits import Limits, RateLimiter


async def burst(limiter: RateLimiter, keys: list[tuple[str, ...]], limit: int | None,
                n: int, latency: float = 0.0) -> list[tuple[float, float]]:
    """n concurrent requests; each returns (sent, answered) monotonic times."""
    async def one() -> tuple[float, float]:
        async with limiter.hold(keys, limit):
            sent = time.monotonic()
            await asyncio.sleep(latency)
            return sent, time.monotonic()
    return await asyncio.gather(*(one() for _ in range(n)))


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


async def test_no_more_than_limit_sent_in_any_window() -> None:
    limiter = RateLimiter(window=0.2)
    spans = await burst(limiter, [("quote", "a")], 3, 10, latency=0.01)
    assert max_in_window([s for s, _ in spans], 0.2) <= 3
    # a request is sent a full window after an earlier one was answered
    answers = sorted(a for _, a in spans)
    sends = sorted(s for s, _ in spans)
    for i in range(3, len(sends)):
        assert sends[i] >= answers[i - 3] + 0.2 - 1e-3


async def test_keys_are_independent() -> None:
    limiter = RateLimiter(window=10)
    began = time.monotonic()
    await asyncio.gather(*(burst(limiter, [("quote", c)], 3, 3) for c in "abcdefghij"))
    assert time.monotonic() - began < 5  # 10 codes x 3: nobody waits (a wait lasts 10 s)


async def test_a_multi_key_request_waits_for_every_key() -> None:
    limiter = RateLimiter(window=0.2)
    await burst(limiter, [("quote", "a")], 2, 2)
    began = time.monotonic()
    await burst(limiter, [("quote", "a"), ("quote", "b")], 2, 1)
    assert time.monotonic() - began >= 0.15


async def test_no_limit_never_waits() -> None:
    limiter = RateLimiter(window=10)
    began = time.monotonic()
    await burst(limiter, [("quote", "a")], None, 50)
    assert time.monotonic() - began < 5  # one wait would last the 10 s window
    assert Limits.none() == Limits(None, None, None, None)
    assert Limits() == Limits(3, 5, 2, 2)  # PROTOCOL section 4

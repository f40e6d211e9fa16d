"""A rolling rate from a running total: nothing is done per event, only per look."""

from __future__ import annotations

from collections import deque


class RollingRate:
    """Events per second over about the last `window` seconds, from a total that only grows
    (`sample(now, total)`, called now and then: each status report).

    It keeps at most `slots` + 2 samples, one per `window / slots` seconds at the most, and
    measures from the newest sample at least `window` old (the oldest kept, until the
    window has passed once): a rate over `window` to `window * (1 + 1/slots)` seconds.
    """

    def __init__(self, window: float = 10.0, slots: int = 20) -> None:
        if window <= 0 or slots < 1:
            raise ValueError("rolling rate: need window > 0 and slots >= 1")
        self.window = window
        self._spacing = window / slots
        self._samples: deque[tuple[float, int]] = deque(maxlen=slots + 2)

    def sample(self, now: float, total: int) -> float:
        """Note `total` at `now` (seconds, monotonic); the rate up to now."""
        samples = self._samples
        if not samples or now - samples[-1][0] >= self._spacing:
            samples.append((now, total))
        while len(samples) > 1 and samples[1][0] <= now - self.window:
            samples.popleft()
        began, first = samples[0]
        return (total - first) / (now - began) if now > began else 0.0

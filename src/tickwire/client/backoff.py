"""Capped, jittered exponential backoff for reconnects and retries."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays of `initial * factor**n`, capped at `maximum`, each cut by up to `jitter`.

    Jitter spreads the reconnects of many clients after a server restart. With `factor` 2
    and `jitter` at most 0.5 the delays never shrink until the cap. `reset()` after a
    connection stayed healthy for `reset_after` seconds starts again from `initial`.
    """

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    reset_after: float = 30.0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    attempts: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("backoff: need 0 < initial <= maximum")
        if self.factor < 1 or not 0 <= self.jitter < 1:
            raise ValueError("backoff: need factor >= 1 and 0 <= jitter < 1")

    def next(self) -> float:
        """The delay before the next attempt; counts the attempt."""
        base = min(self.maximum, self.initial * self.factor ** min(self.attempts, 64))
        self.attempts += 1
        return base * (1 - self.jitter * self.rng.random())

    def reset(self) -> None:
        self.attempts = 0

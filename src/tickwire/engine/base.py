"""The seam between one process and many: the bus that carries encoded quotes and the store.

One interface, several implementations (in-process memory plus SQLite by default).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from tickwire.market.bars import BarRow
from tickwire.market.quotes import DayStats
from tickwire.market.state import StoredBar

Published = list[tuple[str, bytes]]
"""A batch of (product code, encoded quote body)."""


class Bus(Protocol):
    """Carries each encoded update of a subscribed product to every gateway.

    A product's latest quote is read from the market of the process that keeps it
    (`Market.body`), which encodes it when it is read.
    """

    def publish(self, batch: Published) -> None: ...

    def subscribe(self, handler: Callable[[Published], None]) -> None: ...


class Store(Protocol):
    """Durable K-lines, day statistics and the run-time allow-list."""

    def is_empty(self) -> bool: ...

    def put(self, closed: Iterable[StoredBar], forming: Iterable[StoredBar],
            stats: Iterable[tuple[str, DayStats]]) -> None: ...

    def read_bars(self, code: str, interval: str, rows: int, end_ms: int | None) -> list[BarRow]:
        """Up to `rows` bars with open time <= end_ms (any when None), newest first."""
        ...

    def load_stats(self) -> dict[str, DayStats]: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

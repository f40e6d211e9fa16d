"""The in-process bus: handlers are called synchronously in the publishing task."""

from __future__ import annotations

from collections.abc import Callable

from tickwire.engine.base import Published


class MemoryBus:
    def __init__(self) -> None:
        self._handlers: list[Callable[[Published], None]] = []

    def publish(self, batch: Published) -> None:
        if not batch:
            return
        for handler in self._handlers:
            handler(batch)

    def subscribe(self, handler: Callable[[Published], None]) -> None:
        self._handlers.append(handler)

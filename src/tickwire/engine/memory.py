"""The in-process bus: handlers are called synchronously in the publishing task."""

from __future__ import annotations

from collections.abc import Callable

from tickwire.engine.base import Published


class MemoryBus:
    def __init__(self) -> None:
        self._handlers: list[Callable[[Published], None]] = []
        self._latest: dict[str, bytes] = {}

    def publish(self, batch: Published) -> None:
        if not batch:
            return
        for code, body in batch:
            self._latest[code] = body
        for handler in self._handlers:
            handler(batch)

    def subscribe(self, handler: Callable[[Published], None]) -> None:
        self._handlers.append(handler)

    def latest(self, code: str) -> bytes | None:
        return self._latest.get(code)

"""What the client tells its user about its connection: events, also logged."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

log = logging.getLogger("tickwire.client")

EventKind = Literal[
    "connecting",     # opening the WebSocket
    "connected",      # open; every subscription is being sent again
    "disconnected",   # the WebSocket closed or failed; `message` says why
    "dead",           # nothing received (no data, no pong) for two heartbeats
    "reconnecting",   # waiting `delay` seconds before attempt number `attempt`
    "server_error",   # the server answered a message with {"code":N,"msg":...}
    "rate_limited",   # an HTTP 429 came anyway; retrying after `delay`
    "retrying",       # an HTTP request failed (5xx or network); retrying after `delay`
    "failed",         # the WebSocket cannot be used (403, 404): streams end with the error
    "closed",         # the client was closed
]

_LEVELS: dict[str, int] = {
    "disconnected": logging.WARNING, "dead": logging.WARNING, "server_error": logging.WARNING,
    "rate_limited": logging.WARNING, "retrying": logging.WARNING, "failed": logging.ERROR,
}


@dataclass(frozen=True)
class Event:
    kind: EventKind
    message: str
    attempt: int = 0
    delay: float = 0.0
    status: int = 0
    at: float = field(default_factory=time.time)
    """Wall-clock time of the event (Unix seconds)."""

    def __str__(self) -> str:
        return self.message


EventHandler = Callable[[Event], None]


class Emitter:
    """Logs every event and hands it to the user's handler; a failing handler is logged."""

    def __init__(self, handler: EventHandler | None) -> None:
        self._handler = handler

    def __call__(self, kind: EventKind, message: str, *, attempt: int = 0,
                 delay: float = 0.0, status: int = 0) -> Event:
        event = Event(kind, message, attempt, delay, status)
        log.log(_LEVELS.get(kind, logging.INFO), message,
                extra={"event": kind, "attempt": attempt, "delay": round(delay, 3)})
        if self._handler is not None:
            try:
                self._handler(event)
            except Exception:
                log.exception("on_event handler failed")
        return event

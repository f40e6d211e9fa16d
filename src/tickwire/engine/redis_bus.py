"""The bus between the ingest and the gateways: Redis pub/sub, one channel, one publisher.

Why pub/sub and not streams: a quote body is the whole state of its product, so what a
reader needs after any interruption is the newest body of each product, not the updates
it missed. Pub/sub hands each message straight to every gateway with nothing stored per
message in Redis and nothing to trim; the newest bodies are in a hash beside it.

Order: the ingest publishes every batch from one task, one after the other, on one
channel; Redis delivers a channel's messages to each subscriber in the order they were
published, so each gateway sees every product's updates in the order they happened.

A message is `header NUL code NUL body NUL code NUL body ...` (a JSON text never holds a
NUL byte: control characters in its strings are escaped, and every body was encoded here
or decoded as JSON). The header is `ingest-id:seq`, seq counting the batches the ingest
made. A gateway that sees a batch skipped (the ingest dropped batches while Redis was
away), another ingest id (the ingest restarted) or its own subscription renewed (a Redis
restart, a broken connection) reads the hash of newest bodies again and hands on those
that changed (`GatewaySide.resync`): its clients get the current quote of every product
within a few round trips, and in order: a body read from the hash is never older than one
already handed on, and before it is used a marker is sent round the bus, so that the
messages still on their way (published before the read, so older or the same) are handed
on first (`GatewaySide._fence`). A header starting with `~` is a marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from tickwire.client.backoff import Backoff
from tickwire.engine.redis_link import FAILURES, RETRY_FIRST, RETRY_MOST, Link

log = logging.getLogger("tickwire.engine")

MARKER = b"~"
"""The first byte of a marker's header."""

IDLE_PING = 1.0
"""Seconds without a message after which the listener pings Redis..."""
DEAD_AFTER = 3.0
"""...and declares the connection dead when nothing at all came for this long."""


def split_message(data: bytes) -> tuple[bytes, list[bytes]]:
    """A bus message's header, and its codes and bodies in turn."""
    parts = data.split(b"\0")
    return parts[0], parts[1:]


def parse_header(header: bytes) -> tuple[bytes, int] | None:
    """(ingest id, batch number) of a batch's header; None for a marker or garbage."""
    ingest, _, seq = header.rpartition(b":")
    if not ingest or header[:1] == MARKER or not seq.isdigit():
        return None
    return ingest, int(seq)


Handler = Callable[[bytes], None]


class Listener:
    """One pub/sub connection for every channel a process follows, kept open: on a
    failure it is opened again after a capped backoff and subscribes everything again.

    `handlers` get each message's data, by channel; `on_subscribed` runs (as a task) each
    time Redis has confirmed the subscriptions, after each (re)connect; `on_lost` is
    called when the connection is lost."""

    def __init__(self, link: Link, handlers: dict[str, Handler],
                 on_subscribed: Callable[[], Awaitable[None]] | None,
                 on_lost: Callable[[], None]) -> None:
        self._link = link
        self._handlers = {name.encode(): handler for name, handler in handlers.items()}
        self._first = next(iter(self._handlers))
        self._on_subscribed = on_subscribed
        self._on_lost = on_lost
        self._tasks: set[asyncio.Task[None]] = set()
        self.subscribed = asyncio.Event()
        self.messages = 0

    async def run(self) -> None:
        backoff = Backoff(initial=RETRY_FIRST, maximum=RETRY_MOST, reset_after=0)
        while not self._link.closing:
            pubsub = self._link.client.pubsub()
            try:
                await pubsub.subscribe(*self._handlers)
                await self._read(pubsub, backoff)
            except FAILURES as exc:
                self._link.failed(exc)
            finally:
                self.subscribed.clear()
                self._on_lost()
                with contextlib.suppress(*FAILURES):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(backoff.next())

    async def _read(self, pubsub: object, backoff: Backoff) -> None:
        get = pubsub.get_message  # type: ignore[attr-defined]
        ping = pubsub.ping  # type: ignore[attr-defined]
        handlers = self._handlers
        heard = pinged = time.monotonic()
        while not self._link.closing:
            message = await get(timeout=IDLE_PING)
            now = time.monotonic()
            if message is None:
                if now - heard > DEAD_AFTER:
                    raise TimeoutError(f"no answer on the pub/sub connection for "
                                       f"{DEAD_AFTER:g} s")
                if now - pinged >= IDLE_PING:
                    pinged = now
                    await ping()
                continue
            heard = now
            kind = message["type"]
            if kind == "message":
                handler = handlers.get(message["channel"])
                if handler is not None:
                    self.messages += 1
                    try:
                        handler(message["data"])
                    except Exception:  # one bad message must not end the subscription
                        log.exception("a message from redis could not be handled",
                                      extra={"channel": message["channel"][-40:]})
            elif kind == "subscribe" and message["channel"] == self._first:
                # one SUBSCRIBE command: the first channel's confirmation comes first
                self._link.ok()
                backoff.reset()
                self.subscribed.set()
                if self._on_subscribed is not None:
                    self._spawn(self._on_subscribed())

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

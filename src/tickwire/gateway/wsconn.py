"""One WebSocket client after its handshake: an asyncio protocol of its own.

aiohttp answers the handshake (behind the guards); then the socket is handed to a
`Connection`, and aiohttp's request, response and reader, which would otherwise live as long
as the WebSocket, are let go. What a connection holds is what the fan-out needs, a frame
parser (wsproto's, sans-IO), and its counters: ~6 KiB in all, where aiohttp's WebSocket
held ~17 (BENCHMARKS section 2).

Frames from the client are parsed by wsproto (masking, fragments, control frames, UTF-8,
close codes); a message over `max_message_bytes` is refused at the frame header that
would take it over (1009), before its payload is read. Messages are handled one after the
other, in the order they came. A close, the client's or ours, is answered and the socket
closed; a client that does not answer ours within `CLOSE_TIMEOUT` has its socket cut.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Coroutine
from typing import Any, Protocol

from wsproto.connection import Connection as FrameParser
from wsproto.connection import ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.extensions import Extension
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits

from tickwire.config import WebSocketConfig
from tickwire.wire import ws_error

log = logging.getLogger("tickwire.ws")

CLOSE_TIMEOUT = 2.0
"""Seconds a client has to answer our close frame before its socket is cut."""


class MessageBudget:
    """A token bucket for one WebSocket's incoming messages: `rate` a second, bursts of `rate`."""

    __slots__ = ("_last", "_last_drop", "_rate", "_tokens", "over_since", "warned_at")

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._tokens = rate
        self._last = time.monotonic()
        self._last_drop = 0.0
        self.over_since = 0.0
        """When the client went over and stayed over (a drop at least every second); 0 if not."""
        self.warned_at = 0.0

    def take(self, now: float) -> bool:
        self._tokens = min(self._rate, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            if self.over_since and now - self._last_drop > 1.0:
                self.over_since = 0.0
            return True
        if not self.over_since:
            self.over_since = now
        self._last_drop = now
        return False


class MessageBound(Extension):
    """A bound on one message's bytes, checked at each frame's header (wsproto's hook for
    extensions): a frame that would take its message over `limit` fails the parse with
    1009 before any of its payload is read, whatever length it claims."""

    name = "tickwire-message-bound"  # never offered: not negotiated, only applied

    __slots__ = ("_limit", "_size")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._size = 0

    def enabled(self) -> bool:
        return True

    def offer(self) -> bool:
        return False

    def frame_inbound_header(self, proto: FrameDecoder | FrameProtocol, opcode: Opcode,
                             rsv: RsvBits, payload_length: int) -> CloseReason | RsvBits:
        if opcode is Opcode.CONTINUATION:
            self._size += payload_length
        elif not opcode.iscontrol():
            self._size = payload_length
        if self._size > self._limit:
            return CloseReason.MESSAGE_TOO_BIG
        return RsvBits(False, False, False)


class Owner(Protocol):
    """What a connection needs of the hub that serves it."""

    settings: WebSocketConfig

    def handle_text(self, conn: Connection, text: str) -> Awaitable[None]: ...
    def refuse(self, conn: Connection, payload: bytes) -> None: ...
    def remove(self, conn: Connection) -> None: ...
    def lost(self, conn: Connection) -> None: ...
    def spawn(self, work: Coroutine[Any, Any, None]) -> None: ...


class Connection(asyncio.Protocol):
    """One WebSocket client. Slotted: thousands are held, and the fan-out reads `out` and
    `backlog` once per delivery."""

    __slots__ = ("_cutting", "_discarding", "_frames", "_inbox", "_partial", "backlog", "budget",
                 "closing", "codes", "counted", "errors", "gone", "hub", "ignored", "ip",
                 "last_seen", "out", "pinged", "slow_since", "transport")

    def __init__(self, hub: Owner, transport: asyncio.Transport, ip: str,
                 settings: WebSocketConfig, errors: bool = False) -> None:
        self.hub = hub
        self.transport = transport
        self.ip = ip
        self.last_seen = time.monotonic()
        self.codes: set[str] = set()
        self.out: list[bytes] = []
        """Frames of the fan-out in progress, written together as one."""
        self.backlog: dict[str, bytes] | None = None
        """While the socket is over its bound: the newest frame per product, else None."""
        self.slow_since = 0.0
        self.pinged = False
        self.closing = False
        """Out of the hub: no more pushes (a close is under way, or the socket is gone)."""
        self.gone = False
        """The socket is closed."""
        self.counted = True
        """Counted in the engine's WebSockets per IP (the guard's count, handed over, given
        back when the socket is closed)."""
        self.budget = MessageBudget(settings.messages_per_second)
        self.errors = errors
        """Opted in to error replies (`/ws?errors=1`)."""
        self.ignored = 0
        """Messages ignored without a reply (it did not opt in)."""
        self._frames = FrameParser(ConnectionType.SERVER,
                                   [MessageBound(settings.max_message_bytes)])
        self._partial: list[str] | None = None
        """The frames of a message cut into several, until its last."""
        self._inbox: deque[str] | None = None
        """Messages waiting for the one being handled; None when none is."""
        self._discarding = False
        """The client broke the protocol: what else it sends is not read."""
        self._cutting = False
        """The socket is to be cut if it is not closed by then."""

    # frames in ------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        now = self.last_seen = time.monotonic()
        self.pinged = False
        frames = self._frames
        frames.receive_data(data)
        for event in frames.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                self._fragment(event, now)
            elif isinstance(event, Ping):
                if frames.state is ConnectionState.OPEN and not self.replies_refused():
                    self.transport.write(frames.send(event.response()))
            elif isinstance(event, CloseConnection):
                self._closed_by_client(event)
                return

    def _closed_by_client(self, event: CloseConnection) -> None:
        frames = self._frames
        if frames.state is ConnectionState.REMOTE_CLOSING:  # its close: answered, then TCP
            self.transport.write(frames.send(CloseConnection(CloseReason.NORMAL_CLOSURE)))
            self._close_socket()
        elif frames.state is ConnectionState.CLOSED:  # its answer to ours
            self._close_socket()
        else:  # the frames broke the protocol (the parser's close code says how)
            self.close(event.code, event.reason or "protocol error")
            self._discarding = True
        self.hub.remove(self)

    def _fragment(self, event: TextMessage | BytesMessage, now: float) -> None:
        if self.closing:  # ours is sent: what crosses it is not answered
            return
        text = event.data if isinstance(event, TextMessage) else None
        if not event.message_finished:
            if self._partial is None:
                self._partial = []
            if text is not None:
                self._partial.append(text)
            return
        if self._partial is not None:
            if text is not None:
                text = "".join((*self._partial, text))
            self._partial = None
        self._message(text, now)

    def _message(self, text: str | None, now: float) -> None:
        """A whole message: its text, or None for a binary one."""
        hub = self.hub
        if not self.budget.take(now):
            if now - self.budget.warned_at >= 1.0:  # one reply a second, not one per message
                self.budget.warned_at = now
                hub.refuse(self, ws_error(429, "too many messages: at most "
                                         f"{hub.settings.messages_per_second:g} a second; "
                                         "messages over it are dropped"))
            return
        if text is None:
            hub.refuse(self, ws_error(400, "binary frames are not supported; send JSON text"))
        elif self._inbox is None:
            self._inbox = deque((text,))
            hub.spawn(self._handle_inbox())
        else:
            self._inbox.append(text)

    async def _handle_inbox(self) -> None:
        inbox = self._inbox
        try:
            while inbox and not self.closing:
                await self.hub.handle_text(self, inbox.popleft())
        except Exception:  # a fault of ours: this connection ends, the server goes on
            log.exception("handling a client message failed", extra={"ip": self.ip})
            self.close(CloseReason.INTERNAL_ERROR, "internal error")
            self.hub.remove(self)
        finally:
            self._inbox = None

    # frames out -----------------------------------------------------------------------------

    def replies_refused(self) -> bool:
        """Replies (pongs, a message's answer) are not written while more than twice
        `max_pending_bytes` wait on this socket: the fan-out never queues past the bound,
        so a reader that is only slow gets its replies, and one that asks and never reads
        cannot make the server hold more."""
        return self.transport.get_write_buffer_size() > 2 * self.hub.settings.max_pending_bytes

    def ping(self) -> None:
        if self._frames.state is ConnectionState.OPEN and not self.transport.is_closing():
            self.transport.write(self._frames.send(Ping()))

    def close(self, code: int, reason: str) -> None:
        """Our close frame; the socket closes when the client answers, or is cut after
        `CLOSE_TIMEOUT`. What it sends meanwhile is read (a socket closed with unread bytes
        would be reset, and the client could lose our close frame)."""
        if self.gone:
            return
        frames = self._frames
        if not self.transport.is_closing() and frames.state in (ConnectionState.OPEN,
                                                                ConnectionState.REMOTE_CLOSING):
            self.transport.write(frames.send(CloseConnection(code, reason)))
        self._cut_later()

    def _close_socket(self) -> None:
        """Close once what waits is sent; cut if that takes over `CLOSE_TIMEOUT` (a client
        that stopped reading would otherwise hold the socket, and its place, for ever)."""
        self.transport.close()
        self._cut_later()

    def _cut_later(self) -> None:
        if not self._cutting:
            self._cutting = True
            asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self._cut)

    def _cut(self) -> None:
        if not self.gone:
            self.transport.abort()

    # the socket -----------------------------------------------------------------------------

    def eof_received(self) -> bool | None:
        self.hub.remove(self)
        self._cut_later()
        return None  # the client is done: the socket closes once what waits is sent

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone = True
        self._inbox = None
        self.hub.lost(self)

"""The WebSocket `/ws`: subscriptions and fan-out (each client a `wsconn.Connection`).

Each update is encoded and framed once; the same bytes go to every subscriber, and a
connection's frames from one batch leave in one write. What waits for a connection is
bounded: while its socket buffer is over `max_pending_bytes` only the newest snapshot per
product is kept (conflation), and a connection that stays over the bound for `slow_timeout`
is closed with 1008. Liveness: a connection silent for `ping_interval` gets a protocol ping;
one silent for `idle_timeout` is closed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import WSCloseCode, hdrs, web
from aiohttp.http import WS_KEY

from tickwire.config import WebSocketConfig
from tickwire.engine.base import Engine
from tickwire.engine.conflate import keep_newest
from tickwire.errors import TickwireError
from tickwire.gateway.access import client_ip
from tickwire.gateway.guards import HANDED_OVER, Refusals
from tickwire.gateway.responses import SERVER
from tickwire.gateway.state import GATEWAY
from tickwire.gateway.wsconn import CLOSE_TIMEOUT, Connection, MessageBudget
from tickwire.wire import pong, push_message, split_codes, text_frame, ws_error

__all__ = ["HANDED_OVER", "Connection", "Hub", "MessageBudget", "fit_burst", "websocket"]

log = logging.getLogger("tickwire.ws")

_decode = msgspec.json.decode
MAX_UNKNOWN_REPORTED = 10
"""Unknown codes in one request reported one by one; the rest are summed up in one message."""


@dataclass
class HubStats:
    deliveries: int = 0
    conflated: int = 0
    slow_closed: int = 0
    idle_closed: int = 0
    ignored: int = 0


MAX_BURST = 100_000
"""Deliveries one fan-out hands to sockets at most, give or take each product's newest
update. When more are waiting (the gateway fell behind its feed), the oldest updates of
products that have a newer one waiting are dropped (conflated) to fit: the fan-out stays
busy with the newest quotes, a burst costs at most ~50 ms, and what waits stays bounded."""


WRITELINES_FROM = 32
"""Frames from which one write is cheaper as `writelines` (uvloop hands the frames, shared by
every subscriber, to one writev) than joined into one bytes first (a copy of each): measured
~20% less CPU per frame at 100 frames, ~10% more at 10."""


def fit_burst(updates: list[tuple[str, bytes]], subscribers: dict[str, set[Connection]],
              budget: int) -> list[tuple[str, bytes]]:
    """`updates` cut to about `budget` deliveries (`keep_newest`). Under overload this runs
    for every update published, so it does a set lookup for most of them and nothing more."""
    def deliveries(code: str, body: bytes) -> int:
        subs = subscribers.get(code)
        return len(subs) if subs else 0

    return keep_newest(updates, budget, deliveries)


class Hub:
    """Who is subscribed to what, and delivery of encoded updates to them."""

    def __init__(self, settings: WebSocketConfig, engine: Engine, refusals: Refusals) -> None:
        self.settings = settings
        self.refusals = refusals
        self._engine = engine
        self.subscribers: dict[str, set[Connection]] = {}
        """Connections by code; a code is here while it has one, and watched in the engine."""
        self.connections: set[Connection] = set()
        """Connections served: subscribed or not, not closing."""
        self.sockets: set[Connection] = set()
        """Every connection whose socket is open, closing ones too."""
        self.closed = False
        """Shutting down: a handshake that passed the guards meanwhile is refused."""
        self.stats = HubStats()
        self._background: set[asyncio.Task[None]] = set()
        self._pending: list[tuple[str, bytes]] = []
        """Updates published since the last fan-out, oldest first."""
        self._handed: dict[str, bytes] = {}
        """The body last fanned out of each code with subscribers: a snapshot read while it
        was handed on to the new subscriber too is not sent to it twice."""
        self._fan_out_soon: asyncio.Handle | None = None
        self.max_burst = MAX_BURST
        engine.subscribe(self.on_batch)

    def _known(self, code: str) -> bool:
        return code in self._engine.catalogue().products

    @property
    def subscription_count(self) -> int:
        return sum(len(c.codes) for c in self.connections)

    # delivery ------------------------------------------------------------------------------
    #
    # A batch published waits for the next turn of the event loop (`call_soon`), so batches
    # published in one turn (several feeds, an exchange's messages read at once) leave
    # together: each connection gets one write per turn whatever the number of updates.
    # Each update is framed once; a subscriber costs one `list.append` (`_fan_out`), and
    # each connection one write (`_flush`).

    def on_batch(self, batch: list[tuple[str, bytes]]) -> None:
        """Bus handler: the updates wait for the fan-out of this turn of the loop."""
        self._pending += batch
        if self._fan_out_soon is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a plain call): at once
                self._fan_out()
                return
            self._fan_out_soon = loop.call_soon(self._fan_out)

    def _fan_out(self) -> None:
        self._fan_out_soon = None
        updates, self._pending = self._pending, []
        subscribers = self.subscribers
        stats = self.stats
        waiting = sum(len(subscribers.get(code, ())) for code, _ in updates) \
            if len(updates) > 1 else 0
        if waiting > self.max_burst:
            updates = fit_burst(updates, subscribers, self.max_burst)
            stats.conflated += waiting - sum(len(subscribers.get(code, ()))
                                             for code, _ in updates)
        dirty: list[Connection] = []
        code_of: dict[int, str] = {}
        """A frame's product, by the frame's id (frames live until the writes below), for
        `_flush`'s conflation; one entry per update, nothing per subscriber."""
        delivered = 0
        handed = self._handed
        for code, body in updates:
            subs = subscribers.get(code)
            if not subs:
                continue
            handed[code] = body
            frame = text_frame(push_message(body))
            code_of[id(frame)] = code
            delivered += len(subs)
            for conn in subs:
                out = conn.out
                if out:
                    out.append(frame)
                elif conn.backlog is None:
                    out.append(frame)
                    dirty.append(conn)
                else:
                    conn.backlog[code] = frame
                    stats.conflated += 1
        stats.deliveries += delivered
        for conn in dirty:
            self._flush(conn, code_of)

    def _flush(self, conn: Connection, code_of: dict[int, str]) -> None:
        """Write `conn.out` as one. What would take the socket's pending bytes over the
        bound is first cut to the newest frame per product; if even that does not fit,
        the connection is a slow reader: its frames wait in `backlog` (newest per product)
        for `sweep` to send once the socket drains."""
        out = conn.out
        transport = conn.transport
        if conn.closing or transport.is_closing():
            out.clear()
            return
        frames = out
        size = sum(map(len, out))
        bound = self.settings.max_pending_bytes
        waiting = transport.get_write_buffer_size()
        if waiting + size > bound:
            newest = {code_of[id(frame)]: frame for frame in out}
            self.stats.conflated += len(out) - len(newest)
            frames = list(newest.values())
            if waiting + sum(map(len, frames)) > bound:
                conn.backlog = newest
                conn.slow_since = time.monotonic()
                out.clear()
                return
        if len(frames) >= WRITELINES_FROM:
            transport.writelines(frames)  # one writev of the shared frames, no copy
        else:
            transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
        out.clear()

    def _fan_out_now(self) -> None:
        """Run a pending fan-out at once (before a subscription reads its snapshots, so
        that no update older than a snapshot follows it)."""
        if self._fan_out_soon is not None:
            self._fan_out_soon.cancel()
            self._fan_out()

    def refuse(self, conn: Connection, payload: bytes) -> None:
        """An error reply, to a connection that opted in (`/ws?errors=1`). Deployed clients
        read `body` from every frame and crash on one without it (PROTOCOL section 8), so
        the others get nothing: the message is ignored, counted, and logged once."""
        if conn.errors:
            self.send(conn, payload)
            return
        self.stats.ignored += 1
        if not conn.ignored:
            log.info("ignored a client message", extra={"ip": conn.ip,
                                                        "reason": payload[:200].decode()})
        conn.ignored += 1

    def send(self, conn: Connection, payload: bytes) -> None:
        """A control message (pong, error) to one connection, ahead of any backlog (see
        `Connection.replies_refused`)."""
        if not conn.closing and not conn.transport.is_closing() and not conn.replies_refused():
            conn.transport.write(text_frame(payload))

    def handle_text(self, conn: Connection, text: str) -> Awaitable[None]:
        return _handle_text(self, conn, text)

    # subscriptions -------------------------------------------------------------------------

    async def subscribe(self, conn: Connection, codes: list[str]) -> None:
        limit = self.settings.max_codes
        fresh = [c for c in codes if c not in conn.codes and self._known(c)]
        wanted = max(len(codes), len(conn.codes) + len(fresh))
        if wanted > limit:
            self.refuse(conn, ws_error(
                400, f"too many codes: {wanted} (at most {limit} per connection); "
                     "nothing subscribed"))
            return
        unknown = [c for c in codes if not self._known(c)]
        for code in unknown[:MAX_UNKNOWN_REPORTED]:
            self.refuse(conn, ws_error(404, f"unknown code: {code[:64]}"))
        if len(unknown) > MAX_UNKNOWN_REPORTED:
            self.refuse(conn, ws_error(
                404, f"and {len(unknown) - MAX_UNKNOWN_REPORTED} more unknown codes"))
        self._fan_out_now()
        for code in fresh:
            code = sys.intern(code)  # one string per code, not one per connection and code
            conn.codes.add(code)
            subs = self.subscribers.get(code)
            if subs is None:
                subs = self.subscribers[code] = set()
                self._engine.watch(code)
            subs.add(conn)
        # the snapshots after subscribing: an update published meanwhile is not missed,
        # and one this connection got meanwhile is not sent again as its snapshot
        handed = self._handed
        before = [handed.get(code) for code in fresh]
        snapshots = await self._engine.latest(fresh) if fresh else []
        code_of: dict[int, str] = {}
        for code, was, body in zip(fresh, before, snapshots, strict=True):
            now = handed.get(code)
            if now is not was and now == body:
                continue
            if body is not None and not conn.closing:
                frame = text_frame(push_message(body))
                code_of[id(frame)] = code
                if conn.backlog is not None:
                    conn.backlog[code] = frame
                else:
                    conn.out.append(frame)
        if conn.out:
            self._flush(conn, code_of)

    def unsubscribe(self, conn: Connection, codes: list[str]) -> None:
        for code in codes:
            if code in conn.codes:
                conn.codes.discard(code)
                self._drop_subscriber(code, conn)
                if conn.backlog:
                    conn.backlog.pop(code, None)

    def _drop_subscriber(self, code: str, conn: Connection) -> None:
        subs = self.subscribers.get(code)
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del self.subscribers[code]
                self._handed.pop(code, None)
                self._engine.unwatch(code)

    def add(self, conn: Connection) -> None:
        self.connections.add(conn)
        self.sockets.add(conn)

    def lost(self, conn: Connection) -> None:
        """The connection's socket is closed: out of the hub, and its place under the cap
        per IP given back (once)."""
        self.sockets.discard(conn)
        if not conn.closing:
            self.remove(conn)
        if conn.counted:
            conn.counted = False
            self.spawn(self._engine.ws_release(conn.ip))

    def remove(self, conn: Connection) -> None:
        conn.closing = True
        self.connections.discard(conn)
        for code in conn.codes:
            self._drop_subscriber(code, conn)
        conn.codes.clear()
        conn.backlog = None
        conn.out = []

    # housekeeping --------------------------------------------------------------------------

    async def sweep_forever(self, every: float = 0.1) -> None:
        while True:
            await asyncio.sleep(every)
            self.sweep(time.monotonic())

    def sweep(self, now: float) -> None:
        """Drain backlogs that fit again, close slow and silent connections, ping quiet ones."""
        settings = self.settings
        for conn in list(self.connections):
            if conn.closing:
                continue
            if conn.backlog is not None:
                if conn.transport.is_closing():
                    continue
                if conn.transport.get_write_buffer_size() <= settings.max_pending_bytes // 2:
                    frames, conn.backlog = list(conn.backlog.values()), None
                    if frames:
                        conn.transport.write(b"".join(frames))
                elif now - conn.slow_since > settings.slow_timeout:
                    self.stats.slow_closed += 1
                    self._close(conn, WSCloseCode.POLICY_VIOLATION, "slow_reader",
                                f"slow reader: more than {settings.max_pending_bytes} bytes "
                                f"pending for {settings.slow_timeout:g} s")
                    continue
            if conn.budget.over_since and now - conn.budget.over_since > settings.flood_timeout:
                self._close(conn, WSCloseCode.POLICY_VIOLATION, "ws_flood",
                            f"message flood: over {settings.messages_per_second:g} messages "
                            f"a second for {settings.flood_timeout:g} s")
                continue
            silent = now - conn.last_seen
            if silent > settings.idle_timeout:
                self.stats.idle_closed += 1
                self._close(conn, WSCloseCode.GOING_AWAY, "idle",
                            f"idle: nothing received for {settings.idle_timeout:g} s")
            elif silent > settings.ping_interval and not conn.pinged:
                conn.pinged = True
                conn.ping()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _close(self, conn: Connection, code: int, kind: str, reason: str) -> None:
        self.refusals.note(kind, conn.ip, reason)
        self.remove(conn)
        conn.close(code, reason)

    def close_unallowed(self, allows: Callable[[str], bool]) -> None:
        """Close (1008) the connections of addresses that `allows` refuses: the allow-list
        changed under them."""
        for conn in list(self.connections):
            if not conn.closing and not allows(conn.ip):
                self._close(conn, WSCloseCode.POLICY_VIOLATION, "not_authorized",
                            f"IP {conn.ip} is not authorized")

    async def close_all(self, reason: str = "server shutting down") -> None:
        """Close every connection (1001; those closing already as they were) and wait until
        their sockets are closed (each is cut after `CLOSE_TIMEOUT`), then for what they
        gave back."""
        self.closed = True
        for conn in list(self.sockets):
            if not conn.closing:
                self.remove(conn)
            conn.close(WSCloseCode.GOING_AWAY, reason)
        deadline = time.monotonic() + CLOSE_TIMEOUT + 0.5
        while self.sockets and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


def parse_codes(value: Any) -> list[str] | None:
    """The codes of a `Key`/`UnKey` value; None if it is not a string."""
    return split_codes(value) if isinstance(value, str) else None


async def _handle_text(hub: Hub, conn: Connection, text: str) -> None:
    try:
        message = _decode(text)
    except (msgspec.DecodeError, RecursionError):
        hub.refuse(conn, ws_error(400, "malformed JSON"))
        return
    if not isinstance(message, dict):
        hub.refuse(conn, ws_error(400, "a message must be a JSON object"))
        return
    if "ping" in message:
        hub.send(conn, pong(message["ping"]))
    elif "Key" in message:
        codes = parse_codes(message["Key"])
        if codes is None:
            hub.refuse(conn, ws_error(400, "Key must be a string of comma-separated codes"))
        else:
            await hub.subscribe(conn, codes)
    elif "UnKey" in message:
        codes = parse_codes(message["UnKey"])
        if codes is None:
            hub.refuse(conn, ws_error(400, "UnKey must be a string of comma-separated codes"))
        else:
            hub.unsubscribe(conn, codes)
    else:
        hub.refuse(conn, ws_error(400, "unknown message: expected ping, Key or UnKey"))


async def websocket(request: web.Request) -> web.StreamResponse:
    """`/ws` (and an upgrade on `/`): the handshake (the guards have let it through), then
    the socket handed to a `Connection`. `?errors=1` opts in to error replies."""
    gateway = request.app[GATEWAY]
    settings = gateway.config.websocket
    handshake = web.WebSocketResponse(autoping=False, compress=False)
    if not handshake.can_prepare(request).ok:
        await handshake.prepare(request)  # raises what is wrong with it (400, 426...)
    hub = gateway.hub
    if hub.closed:
        raise TickwireError("server shutting down", 503)
    transport, protocol = request.transport, request.protocol
    if transport is None or transport.is_closing():
        raise ConnectionResetError("the client left during the handshake")
    conn = Connection(hub, transport, client_ip(request),  # type: ignore[arg-type]
                      settings, errors=request.query.get("errors") == "1")
    # bytes a client sent before reading the 101 (RFC 6455 says it must not; some do)
    early = bytes(getattr(protocol, "_message_tail", b""))
    request[HANDED_OVER] = True
    transport.write(_switching_protocols(request.headers[hdrs.SEC_WEBSOCKET_KEY]))
    # from here the socket's bytes are the connection's; aiohttp lets go of it without
    # closing it (its protocol forgets the transport, then is told the connection is
    # lost), and with it of the request
    transport.set_protocol(conn)
    protocol.transport = None
    protocol.connection_lost(None)
    _bound_kernel_buffer(transport, settings.max_pending_bytes)
    hub.add(conn)
    if not transport.is_reading():  # aiohttp pauses a socket that sent much before the 101
        transport.resume_reading()
    if early:
        conn.data_received(early)
    return web.Response(status=101)  # not sent: aiohttp has no socket to send it on


def _switching_protocols(key: str) -> bytes:
    """The handshake's answer (RFC 6455 section 4.2.2)."""
    accept = base64.b64encode(hashlib.sha1(key.encode() + WS_KEY).digest())
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept +
            b"\r\nServer: " + SERVER.encode() + b"\r\n\r\n")


def _bound_kernel_buffer(transport: asyncio.BaseTransport, size: int) -> None:
    """Cap the kernel's send buffer too, so a stopped reader holds a bounded amount there."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, max(size, 65_536))

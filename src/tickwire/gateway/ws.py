"""The WebSocket `/ws`: subscriptions and fan-out.

Each update is encoded and framed once; the same bytes go to every subscriber, and a
connection's frames from one batch leave in one write. What waits for a connection is
bounded: while its socket buffer is over `max_pending_bytes` only the newest snapshot per
product is kept (conflation), and a connection that stays over the bound for `slow_timeout`
is closed with 1008. Liveness: a connection silent for `ping_interval` gets a protocol ping;
one silent for `idle_timeout` is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import WSCloseCode, WSMsgType, web

from tickwire.config import WebSocketConfig
from tickwire.engine.base import Engine
from tickwire.gateway.access import client_ip
from tickwire.gateway.guards import Refusals
from tickwire.gateway.state import GATEWAY
from tickwire.wire import pong, push_message, split_codes, text_frame, ws_error

log = logging.getLogger("tickwire.ws")

_decode = msgspec.json.decode
MAX_UNKNOWN_REPORTED = 10
"""Unknown codes in one request reported one by one; the rest are summed up in one message."""


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


@dataclass(eq=False, slots=True)
class Connection:
    """One WebSocket client. Slotted: thousands are held, and the fan-out reads `out` and
    `backlog` once per delivery."""

    ws: web.WebSocketResponse
    transport: asyncio.Transport
    ip: str
    last_seen: float
    codes: set[str] = field(default_factory=set)
    out: list[bytes] = field(default_factory=list)
    """Frames of the fan-out in progress, written together as one."""
    backlog: dict[str, bytes] | None = None
    """While the socket is over its bound: the newest frame per product, else None."""
    slow_since: float = 0.0
    pinged: bool = False
    closing: bool = False
    budget: MessageBudget = field(default_factory=lambda: MessageBudget(1.0))
    errors: bool = False
    """Opted in to error replies (`/ws?errors=1`)."""
    ignored: int = 0
    """Messages ignored without a reply (it did not opt in)."""


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
    """`updates` (oldest first) cut to about `budget` deliveries: the newest updates while
    they fit, and before them the newest update of each other product; so every product's
    newest is kept and one product's updates keep their order. Under overload this runs
    for every update published, so it does a set lookup for most of them and nothing more."""
    spent = 0
    cut = len(updates)
    while cut > 0:
        subs = subscribers.get(updates[cut - 1][0])
        n = len(subs) if subs else 0
        if spent + n > budget:
            break
        spent += n
        cut -= 1
    newest = updates[cut:]
    seen = {code for code, _ in newest}
    older = []
    for update in reversed(updates[:cut]):
        if update[0] not in seen:
            seen.add(update[0])
            older.append(update)
    older.reverse()
    return older + newest


class Hub:
    """Who is subscribed to what, and delivery of encoded updates to them."""

    def __init__(self, settings: WebSocketConfig, engine: Engine, refusals: Refusals) -> None:
        self.settings = settings
        self.refusals = refusals
        self._engine = engine
        self.subscribers: dict[str, set[Connection]] = {}
        """Connections by code; a code is here while it has one, and watched in the engine."""
        self.connections: set[Connection] = set()
        self.stats = HubStats()
        self._background: set[asyncio.Task[None]] = set()
        self._pending: list[tuple[str, bytes]] = []
        """Updates published since the last fan-out, oldest first."""
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
        for code, body in updates:
            subs = subscribers.get(code)
            if not subs:
                continue
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
        if conn.closing or transport is None or transport.is_closing():
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
        """A control message (pong, error) to one connection, ahead of any backlog."""
        if not conn.closing and not self._transport_gone(conn):
            conn.transport.write(text_frame(payload))

    @staticmethod
    def _transport_gone(conn: Connection) -> bool:
        return conn.transport is None or conn.transport.is_closing()

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
        # the snapshots after subscribing: an update published meanwhile is not missed
        code_of: dict[int, str] = {}
        for code, body in zip(fresh, await self._engine.latest(fresh) if fresh else (),
                              strict=True):
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
                self._engine.unwatch(code)

    def add(self, conn: Connection) -> None:
        self.connections.add(conn)

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
                if self._transport_gone(conn):
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
                self._spawn(self._ping(conn))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _ping(self, conn: Connection) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await conn.ws.ping()

    def _close(self, conn: Connection, code: int, kind: str, reason: str) -> None:
        self.refusals.note(kind, conn.ip, reason)
        self.remove(conn)
        self._spawn(_close_or_abort(conn, code, reason))

    def close_unallowed(self, allows: Callable[[str], bool]) -> None:
        """Close (1008) the connections of addresses that `allows` refuses: the allow-list
        changed under them."""
        for conn in list(self.connections):
            if not conn.closing and not allows(conn.ip):
                self._close(conn, WSCloseCode.POLICY_VIOLATION, "not_authorized",
                            f"IP {conn.ip} is not authorized")

    async def close_all(self, reason: str = "server shutting down") -> None:
        conns = list(self.connections)
        for conn in conns:
            self.remove(conn)
        await asyncio.gather(
            *(_close_or_abort(c, WSCloseCode.GOING_AWAY, reason) for c in conns),
            return_exceptions=True,
        )


async def _close_or_abort(conn: Connection, code: int, reason: str) -> None:
    """Send a close frame; a peer that does not read gets its socket cut after 2 s."""
    try:
        await asyncio.wait_for(conn.ws.close(code=code, message=reason.encode()), 2.0)
    except (TimeoutError, ConnectionError, RuntimeError):
        pass
    finally:
        if conn.transport is not None and not conn.transport.is_closing():
            conn.transport.abort()


def parse_codes(value: Any) -> list[str] | None:
    """The codes of a `Key`/`UnKey` value; None if it is not a string."""
    return split_codes(value) if isinstance(value, str) else None


async def handle_messages(hub: Hub, conn: Connection) -> None:
    """Read a connection's messages until it closes."""
    ws = conn.ws
    async for msg in ws:
        now = conn.last_seen = time.monotonic()
        conn.pinged = False
        if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY) and not conn.budget.take(now):
            if now - conn.budget.warned_at >= 1.0:  # one reply a second, not one per message
                conn.budget.warned_at = now
                hub.refuse(conn, ws_error(429, "too many messages: at most "
                                        f"{hub.settings.messages_per_second:g} a second; "
                                        "messages over it are dropped"))
            continue
        if msg.type == WSMsgType.TEXT:
            await _handle_text(hub, conn, msg.data)
        elif msg.type == WSMsgType.BINARY:
            hub.refuse(conn, ws_error(400, "binary frames are not supported; send JSON text"))
        elif msg.type == WSMsgType.PING:
            await ws.pong(msg.data)
        elif msg.type == WSMsgType.ERROR:
            break


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
    the connection's life. `?errors=1` opts in to error replies."""
    gateway = request.app[GATEWAY]
    settings = gateway.config.websocket
    ws = web.WebSocketResponse(autoping=False, compress=False,
                               max_msg_size=settings.max_message_bytes)
    await ws.prepare(request)
    transport = request.transport
    assert transport is not None
    _bound_kernel_buffer(transport, settings.max_pending_bytes)
    conn = Connection(ws, transport, client_ip(request), time.monotonic(),  # type: ignore[arg-type]
                      budget=MessageBudget(settings.messages_per_second),
                      errors=request.query.get("errors") == "1")
    hub = gateway.hub
    hub.add(conn)
    try:
        await handle_messages(hub, conn)
    finally:
        hub.remove(conn)
    return ws


def _bound_kernel_buffer(transport: asyncio.BaseTransport, size: int) -> None:
    """Cap the kernel's send buffer too, so a stopped reader holds a bounded amount there."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, max(size, 65_536))

"""The ingest's half of the local engine: the memory engine, and a Unix socket that gateway
processes on this machine connect to.

Each gateway gets the updates the ingest publishes (those of codes some gateway watches),
encoded once, framed once for all. The kernel holds about one fan-out's worth for each
(`SOCKET_BUFFER`), so a gateway that is behind reads a long run at once. A gateway that
falls behind does not hold the ingest up, and its backlog does not grow: once
`HIGH_WATER` more bytes wait for it, its updates wait here instead, bounded (past
`HELD_BYTES` the oldest of products with a newer one held are dropped: conflation), and
leave in order once it has read what was waiting. So a gateway's core is spent on the
updates it can deliver, whatever the rate. Everything else a gateway asks (newest
quotes, K-lines, the allow-list, WebSocket counts across gateways, rate limits) is a
call, answered from this process's memory and store. A gateway that goes away gives its
WebSocket counts back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

import msgspec

from tickwire.catalogue import Catalogue
from tickwire.config import ConfigError
from tickwire.engine import local_wire as wire
from tickwire.engine.base import AllowSnapshot, IngestStatus, Published, RateVerdict
from tickwire.engine.conflate import keep_newest
from tickwire.engine.memory import MemoryEngine
from tickwire.engine.redis_calls import AllowAdd, AllowRemove, KlinesCall
from tickwire.engine.sqlite import SqliteStore
from tickwire.errors import TickwireError
from tickwire.market import Market
from tickwire.market.state import StoredBar
from tickwire.models import WINDOW

log = logging.getLogger("tickwire.engine")

ALLOW_EVERY = 0.25
"""Seconds between reads of the stored allow-list, for changes `tickwire allow --data-dir`
made there: a newer one is announced to every gateway."""
SOCKET_BUFFER = 1 << 20
"""Bytes the kernel may hold for a gateway (`SO_SNDBUF`, capped by `net.core.wmem_max`):
about one fan-out's worth (`MAX_BURST` deliveries at 100 subscribers an update), so a
gateway that is behind reads all of it in one turn and writes each client fewer, fuller
writes, while what waits stays fresh."""
HIGH_WATER = 256 << 10
"""Bytes that may wait here beyond the socket before a gateway's updates are held."""
HELD_BYTES = 1 << 20
"""Bytes of updates held for a gateway that is behind, about: beyond, the oldest that
have a newer update of their product held are dropped (`keep_newest`)."""

MAX_RESTORED = 1_000_000
"""WebSockets of one IP a gateway may say it holds when it connects again."""


class _GatewayLink(asyncio.Protocol):
    """One gateway process, connected."""

    def __init__(self, ingest: LocalIngest) -> None:
        self._ingest = ingest
        self._reader = wire.FrameReader()
        self.transport: asyncio.Transport | None = None
        self.watching: set[str] = set()
        self.ws: Counter[str] = Counter()
        """This gateway's WebSockets per IP, inside the ingest's counts."""
        self.held: Published | None = None
        """While the gateway is behind: the updates waiting, in order (`hold`)."""
        self.held_bytes = 0
        self.replies: list[bytes] = []
        """While updates are held: answers, to follow them (`reply`)."""
        self.calls = 0

    # the socket ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.set_write_buffer_limits(high=HIGH_WATER)
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
        self._ingest.links.add(self)
        catalogue = self._ingest.catalogue()
        self.transport.write(wire.frame(wire.HELLO, wire.encode(wire.Hello(
            catalogue.categories, list(catalogue.products.values())))))
        status = self._ingest.status_frame
        if status is not None:
            self.transport.write(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self._ingest.dropped(self)

    def pause_writing(self) -> None:
        if self.held is None:
            self.held, self.held_bytes = [], 0

    def resume_writing(self) -> None:
        held, self.held = self.held, None
        replies, self.replies = self.replies, []
        if held:
            self._write_batch(held)
        if replies:
            self.writelines(replies)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._reader.feed(data)
            for kind, payload in frames:
                self._take(kind, payload)
        except (wire.FrameError, msgspec.DecodeError, UnicodeDecodeError) as exc:
            log.warning("a gateway broke the local engine's protocol; cut off",
                        extra={"reason": str(exc)[:200]})
            self.cut_off()

    def _take(self, kind: bytes, payload: bytes) -> None:
        if kind == wire.WATCH:
            code = payload.decode()
            if code not in self.watching:
                self.watching.add(code)
                self._ingest.link_watched[code] += 1
        elif kind == wire.UNWATCH:
            code = payload.decode()
            if code in self.watching:
                self.watching.discard(code)
                self._ingest.unwatched_by_link(code)
        elif kind == wire.CALL:
            request = wire.decode_request(payload)
            if self.calls >= wire.MAX_WAITING:
                self.reply(wire.Reply(request.id, "the ingest is busy: too many calls", 503))
                return
            self.calls += 1
            self._ingest.spawn(self._answer(request))
        else:
            raise wire.FrameError(f"unknown frame kind {kind!r}")

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def cut_off(self) -> None:
        """Closed at once, what waits for it dropped (a peer that does not read would
        never let a close finish)."""
        if self.transport is not None:
            self.transport.abort()

    # what goes to the gateway -------------------------------------------------------------

    def hold(self, batch: Published) -> None:
        """While the gateway is behind its updates wait here; past `HELD_BYTES` the older
        half is conflated (each product's newest kept, one product's order too), so what
        the gateway reads next is a long run of recent updates: many for each write to a
        client, which is what a fan-out behind needs."""
        held = self.held
        assert held is not None
        held += batch
        self.held_bytes += sum(len(body) for _, body in batch)
        if self.held_bytes > HELD_BYTES:
            kept = keep_newest(held, HELD_BYTES // 2, _size)
            self._ingest.conflated += len(held) - len(kept)
            self.held = kept
            self.held_bytes = sum(len(body) for _, body in kept)

    def _write_batch(self, batch: Published) -> None:
        self.writelines(wire.batch_frames(batch))

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def writelines(self, frames: list[bytes]) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.writelines(frames)

    def reply(self, reply: wire.Reply) -> None:
        """An answer goes after the updates sent before it: a quote read now must not
        reach the gateway ahead of older updates of its product still held here (its
        clients would get the newer, then the older). A gateway that leaves `MAX_WAITING`
        answers unread is cut off: it reconnects, and is told everything again."""
        data = wire.frame(wire.REPLY, wire.encode(reply))
        if self.held is None:
            self.write(data)
        elif len(self.replies) < wire.MAX_WAITING:
            self.replies.append(data)
        else:
            log.warning("a gateway left too many answers unread; cut off")
            self.cut_off()

    async def _answer(self, request: wire.Request) -> None:
        try:
            reply = await self._ingest.answer(self, request.id, request.call)
        except TickwireError as exc:
            reply = wire.Reply(request.id, exc.msg, exc.status or 503)
        except Exception:
            log.exception("a gateway's call failed", extra={"call": type(request.call).__name__})
            reply = wire.Reply(request.id, "the ingest failed to answer", 500)
        finally:
            self.calls -= 1
        self.reply(reply)


class LocalIngest:
    """The engine of an ingest (role "ingest", or "all" serving clients itself too) whose
    gateway processes on this machine connect to `path`."""

    kind = "local"

    def __init__(self, path: Path, catalogue: Catalogue, market: Market,
                 store: SqliteStore, role: str = "all") -> None:
        self.role = role
        self._path = path
        self._market = market
        self._memory = MemoryEngine(catalogue, market, store)
        self.links: set[_GatewayLink] = set()
        self.link_watched: Counter[str] = Counter()
        """Codes the gateway processes watch, each counted once per gateway."""
        self.status_frame: bytes | None = None
        self.conflated = 0
        """Updates not sent to a gateway that was behind (a newer one of the code was)."""
        self._server: asyncio.AbstractServer | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._allow_version = -1

    def catalogue(self) -> Catalogue:
        return self._memory.catalogue()

    # the ingest's side ---------------------------------------------------------------------

    def publish(self, batch: Published) -> None:
        """To this process's own gateway, and to each gateway process: the same frame to
        every one keeping up (each picks the codes it watches), held for one behind."""
        self._memory.publish(batch)
        frames = None
        for link in self.links:
            if link.held is not None:
                link.hold(batch)
                continue
            if frames is None:
                frames = wire.batch_frames(batch)
            link.writelines(frames)

    def watched(self, code: str) -> bool:
        return code in self.link_watched or self._memory.watched(code)

    def report(self, status: IngestStatus) -> None:
        self._memory.report(status)
        self.status_frame = wire.frame(wire.STATUS, wire.encode(status))
        for link in self.links:
            link.write(self.status_frame)

    def bars(self, closed: list[StoredBar], forming: list[StoredBar]) -> None:
        pass  # gateways ask for K-lines, answered from the market's own series

    def restored(self) -> None:
        """The market was loaded again: each gateway gets the newest of what it watches."""
        body = self._market.body
        for link in self.links:
            bodies = [(code, body(code)) for code in link.watching]
            newest = [(code, b) for code, b in bodies if b is not None]
            if link.held is not None:
                link.hold(newest)
            else:
                link.writelines(wire.batch_frames(newest))

    # this process's own gateway (role "all") -----------------------------------------------

    def subscribe(self, handler: Callable[[Published], None]) -> None:
        self._memory.subscribe(handler)

    def watch(self, code: str) -> None:
        self._memory.watch(code)

    def unwatch(self, code: str) -> None:
        self._memory.unwatch(code)

    async def latest(self, codes: list[str]) -> list[bytes | None]:
        return await self._memory.latest(codes)

    async def klines(self, code: str, interval: str, rows: int,
                     end_ms: int | None) -> list[bytes]:
        return await self._memory.klines(code, interval, rows, end_ms)

    async def status(self) -> IngestStatus | None:
        return await self._memory.status()

    async def allow_list(self) -> AllowSnapshot:
        return await self._memory.allow_list()

    async def allow_changed(self, within: float) -> None:
        await self._memory.allow_changed(within)

    async def allow_add(self, cidr: str, note: str) -> AllowSnapshot:
        snapshot = await self._memory.allow_add(cidr, note)
        self._announce(snapshot)
        return snapshot

    async def allow_remove(self, cidr: str) -> tuple[bool, AllowSnapshot]:
        changed, snapshot = await self._memory.allow_remove(cidr)
        self._announce(snapshot)
        return changed, snapshot

    async def ws_acquire(self, ip: str, cap: int) -> bool:
        return await self._memory.ws_acquire(ip, cap)

    async def ws_release(self, ip: str) -> None:
        await self._memory.ws_release(ip)

    async def rate_check(self, keys: list[str], limit: int) -> RateVerdict:
        return await self._memory.rate_check(keys, limit)

    # the gateways' calls -------------------------------------------------------------------

    async def answer(self, link: _GatewayLink, call_id: int, call: object) -> wire.Reply:
        if isinstance(call, wire.RateCall):
            verdict = await self.rate_check(call.keys, call.limit)
            return wire.Reply(call_id, over=verdict.over, retry_after=verdict.retry_after)
        if isinstance(call, wire.WsAcquire):
            admitted = await self.ws_acquire(call.ip, call.cap)
            if admitted:
                link.ws[call.ip] += 1
            return wire.Reply(call_id, admitted=admitted)
        if isinstance(call, wire.WsRelease):
            if link.ws[call.ip] > 0:
                link.ws[call.ip] -= 1
                await self.ws_release(call.ip)
            return wire.Reply(call_id)
        if isinstance(call, wire.WsRestore):
            if any(not 0 < n <= MAX_RESTORED for n in call.counts.values()):
                return wire.Reply(call_id, f"WebSocket counts must be 1 to {MAX_RESTORED}", 400)
            for ip, count in call.counts.items():
                for _ in range(count):
                    await self.ws_acquire(ip, 1 << 30)  # admitted already: counted again
                link.ws[ip] += count
            return wire.Reply(call_id)
        if isinstance(call, wire.LatestCall):
            return wire.Reply(call_id, bodies=await self.latest(call.codes))
        if isinstance(call, KlinesCall):
            if call.code not in self._market.products or call.interval not in WINDOW:
                return wire.Reply(call_id, f"unknown code or interval: {call.code[:64]} "
                                           f"{call.interval[:8]}", 404)
            return wire.Reply(call_id, bars=await self.klines(call.code, call.interval,
                                                              call.rows, call.end_ms))
        if isinstance(call, wire.AllowListCall):
            return wire.Reply(call_id, allow=await self.allow_list())
        if isinstance(call, AllowAdd):
            return wire.Reply(call_id, changed=True,
                              allow=await self.allow_add(call.cidr, call.note))
        if isinstance(call, AllowRemove):
            changed, snapshot = await self.allow_remove(call.cidr)
            return wire.Reply(call_id, changed=changed, allow=snapshot)
        return wire.Reply(call_id, "unknown call", 400)

    def _announce(self, snapshot: AllowSnapshot) -> None:
        if snapshot.version <= self._allow_version:
            return
        self._allow_version = snapshot.version
        data = wire.frame(wire.ALLOW, wire.encode(snapshot))
        for link in self.links:
            link.write(data)

    async def _follow_allow(self) -> None:
        while True:
            await asyncio.sleep(ALLOW_EVERY)
            if self.links:
                try:
                    self._announce(await self.allow_list())
                except Exception:
                    log.exception("reading the allow-list failed")

    def unwatched_by_link(self, code: str) -> None:
        left = self.link_watched[code] - 1
        if left > 0:
            self.link_watched[code] = left
        else:
            del self.link_watched[code]

    def dropped(self, link: _GatewayLink) -> None:
        """A gateway went away: its watched codes and WebSockets stop counting at once."""
        self.links.discard(link)
        for code in link.watching:
            self.unwatched_by_link(code)
        link.watching.clear()
        for ip, count in link.ws.items():
            for _ in range(count):
                self.spawn(self.ws_release(ip))
        link.ws.clear()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # life ----------------------------------------------------------------------------------

    def health(self) -> dict[str, object]:
        return {"kind": self.kind, "role": self.role, "gateways": len(self.links),
                "conflated": self.conflated}

    async def start(self) -> None:
        path = self._path
        if _listening(path):
            raise ConfigError(f"engine.socket: another ingest already listens on {path}")
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by an ingest that did not stop cleanly
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # only this user's processes may join: the socket is made with that mode (a chmod
        # after the bind would leave a moment in which anyone could)
        umask = os.umask(0o177)
        try:
            listener.bind(str(path))
        except OSError:
            listener.close()
            raise
        finally:
            os.umask(umask)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: _GatewayLink(self),
                                                     sock=listener)
        self.spawn(self._follow_allow())

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()
        for link in list(self.links):
            link.close()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._memory.close()


def _size(code: str, body: bytes) -> int:
    return len(body)


def _listening(path: Path) -> bool:
    """Whether a process accepts connections on the Unix socket `path`."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True

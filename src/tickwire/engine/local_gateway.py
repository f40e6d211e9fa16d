"""The gateway's half of the local engine: a gateway process connected to the ingest of
this machine over its Unix socket (`local_ingest`).

Updates of the codes this gateway watches arrive as the ingest publishes them; the newest
body of each is kept, so the newest quote of a watched code is read without asking.
Everything else is a call to the ingest. The connection is kept open: lost, it is opened
again after a capped backoff, the watched codes and WebSocket counts are told again, and
the newest bodies read again and those that changed handed on, so clients get the current
quote of every product, in order. While the ingest cannot be reached, `[engine] on_error`
decides: "open" counts WebSockets and requests on this gateway alone, "closed" answers 503;
the allow-list stays the last one read.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

import msgspec

from tickwire.catalogue import Catalogue
from tickwire.client.backoff import Backoff
from tickwire.engine import local_wire as wire
from tickwire.engine.allow_copy import AllowCopy
from tickwire.engine.base import AllowSnapshot, IngestStatus, Published, RateVerdict
from tickwire.engine.ratelimit import SlidingWindow
from tickwire.engine.redis_calls import AllowAdd, AllowRemove, KlinesCall
from tickwire.errors import TickwireError
from tickwire.market.state import StoredBar

log = logging.getLogger("tickwire.engine")

RETRY_FIRST = 0.1
RETRY_MOST = 2.0
"""Seconds between attempts to reach the ingest: from the first, doubling to the most."""
START_TIMEOUT = 10.0
"""Seconds `start` waits for the ingest before serving anyway (and trying on)."""


class _IngestLink(asyncio.Protocol):
    def __init__(self, gateway: LocalGateway) -> None:
        self._gateway = gateway
        self._reader = wire.FrameReader()
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        gateway = self._gateway
        try:
            for kind, payload in self._reader.feed(data):
                if kind == wire.BATCH:
                    gateway.on_batch(wire.decode_batch(payload))
                else:
                    gateway.on_frame(kind, payload)
        except (wire.FrameError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("the ingest broke the local engine's protocol; connecting again",
                        extra={"reason": str(exc)[:200]})
            assert self.transport is not None
            self.transport.close()

    def write(self, data: bytes) -> bool:
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        transport.write(data)
        return True


class LocalGateway:
    """The engine of a gateway process (role "gateway") of an ingest on this machine."""

    kind = "local"

    def __init__(self, path: Path, catalogue: Catalogue, on_error: str = "open") -> None:
        self._path = path
        self._catalogue = catalogue
        self._on_error = on_error
        self._link: _IngestLink | None = None
        self._handlers: list[Callable[[Published], None]] = []
        self._watching: Counter[str] = Counter()
        self._cache: dict[str, bytes] = {}
        """The newest body of each watched code, as the ingest sent it."""
        self._ws: Counter[str] = Counter()
        self._alone = SlidingWindow()
        """Rate limits counted here alone while the ingest is away (`on_error = "open"`)."""
        self._status: IngestStatus | None = None
        self._allow = AllowCopy()
        self._calls: dict[int, asyncio.Future[wire.Reply]] = {}
        self._call_ids = itertools.count(1)
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.error = "not connected yet"
        self.batches = 0
        self.connects = 0

    def catalogue(self) -> Catalogue:
        return self._catalogue

    # the ingest's side: not in a gateway ---------------------------------------------------

    def publish(self, batch: Published) -> None:
        raise RuntimeError("a gateway has no ingest: it does not publish")

    def watched(self, code: str) -> bool:
        raise RuntimeError("a gateway has no ingest")

    def report(self, status: IngestStatus) -> None:
        raise RuntimeError("a gateway has no ingest")

    def bars(self, closed: list[StoredBar], forming: list[StoredBar]) -> None:
        raise RuntimeError("a gateway has no ingest")

    def restored(self) -> None:
        raise RuntimeError("a gateway has no ingest")

    # updates -------------------------------------------------------------------------------

    def subscribe(self, handler: Callable[[Published], None]) -> None:
        self._handlers.append(handler)

    def watch(self, code: str) -> None:
        self._watching[code] += 1
        if self._watching[code] == 1 and self._link is not None:
            self._link.write(wire.frame(wire.WATCH, code.encode()))

    def unwatch(self, code: str) -> None:
        left = self._watching[code] - 1
        if left > 0:
            self._watching[code] = left
            return
        if self._watching.pop(code, None) is None:
            return
        self._cache.pop(code, None)
        if self._link is not None:
            self._link.write(wire.frame(wire.UNWATCH, code.encode()))

    def on_batch(self, batch: Published) -> None:
        """Updates from the ingest: the watched codes' handed on, unless a body is the one
        clients have already (read again after a reconnect, or as a snapshot)."""
        self.batches += 1
        cache, watching = self._cache, self._watching
        out: Published = []
        for code, body in batch:
            if code in watching and cache.get(code) != body:
                cache[code] = body
                out.append((code, body))
        if out:
            for handler in self._handlers:
                handler(out)

    def on_frame(self, kind: bytes, payload: bytes) -> None:
        if kind == wire.REPLY:
            reply = wire.decode_reply(payload)
            waiter = self._calls.get(reply.id)
            if waiter is not None and not waiter.done():
                waiter.set_result(reply)
        elif kind == wire.STATUS:
            self._status = msgspec.msgpack.decode(payload, type=IngestStatus)
        elif kind == wire.ALLOW:
            self._allow.take(wire.decode_allow(payload))
        elif kind == wire.HELLO:
            hello = wire.decode_hello(payload)
            self._catalogue = Catalogue(hello.categories, hello.products)
            self._connected.set()
        else:
            raise wire.FrameError(f"unknown frame kind {kind!r}")

    async def latest(self, codes: list[str]) -> list[bytes | None]:
        cache = self._cache
        out: list[bytes | None] = [cache.get(code) for code in codes]
        asked = [i for i, body in enumerate(out) if body is None]
        if not asked:
            return out
        reply = await self._call(wire.LatestCall([codes[i] for i in asked]), "Quotes")
        for i, body in zip(asked, reply.bodies, strict=True):
            out[i] = body
            if body is not None and codes[i] in self._watching:
                self._cache[codes[i]] = body  # what clients have: not handed on again
        return out

    async def klines(self, code: str, interval: str, rows: int,
                     end_ms: int | None) -> list[bytes]:
        reply = await self._call(KlinesCall(code, interval, rows, end_ms), "K-lines")
        return reply.bars

    async def status(self) -> IngestStatus | None:
        return self._status

    # access --------------------------------------------------------------------------------

    async def allow_list(self) -> AllowSnapshot:
        """The ingest's store read again (`tickwire allow --data-dir` writes it directly);
        the last one read while the ingest is away."""
        with contextlib.suppress(TickwireError):
            reply = await self._call(wire.AllowListCall(), "The allow-list")
            if reply.allow is not None:
                self._allow.take(reply.allow)
        return self._allow.snapshot

    async def allow_changed(self, within: float) -> None:
        await self._allow.changed(within)

    async def allow_add(self, cidr: str, note: str) -> AllowSnapshot:
        reply = await self._call(AllowAdd(cidr, note), "The allow-list change")
        assert reply.allow is not None
        return self._allow.take(reply.allow)

    async def allow_remove(self, cidr: str) -> tuple[bool, AllowSnapshot]:
        reply = await self._call(AllowRemove(cidr), "The allow-list change")
        assert reply.allow is not None
        return reply.changed, self._allow.take(reply.allow)

    def _alone_or_refuse(self, what: str) -> None:
        """The ingest is away: on "closed", a 503; on "open", the caller counts alone."""
        if self._on_error == "closed":
            raise TickwireError(f"{what} cannot be counted: the ingest is unreachable; try "
                                "again later", 503)

    async def ws_acquire(self, ip: str, cap: int) -> bool:
        if self._link is None:
            self._alone_or_refuse("WebSocket connections")
            admitted = self._ws[ip] < cap
        else:
            try:
                admitted = (await self._call(wire.WsAcquire(ip, cap), "A WebSocket")).admitted
            except _Unreachable:
                self._alone_or_refuse("WebSocket connections")
                admitted = self._ws[ip] < cap
        if admitted:
            self._ws[ip] += 1
        return admitted

    async def ws_release(self, ip: str) -> None:
        self._ws[ip] -= 1
        if self._ws[ip] <= 0:
            del self._ws[ip]
        with contextlib.suppress(TickwireError):  # a link lost gives them all back
            await self._call(wire.WsRelease(ip), "A WebSocket")

    async def rate_check(self, keys: list[str], limit: int) -> RateVerdict:
        try:
            reply = await self._call(wire.RateCall(keys, limit), "Requests")
        except _Unreachable:
            self._alone_or_refuse("Requests")
            return self._alone.check(keys, limit)
        return RateVerdict(reply.over, reply.retry_after)

    # calls ---------------------------------------------------------------------------------

    async def _call(self, call: wire.Call, what: str) -> wire.Reply:
        """Ask the ingest; a TickwireError (503 when it cannot answer) names `what`."""
        link = self._link
        if link is None:
            raise _Unreachable(f"{what}: the ingest is unreachable ({self.error})")
        if len(self._calls) >= wire.MAX_WAITING:
            raise TickwireError(f"{what}: too many requests waiting for the ingest", 503)
        call_id = next(self._call_ids)
        waiter = self._calls[call_id] = asyncio.get_running_loop().create_future()
        try:
            if not link.write(wire.frame(wire.CALL, wire.encode(wire.Request(call_id, call)))):
                raise _Unreachable(f"{what}: the ingest is unreachable ({self.error})")
            try:
                reply = await asyncio.wait_for(waiter, wire.CALL_TIMEOUT)
            except TimeoutError:
                raise TickwireError(f"{what}: the ingest did not answer within "
                                    f"{wire.CALL_TIMEOUT:g} s", 503) from None
        finally:
            self._calls.pop(call_id, None)
        if reply.error:
            raise TickwireError(reply.error, reply.status or 503)
        return cast(wire.Reply, reply)

    # the connection ------------------------------------------------------------------------

    async def _connect_forever(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = Backoff(initial=RETRY_FIRST, maximum=RETRY_MOST, reset_after=0)
        while True:
            try:
                _, link = await loop.create_unix_connection(lambda: _IngestLink(self),
                                                            str(self._path))
            except OSError as exc:
                self.error = f"cannot connect to {self._path.name}: {exc.strerror or exc}"
                await asyncio.sleep(backoff.next())
                continue
            backoff.reset()
            self.connects += 1
            self._link = link
            self._spawn(self._rejoin(link))
            try:
                await link.lost
            finally:
                self._link = None
                self._connected.clear()
                self.error = "the connection to the ingest was lost"
                for waiter in self._calls.values():
                    if not waiter.done():
                        waiter.set_exception(_Unreachable(
                            "the ingest went away before it answered"))
            log.warning("lost the ingest; connecting again")

    async def _rejoin(self, link: _IngestLink) -> None:
        """Tell a new connection what this gateway watches and counts, then hand on the
        newest bodies that changed meanwhile."""
        for code in self._watching:
            link.write(wire.frame(wire.WATCH, code.encode()))
        codes = list(self._watching)
        with contextlib.suppress(TickwireError):
            if self._ws:
                await self._call(wire.WsRestore(dict(self._ws)), "WebSockets")
            if codes:
                reply = await self._call(wire.LatestCall(codes), "Quotes")
                self.on_batch([(code, body) for code, body in zip(codes, reply.bodies,
                                                                  strict=True)
                               if body is not None and code in self._watching])

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # life ----------------------------------------------------------------------------------

    def health(self) -> dict[str, object]:
        connected = self._link is not None
        health: dict[str, object] = {"kind": self.kind, "role": "gateway", "pid": os.getpid(),
                                     "ok": connected,
                                     "ingest": "connected" if connected else "unreachable",
                                     "batches": self.batches, "watched": len(self._watching)}
        if not connected:
            health["error"] = self.error
        return health

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect_forever(), name="local-engine-link")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), START_TIMEOUT)
        if not self._connected.is_set():
            log.warning("the ingest cannot be reached yet; serving, and trying on",
                        extra={"error": self.error})

    async def close(self) -> None:
        link = self._link
        tasks = [t for t in (self._task, *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if link is not None and link.transport is not None:
            link.transport.close()
        self._link = None


class _Unreachable(TickwireError):
    """The ingest cannot be asked (not connected, or gone before it answered)."""

    status = 503

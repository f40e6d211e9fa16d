"""The gateway's half of the Redis engine: the bus, the newest quotes, K-lines, the
allow-list, WebSocket counts and rate limits, shared with every other gateway.

Each gateway is a lease in Redis (`Keys.gateways`, renewed every `HEARTBEAT` seconds):
its WebSocket counts per IP and its watched codes live in keys of its own that expire with
the lease, so a gateway that dies stops counting within `[engine] lease`, and nothing is
left to clean up. Those keys are written again, whole, from the gateway's own counts
whenever they went missing (Redis restarted empty: the scripts refuse to change a missing
key, so it is never rebuilt from the changes since alone) or a change could not be written
(Redis away).

The cap and the limits are Lua scripts, each one atomic over every gateway's counts. While
Redis cannot be reached, `[engine] on_error` decides: "open" counts on this gateway alone,
"closed" answers 503. The allow-list this gateway applies is the last one it read: Redis
away, it stays as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from typing import Any, cast

import msgspec

from tickwire.catalogue import Catalogue
from tickwire.client.backoff import Backoff
from tickwire.config import EngineConfig
from tickwire.engine import redis_scripts as lua
from tickwire.engine.allow_copy import AllowCopy
from tickwire.engine.base import AllowSnapshot, IngestStatus, Published, RateVerdict
from tickwire.engine.ratelimit import SlidingWindow
from tickwire.engine.redis_bus import MARKER, parse_header, split_message
from tickwire.engine.redis_calls import (
    CALL_TIMEOUT,
    MAX_WAITING,
    AllowAdd,
    AllowRemove,
    Call,
    KlinesCall,
    Reply,
    Request,
    decode_allow,
    decode_reply,
    encode,
)
from tickwire.engine.redis_ingest import process_id
from tickwire.engine.redis_link import FAILURES, RETRY_FIRST, RETRY_MOST, Keys, Link
from tickwire.errors import TickwireError
from tickwire.models import WINDOW, Category, Product

log = logging.getLogger("tickwire.engine")

MISSING = -1
"""What a script answers when this gateway's key is gone (see `redis_scripts`)."""

HEARTBEAT = 0.5
"""Seconds between renewals of the lease, and reads of the ingest's status."""
SILENT_AFTER = 3.0
"""Seconds without a status from the ingest before this gateway calls it silent."""


class _CatalogueData(msgspec.Struct):
    categories: list[Category]
    products: list[Product]
    kept: dict[str, int] = {}
    """Bars the ingest keeps in Redis per product, by interval."""


_decode_catalogue = msgspec.msgpack.Decoder(_CatalogueData).decode
_decode_status = msgspec.json.Decoder(IngestStatus).decode


class GatewaySide:
    def __init__(self, link: Link, keys: Keys, settings: EngineConfig,
                 catalogue: Catalogue) -> None:
        self.id = process_id()
        self._link = link
        self._keys = keys
        self._settings = settings
        self._lease_ms = int(settings.lease * 1000)
        self.catalogue = catalogue
        self._catalogue_id: bytes | None = None
        self._kept = dict(WINDOW)
        """Bars the ingest keeps in Redis per product, by interval (from the catalogue)."""
        client = link.client
        self._heartbeat = client.register_script(lua.HEARTBEAT)
        self._watch_script = client.register_script(lua.WATCH)
        self._acquire = client.register_script(lua.WS_ACQUIRE)
        self._release = client.register_script(lua.WS_RELEASE)
        self._rate = client.register_script(lua.RATE)
        self.replies = keys.gateway(self.id, "replies")
        # the bus
        self._handlers: list[Callable[[Published], None]] = []
        self._watching: Counter[str] = Counter()
        self._cache: dict[str, bytes] = {}
        """The newest body of each code, as the bus (or a resync) brought it."""
        self._fresh: set[str] = set()
        """Watched codes whose cached body is the bus's newest: read without Redis."""
        self._codes: dict[bytes, str] = {}
        self._ingest: bytes | None = None
        self._seq = 0
        self._seen: set[str] | None = None
        """Codes the bus brought while a resync was reading (their bodies are newer)."""
        self._bus_up = False
        """Whether the bus subscription is confirmed (a marker can come back)."""
        self._resync_lock = asyncio.Lock()
        self._markers: dict[bytes, asyncio.Future[None]] = {}
        self._ops: deque[tuple[str, str]] = deque()
        self._ops_waiting = asyncio.Event()
        self._watch_dirty = False
        # counters
        self._ws: Counter[str] = Counter()
        self._ws_dirty = False
        self._alone = SlidingWindow()
        """Rate limits counted here alone while Redis is away (`on_error = "open"`)."""
        # from the ingest
        self._status: IngestStatus | None = None
        self._status_at = 0.0
        self._allow = AllowCopy()
        self._calls: dict[int, asyncio.Future[Reply]] = {}
        self._call_ids = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.resyncs = 0
        self.gaps = 0

    # the bus --------------------------------------------------------------------------------

    def subscribe(self, handler: Callable[[Published], None]) -> None:
        self._handlers.append(handler)

    def watch(self, code: str) -> None:
        self._watching[code] += 1
        if self._watching[code] == 1:
            self._queue("w", code)

    def unwatch(self, code: str) -> None:
        left = self._watching[code] - 1
        if left > 0:
            self._watching[code] = left
            return
        if self._watching.pop(code, None) is None:
            return  # not watched: nothing to say
        self._fresh.discard(code)
        self._queue("u", code)

    def on_update(self, data: bytes) -> None:
        """A bus message: hand each watched code's body on, keep every body."""
        header, parts = split_message(data)
        batch = parse_header(header)
        if batch is None:
            if header[:1] == MARKER:
                waiter = self._markers.pop(header, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            return
        ingest, seq = batch
        if ingest != self._ingest or seq != self._seq + 1:
            if self._ingest is not None:
                self.gaps += 1
                self._spawn(self.resync())
            self._ingest = ingest
        self._seq = seq
        self.batches += 1
        cache, fresh, watching, codes = self._cache, self._fresh, self._watching, self._codes
        seen = self._seen
        out: Published = []
        for i in range(0, len(parts) - 1, 2):
            raw, body = parts[i], parts[i + 1]
            code = codes.get(raw)
            if code is None:
                code = codes[raw] = raw.decode(errors="replace")
            if seen is not None:
                seen.add(code)
            if code in watching:
                fresh.add(code)
                if body == cache.get(code):
                    continue  # the quote clients already have (the ingest sends a newly
                    # watched product's body again: this gateway may have read it already)
                out.append((code, body))
            cache[code] = body
        if out:
            for handler in self._handlers:
                handler(out)

    def on_lost(self) -> None:
        """The bus connection is gone: nothing cached is known to be the newest."""
        self._bus_up = False
        self._fresh.clear()
        self._ingest = None

    async def on_subscribed(self) -> None:
        """The bus is (again) subscribed: read what may have been missed."""
        self._bus_up = True
        await self.resync()

    async def _fence(self) -> None:
        """Until every bus message published before now has been handled here. A body read
        from the hash was published before it was read (one script writes and publishes
        it), but it and older ones of its product may still be on their way on the bus:
        handed on after the read, they would reach clients older after newer."""
        if self._bus_up:
            with contextlib.suppress(*FAILURES):  # away: the read is the best known
                await self.marker(secrets.token_hex(8).encode())

    async def resync(self) -> None:
        """Read every newest body again and hand on those that changed (see `redis_bus`)."""
        async with self._resync_lock:
            self.resyncs += 1
            seen = self._seen = set()
            try:
                stored = cast(dict[bytes, bytes],
                              await self._link.client.hgetall(self._keys.latest))
                await self._fence()  # what the bus still brings is in `seen`, handed on
            except FAILURES as exc:
                self._link.failed(exc)
                return
            finally:
                self._seen = None
            cache, watching = self._cache, self._watching
            out: Published = []
            for raw, body in stored.items():
                code = raw.decode(errors="replace")
                if code in seen or cache.get(code) == body:
                    continue
                cache[code] = body
                if code in watching:
                    out.append((code, body))
            if out:
                for handler in self._handlers:
                    handler(out)

    async def latest(self, codes: list[str]) -> list[bytes | None]:
        cache, fresh = self._cache, self._fresh
        out: list[bytes | None] = [cache.get(c) if c in fresh else None for c in codes]
        asked = [i for i, code in enumerate(codes) if code not in fresh]
        if not asked:
            return out
        names = [codes[i] for i in asked]
        before = [cache.get(code) for code in names]
        try:
            self._reachable()
            stored = cast(list[bytes | None],
                          await self._link.client.hmget(self._keys.latest, names))
            if any(code in self._watching for code in names):
                await self._fence()
        except FAILURES as exc:
            self._link.failed(exc)
            stored = before  # the last known
        for i, code, was, body in zip(asked, names, before, stored, strict=True):
            now = cache.get(code)
            if now is not was:
                out[i] = now  # the bus brought a body since: as new as the read, and
                # handed on in order
            else:
                out[i] = body
                if body is not None:
                    cache[code] = body
        return out

    def _reachable(self) -> None:
        """While Redis is known to be away (until the heartbeat reaches it again), fail at
        once: a request does not wait out a timeout to get the same answer."""
        if not self._link.up:
            raise ConnectionError(self._link.error or "redis unreachable")

    async def marker(self, token: bytes) -> None:
        """Publish a marker on the bus and wait until it comes back: every message
        published before it has been handed on."""
        header = MARKER + token
        waiter = self._markers[header] = asyncio.get_running_loop().create_future()
        try:
            await self._link.client.publish(self._keys.updates, header)
            await asyncio.wait_for(waiter, CALL_TIMEOUT)
        finally:
            self._markers.pop(header, None)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # watched codes --------------------------------------------------------------------------

    def _queue(self, op: str, code: str) -> None:
        self._ops.append((op, code))
        self._ops_waiting.set()

    async def _announce_forever(self) -> None:
        """Tell Redis and the ingest, in order, which codes this gateway watches."""
        keys = self._keys
        own = keys.gateway(self.id, "watch")
        while not self._link.closing:
            await self._ops_waiting.wait()
            self._ops_waiting.clear()
            ops, self._ops = self._ops, deque()
            if not ops:
                continue
            try:
                if not self._link.up:
                    raise ConnectionError(self._link.error or "redis unreachable")
                async with self._link.client.pipeline(transaction=False) as pipe:
                    for op, code in ops:
                        await self._watch_script(
                            keys=[own], args=[op, code, self._lease_ms, keys.watching, self.id],
                            client=pipe)
                    done = await pipe.execute()
                if MISSING in done:
                    await self._write_watched()
            except Exception as exc:
                if isinstance(exc, FAILURES):
                    self._link.failed(exc)
                else:
                    log.exception("announcing watched codes failed")
                self._watch_dirty = True  # written whole at the next heartbeat

    # the lease ------------------------------------------------------------------------------

    async def _beat_forever(self) -> None:
        backoff = Backoff(initial=RETRY_FIRST, maximum=RETRY_MOST, reset_after=0)
        while not self._link.closing:
            try:
                await self.beat()
                backoff.reset()
                await asyncio.sleep(HEARTBEAT)
            except Exception as exc:
                if isinstance(exc, FAILURES):
                    self._link.failed(exc)
                else:
                    log.exception("the heartbeat failed")
                await asyncio.sleep(min(HEARTBEAT, backoff.next()))

    async def beat(self) -> None:
        """Renew the lease (writing this gateway's keys again where they went missing), and
        read what the ingest shares: its status, the allow-list, the catalogue."""
        keys = self._keys
        client = self._link.client
        async with client.pipeline(transaction=False) as pipe:
            await self._heartbeat(
                keys=[keys.gateways, keys.gateway(self.id, "ws"),
                      keys.gateway(self.id, "watch")],
                args=[self.id, self._lease_ms], client=pipe)
            pipe.get(keys.status)
            pipe.get(keys.allow_version)
            pipe.get(keys.catalogue_id)
            (ws_kept, watch_kept), status, allow_version, catalogue_id = await pipe.execute()
        self._link.ok()
        if self._ws_dirty or not ws_kept:
            await self._write_counts()
        if self._watch_dirty or not watch_kept:
            await self._write_watched()
        if catalogue_id is not None and catalogue_id != self._catalogue_id:
            blob = cast(bytes | None, await client.get(keys.catalogue))
            if blob is not None:
                data = _decode_catalogue(blob)
                self.catalogue = Catalogue(data.categories, data.products)
                self._kept = {**WINDOW, **data.kept}
                self._catalogue_id = catalogue_id
        if allow_version is not None and int(allow_version) > self._allow.snapshot.version:
            blob = cast(bytes | None, await client.get(keys.allow))
            if blob is not None:
                self.take_allow(decode_allow(blob))
        if status is not None:
            self._status = _decode_status(status)
            self._status_at = time.monotonic()

    async def _write_counts(self) -> None:
        own = self._keys.gateway(self.id, "ws")
        self._ws_dirty = False
        counts = {ip: n for ip, n in self._ws.items() if n > 0}
        async with self._link.client.pipeline(transaction=True) as pipe:
            pipe.delete(own)
            whole: dict[str, int] = {lua.WHOLE: 1, **counts}
            pipe.hset(own, mapping=whole)  # type: ignore[arg-type]
            pipe.pexpire(own, self._lease_ms)
            await pipe.execute()

    async def _write_watched(self) -> None:
        keys = self._keys
        own = keys.gateway(self.id, "watch")
        self._watch_dirty = False
        codes = list(self._watching)
        async with self._link.client.pipeline(transaction=True) as pipe:
            pipe.delete(own)
            pipe.sadd(own, lua.WHOLE, *codes)
            pipe.pexpire(own, self._lease_ms)
            pipe.publish(keys.watching, b"r\0" + self.id.encode())
            await pipe.execute()

    # the ingest's status and calls ----------------------------------------------------------

    def status(self) -> IngestStatus | None:
        return self._status

    def ingest_state(self) -> str:
        """"waiting" (never heard from), "reporting", or "silent" (not for a while)."""
        if self._status is None:
            return "waiting"
        return "silent" if time.monotonic() - self._status_at > SILENT_AFTER else "reporting"

    def on_reply(self, data: bytes) -> None:
        try:
            reply = decode_reply(data)
        except msgspec.DecodeError:
            return
        waiter = self._calls.get(reply.id)
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)

    async def call(self, call: Call, what: str) -> Reply:
        """Ask the ingest; a TickwireError (503 when it cannot answer) names `what` failed."""
        if len(self._calls) >= MAX_WAITING:
            raise TickwireError(f"{what}: too many requests waiting for the ingest", 503)
        call_id = next(self._call_ids)
        waiter = self._calls[call_id] = asyncio.get_running_loop().create_future()
        try:
            request = encode(Request(call_id, self.replies, call))
            try:
                self._reachable()
                listeners = await self._link.client.publish(self._keys.calls, request)
            except FAILURES as exc:
                self._link.failed(exc)
                raise TickwireError(f"{what}: Redis is unreachable ({self._link.error})",
                                    503) from None
            if not listeners:
                raise TickwireError(f"{what}: no ingest is running", 503)
            try:
                reply = await asyncio.wait_for(waiter, CALL_TIMEOUT)
            except TimeoutError:
                raise TickwireError(f"{what}: the ingest did not answer within "
                                    f"{CALL_TIMEOUT:g} s", 503) from None
        finally:
            self._calls.pop(call_id, None)
        if reply.error:
            raise TickwireError(reply.error, reply.status or 503)
        return cast(Reply, reply)

    async def klines(self, code: str, interval: str, rows: int,
                     end_ms: int | None) -> list[bytes]:
        """From the window in Redis; from the ingest's history where the window ends."""
        key = self._keys.bars(code, interval)
        try:
            self._reachable()
            async with self._link.client.pipeline(transaction=False) as pipe:
                pipe.zrevrangebyscore(key, "+inf" if end_ms is None else end_ms, "-inf",
                                      start=0, num=rows)
                pipe.zcard(key)
                bars, kept = await pipe.execute()
        except FAILURES as exc:
            self._link.failed(exc)
            raise TickwireError(f"K-lines cannot be read: Redis is unreachable "
                                f"({self._link.error})", 503) from None
        if len(bars) >= rows or kept < self._kept.get(interval, WINDOW[interval]):
            return list(bars)  # all there is, or what was asked for
        reply = await self.call(KlinesCall(code, interval, rows, end_ms),
                                "K-lines beyond those kept in Redis")
        return reply.bars

    # the allow-list -------------------------------------------------------------------------

    def on_allow(self, data: bytes) -> None:
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
            self.take_allow(decode_allow(data))

    def take_allow(self, snapshot: AllowSnapshot) -> None:
        self._allow.take(snapshot)

    def allow_list(self) -> AllowSnapshot:
        return self._allow.snapshot

    async def allow_changed(self, within: float) -> None:
        await self._allow.changed(within)

    async def allow_add(self, cidr: str, note: str) -> AllowSnapshot:
        reply = await self.call(AllowAdd(cidr, note), "the allow-list change")
        assert reply.allow is not None
        return self._allow.take(reply.allow)

    async def allow_remove(self, cidr: str) -> tuple[bool, AllowSnapshot]:
        reply = await self.call(AllowRemove(cidr), "the allow-list change")
        assert reply.allow is not None
        return reply.changed, self._allow.take(reply.allow)

    # WebSocket counts and rate limits -------------------------------------------------------

    def _unreachable(self, exc: BaseException, what: str) -> None:
        """Redis failed a count: on "closed", a 503; on "open", the caller counts alone."""
        self._link.failed(exc)
        if self._settings.on_error == "closed":
            raise TickwireError(f"{what} cannot be counted: Redis is unreachable; try again "
                                "later", 503) from None

    async def ws_acquire(self, ip: str, cap: int) -> bool:
        keys = self._keys
        try:
            self._reachable()
            acquire = functools.partial(
                self._acquire, keys=[keys.gateways],
                args=[keys.prefix, self.id, ip, cap, self._lease_ms])
            answer = await acquire()
            if answer == MISSING:  # Redis lost this gateway's lease and counts
                await self.beat()
                answer = await acquire()
            admitted = bool(answer == 1)
        except FAILURES as exc:
            self._ws_dirty = True
            self._unreachable(exc, "WebSocket connections")
            admitted = self._ws[ip] < cap
        if admitted:
            self._ws[ip] += 1
        return admitted

    async def ws_release(self, ip: str) -> None:
        self._ws[ip] -= 1
        if self._ws[ip] <= 0:
            del self._ws[ip]
        try:
            self._reachable()
            if await self._release(keys=[self._keys.gateway(self.id, "ws")],
                                   args=[ip]) == MISSING:
                self._ws_dirty = True  # written whole at the next heartbeat
        except FAILURES as exc:
            self._link.failed(exc)
            self._ws_dirty = True

    async def rate_check(self, keys: list[str], limit: int) -> RateVerdict:
        try:
            self._reachable()
            over, wait_us = await self._rate(keys=[self._keys.rate(k) for k in keys],
                                             args=[limit, 1000])
        except FAILURES as exc:
            self._unreachable(exc, "Requests")
            return self._alone.check(keys, limit)
        return RateVerdict([int(i) for i in over], int(wait_us) / 1_000_000)

    # life -----------------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._beat_forever(), name="redis-heartbeat"),
                       asyncio.create_task(self._announce_forever(), name="redis-watching")]

    def health(self) -> dict[str, object]:
        return {"id": self.id, "batches": self.batches,
                "gaps": self.gaps, "resyncs": self.resyncs,
                "watched": len(self._watching)}

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        keys = self._keys
        with contextlib.suppress(*FAILURES):  # its counts stop at once, not after the lease
            await self._link.client.delete(keys.gateway(self.id, "ws"),
                                           keys.gateway(self.id, "watch"))
            await self._link.client.zrem(keys.gateways, self.id)

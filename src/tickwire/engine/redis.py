"""The Redis engine: one ingest and any number of gateways, in any number of processes on
any number of machines, sharing one Redis (or Valkey) server.

What lives where:

- the bus (`redis_bus`): one pub/sub channel; the ingest publishes each update of a
  watched product once, encoded once, and every gateway hands the same bytes on;
- the newest quote of every product: a hash, written with each batch (and for products
  nobody watches, at most every 50 ms);
- the K-line windows: a sorted set per product and interval, by open time, the forming
  bar in it, written from the ingest's changes four times a second (`[engine] kept_bars`
  keeps more than the window). `end=` beyond what is kept is a call to the ingest, which
  answers from its SQLite history (`redis_calls`), so the whole history stays in one
  place, on the ingest's disk;
- the allow-list: the ingest's store is its one source of truth; Redis has a copy with its
  version, and announces each new one to every gateway (changes made on a gateway are
  calls to the ingest);
- WebSocket counts per IP and watched codes: keys of each gateway that expire with its
  lease; rate limits: a sliding window per key. Both atomic Lua scripts.

A process's role picks its half: the ingest's (`redis_ingest`), the gateway's
(`redis_gateway`), or both. The contract every engine keeps is `tests/engine/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable

from tickwire.catalogue import Catalogue
from tickwire.config import EngineConfig
from tickwire.engine.base import AllowSnapshot, IngestStatus, Published, RateVerdict
from tickwire.engine.redis_bus import Handler, Listener
from tickwire.engine.redis_gateway import GatewaySide
from tickwire.engine.redis_ingest import IngestSide
from tickwire.engine.redis_link import FAILURES, Keys, Link
from tickwire.engine.sqlite import SqliteStore
from tickwire.market import Market
from tickwire.market.state import StoredBar

START_TIMEOUT = 10.0
"""Seconds `start` waits for its subscription and (an ingest) the whole state written,
before it goes on (what is missing is done in the background)."""


class RedisEngine:
    kind = "redis"

    def __init__(self, settings: EngineConfig, catalogue: Catalogue,
                 market: Market | None = None, store: SqliteStore | None = None) -> None:
        self.role = settings.role
        self._link = Link(settings.url)
        keys = self._keys = Keys(settings.prefix)
        self._catalogue = catalogue
        self._ingest: IngestSide | None = None
        self._gateway: GatewaySide | None = None
        handlers: dict[str, Handler] = {}
        if self.role != "ingest":
            gateway = self._gateway = GatewaySide(self._link, keys, settings, catalogue)
            handlers[keys.updates] = gateway.on_update  # first: its confirmation starts a resync
            handlers[keys.allow_changed] = gateway.on_allow
            handlers[gateway.replies] = gateway.on_reply
        if self.role != "gateway":
            if market is None or store is None:
                raise ValueError("the ingest's half of the engine needs the market and store")
            ingest = self._ingest = IngestSide(self._link, keys, settings, catalogue,
                                               market, store)
            handlers[keys.watching] = ingest.on_watching
            handlers[keys.calls] = ingest.on_call
        self._listener = Listener(
            self._link, handlers,
            on_subscribed=self._gateway.on_subscribed if self._gateway else None,
            on_lost=self._gateway.on_lost if self._gateway else lambda: None)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def _gw(self) -> GatewaySide:
        if self._gateway is None:
            raise RuntimeError("the engine of an ingest has no gateway's half")
        return self._gateway

    @property
    def _in(self) -> IngestSide:
        if self._ingest is None:
            raise RuntimeError("the engine of a gateway has no ingest's half")
        return self._ingest

    def catalogue(self) -> Catalogue:
        return self._catalogue if self._gateway is None else self._gateway.catalogue

    # the ingest's side ----------------------------------------------------------------------

    def publish(self, batch: Published) -> None:
        self._in.publish(batch)

    def watched(self, code: str) -> bool:
        return self._in.watched(code)

    def report(self, status: IngestStatus) -> None:
        self._in.report(status)

    def bars(self, closed: list[StoredBar], forming: list[StoredBar]) -> None:
        self._in.bars(closed, forming)

    def restored(self) -> None:
        self._in.restored()

    # the gateway's side ---------------------------------------------------------------------

    def subscribe(self, handler: Callable[[Published], None]) -> None:
        self._gw.subscribe(handler)

    def watch(self, code: str) -> None:
        self._gw.watch(code)
        if self._ingest is not None:
            self._ingest.local_watch(code, 1)

    def unwatch(self, code: str) -> None:
        self._gw.unwatch(code)
        if self._ingest is not None:
            self._ingest.local_watch(code, -1)

    async def latest(self, codes: list[str]) -> list[bytes | None]:
        return await self._gw.latest(codes)

    async def klines(self, code: str, interval: str, rows: int,
                     end_ms: int | None) -> list[bytes]:
        return await self._gw.klines(code, interval, rows, end_ms)

    async def status(self) -> IngestStatus | None:
        if self._ingest is not None:
            return self._ingest.status
        return self._gw.status()

    async def allow_list(self) -> AllowSnapshot:
        return self._gw.allow_list()

    async def allow_changed(self, within: float) -> None:
        await self._gw.allow_changed(within)

    async def allow_add(self, cidr: str, note: str) -> AllowSnapshot:
        return await self._gw.allow_add(cidr, note)

    async def allow_remove(self, cidr: str) -> tuple[bool, AllowSnapshot]:
        return await self._gw.allow_remove(cidr)

    async def ws_acquire(self, ip: str, cap: int) -> bool:
        return await self._gw.ws_acquire(ip, cap)

    async def ws_release(self, ip: str) -> None:
        await self._gw.ws_release(ip)

    async def rate_check(self, keys: list[str], limit: int) -> RateVerdict:
        return await self._gw.rate_check(keys, limit)

    # life -----------------------------------------------------------------------------------

    def health(self) -> dict[str, object]:
        state: dict[str, object] = {"kind": self.kind, "role": self.role,
                                    "prefix": self._keys.prefix, "redis": self._link.health()}
        ok = self._link.up
        if self._ingest is not None:
            state["ingest"] = self._ingest.health()
            ok = ok and self._ingest.conflict is None
        else:
            state["ingest"] = self._gw.ingest_state()
            ok = ok and state["ingest"] != "silent"
        if self._gateway is not None:
            state["gateway"] = self._gateway.health()
        state["ok"] = ok
        return state

    async def start(self) -> None:
        """Connect, subscribe, and (a gateway) read what the ingest shares; (an ingest) take
        the prefix and write the whole state. Waits at most a few seconds for Redis."""
        self._tasks.append(asyncio.create_task(self._listener.run(), name="redis-listener"))
        if self._gateway is not None:
            try:
                await self._gateway.beat()
            except FAILURES as exc:
                self._link.failed(exc)
            self._gateway.start()
        if self._ingest is not None:
            await self._ingest.start(self._gateway.id if self._gateway else "")
        if self._link.up:  # the subscription (replies come on it), the whole state written
            waits = [self._listener.subscribed.wait()]
            if self._ingest is not None:
                waits.append(self._ingest.written.wait())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), START_TIMEOUT)

    async def settle(self) -> None:
        """Until everything this process handed over is in Redis and (a gateway) every bus
        message published so far has been handed on here: for tests and benchmarks."""
        if self._ingest is not None:
            await self._ingest.settle()
        if self._gateway is not None:
            await self._gateway.marker(secrets.token_hex(8).encode())

    async def close(self) -> None:
        if self._ingest is not None:
            await self._ingest.finish()
        self._link.closing = True
        if self._gateway is not None:
            await self._gateway.close()
        if self._ingest is not None:
            await self._ingest.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._link.close()

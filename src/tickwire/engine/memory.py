"""The memory engine: one process, the ingest and the gateway sharing its memory.

Updates go from the ingest to the gateway by a plain call; the latest quotes and the K-line
windows are read from the ingest's market (a quote is encoded when it is read, see
`Market.body`); history beyond the windows and the allow-list come from the SQLite store;
WebSocket counts and rate limits are counted here.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator

from tickwire.catalogue import Catalogue
from tickwire.engine.base import AllowSnapshot, IngestStatus, Published, RateVerdict
from tickwire.engine.ratelimit import SlidingWindow
from tickwire.engine.sqlite import SqliteStore
from tickwire.errors import TickwireError
from tickwire.market import Market
from tickwire.market.state import StoredBar


@contextlib.contextmanager
def stored(what: str) -> Iterator[None]:
    """A store that cannot write (a full or read-only disk) is a 503 naming what was not
    stored: the change is not in force, the caller may try again."""
    try:
        yield
    except sqlite3.Error as exc:
        raise TickwireError(f"{what} could not be stored ({exc}); nothing changed", 503) \
            from None


async def window_or_store(market: Market, store: SqliteStore, code: str, interval: str,
                          rows: int, end_ms: int | None) -> list[bytes]:
    """`Engine.klines` of the ingest's own market: from its window where that holds them,
    else from the store."""
    series = market.products[code].series[interval]
    bars, complete = series.newest(rows, end_ms)
    if complete:
        return bars
    rows_stored = await asyncio.to_thread(store.read_bars, code, interval, rows, end_ms)
    return [series.encode(row) for row in rows_stored]


class MemoryEngine:
    kind = "memory"

    def __init__(self, catalogue: Catalogue, market: Market, store: SqliteStore) -> None:
        self._catalogue = catalogue
        self._market = market
        self._store = store
        self._handlers: list[Callable[[Published], None]] = []
        self._watched: Counter[str] = Counter()
        self._status: IngestStatus | None = None
        self._ws_per_ip: dict[str, int] = {}
        self._rates = SlidingWindow()

    def catalogue(self) -> Catalogue:
        return self._catalogue

    # updates ------------------------------------------------------------------------------

    def publish(self, batch: Published) -> None:
        if batch:
            for handler in self._handlers:
                handler(batch)

    def watched(self, code: str) -> bool:
        return code in self._watched

    def report(self, status: IngestStatus) -> None:
        self._status = status

    def bars(self, closed: list[StoredBar], forming: list[StoredBar]) -> None:
        pass  # the gateway reads the market's own series

    def restored(self) -> None:
        pass  # the same market

    def subscribe(self, handler: Callable[[Published], None]) -> None:
        self._handlers.append(handler)

    def watch(self, code: str) -> None:
        self._watched[code] += 1

    def unwatch(self, code: str) -> None:
        left = self._watched[code] - 1
        if left > 0:
            self._watched[code] = left
        else:
            del self._watched[code]

    async def latest(self, codes: list[str]) -> list[bytes | None]:
        body = self._market.body
        return [body(code) for code in codes]

    async def klines(self, code: str, interval: str, rows: int,
                     end_ms: int | None) -> list[bytes]:
        return await window_or_store(self._market, self._store, code, interval, rows, end_ms)

    async def status(self) -> IngestStatus | None:
        return self._status

    # access -------------------------------------------------------------------------------

    async def allow_list(self) -> AllowSnapshot:
        return await asyncio.to_thread(self._store.allow_list)

    async def allow_changed(self, within: float) -> None:
        await asyncio.sleep(within)  # `tickwire allow --data-dir` writes the store itself

    async def allow_add(self, cidr: str, note: str) -> AllowSnapshot:
        with stored("the allow-list change"):
            return await asyncio.to_thread(self._store.allow_add, cidr, note)

    async def allow_remove(self, cidr: str) -> tuple[bool, AllowSnapshot]:
        with stored("the allow-list change"):
            return await asyncio.to_thread(self._store.allow_remove, cidr)

    async def ws_acquire(self, ip: str, cap: int) -> bool:
        count = self._ws_per_ip.get(ip, 0)
        if count >= cap:
            return False
        self._ws_per_ip[ip] = count + 1
        return True

    async def ws_release(self, ip: str) -> None:
        left = self._ws_per_ip.get(ip, 0) - 1
        if left > 0:
            self._ws_per_ip[ip] = left
        else:
            self._ws_per_ip.pop(ip, None)

    async def rate_check(self, keys: list[str], limit: int) -> RateVerdict:
        return self._rates.check(keys, limit)

    def health(self) -> dict[str, object]:
        return {"kind": self.kind}  # no file path: /healthz tells no one the server's layout

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self._handlers.clear()

"""The ingest's half of the Redis engine: what it writes to Redis, and what it answers.

One task writes everything, in order, batching what came in while the last write was on
its way: the updates of watched products (published on the bus and stored as the newest
quote, in one script), the newest quote of products nobody watches (encoded at most every
`QUIET_EVERY` seconds, not at every update), the K-line changes and the status. Each
(re)connect starts with the whole state (`_write_everything`): the catalogue, every
product's newest quote and K-line windows, the allow-list. So a Redis restarted empty is
whole again within a second, and nothing waits in memory while Redis is away: what the
bus missed meanwhile is announced as a skipped batch, and gateways read the newest
quotes again.

The ingest holds its prefix in Redis (`Keys.ingest`, renewed each lease/3): a second
ingest on the same Redis and prefix refuses to start, naming the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import Coroutine, Iterable
from typing import Any, NamedTuple

import msgspec

from tickwire.catalogue import Catalogue
from tickwire.client.backoff import Backoff
from tickwire.config import EngineConfig
from tickwire.engine import redis_scripts as lua
from tickwire.engine.base import IngestStatus, Published
from tickwire.engine.memory import stored, window_or_store
from tickwire.engine.redis_calls import (
    AllowAdd,
    AllowRemove,
    KlinesCall,
    Reply,
    decode_request,
    encode,
    encode_allow,
)
from tickwire.engine.redis_link import FAILURES, RETRY_FIRST, RETRY_MOST, Keys, Link
from tickwire.engine.sqlite import SqliteStore
from tickwire.errors import TickwireError
from tickwire.market import Market
from tickwire.market.state import StoredBar
from tickwire.models import INTERVALS, WINDOW

log = logging.getLogger("tickwire.engine")

QUIET_EVERY = 0.05
"""Seconds between writes of the newest quotes of products nobody watches."""
TICK = 0.05
"""The writer looks for work at least this often."""
MAX_PENDING = 20_000
"""Updates that may wait for the bus while a write is on its way; beyond it they are
dropped, counted, and announced as a skipped batch (gateways read the newest quotes)."""
MESSAGE_UPDATES = 1000
"""Updates in one bus message at the most (about 1 MB): a burst goes as several, each far
below Redis's output buffer limit for a subscriber."""
STATUS_TTL_MS = 3000
"""The ingest's status expires this long after its last report: gateways then say the
ingest is silent."""
WATCHERS_EVERY = 1.0
"""Seconds between reads of every gateway's watched codes (beside their announcements)."""
ALLOW_EVERY = 0.5
"""Seconds between looks at the store's allow-list (`tickwire allow --data-dir` writes it
straight)."""
MAX_CALLS = 64
"""Gateways' calls answered at once; more are answered 503."""
CHUNK = 50
"""K-line windows written in one transaction at a (re)connect."""


class PrefixInUse(OSError):
    """Another ingest publishes under this prefix."""


def process_id() -> str:
    """This process among those of a deployment: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class _Older(NamedTuple):
    """Bars to read from the store for a window kept longer than the market's."""

    window: int
    """Its place among the windows written."""
    code: str
    interval: str
    rows: int
    before_ms: int


def _open_ms(bar: bytes) -> int:
    """The open time of an encoded bar, `[open_ms,...]`."""
    return int(bar[1:bar.index(b",")])


class IngestSide:
    def __init__(self, link: Link, keys: Keys, settings: EngineConfig, catalogue: Catalogue,
                 market: Market, store: SqliteStore) -> None:
        self.id = process_id()
        self._link = link
        self._keys = keys
        self._lease_ms = int(settings.lease * 1000)
        self._kept = {name: max(rows, settings.kept_bars) for name, rows in WINDOW.items()}
        """Bars kept in Redis per product and interval."""
        self._catalogue = catalogue
        self._market = market
        self._store = store
        client = link.client
        self._publish = client.register_script(lua.PUBLISH)
        self._bars_script = client.register_script(lua.BARS)
        self._hold = client.register_script(lua.HOLD)
        self._let_go = client.register_script(lua.LET_GO)
        self._allow = client.register_script(lua.ALLOW)
        self._watchers = client.register_script(lua.WATCHERS)
        self._pending: list[str | bytes] = []
        """Codes and bodies of updates for the bus, in turn (the script's arguments)."""
        self._sent: dict[str, bytes] = {}
        """The body last stored as each product's newest quote (compared by identity)."""
        self._bars: list[StoredBar] = []
        self._status: IngestStatus | None = None
        self._status_new = False
        self._seq = 0
        self._kick = asyncio.Event()
        self._idle = asyncio.Event()
        self._stale = True
        """The whole state is to be written (at the start, after a failure, a restore)."""
        self.written = asyncio.Event()
        """Set once the whole state has been written."""
        self._renewed = 0.0
        self._scanned = 0.0
        self._local: Counter[str] = Counter()
        """Codes watched by a gateway in this process."""
        self._remote: dict[str, set[str]] = {}
        """Codes watched by other gateways, and which."""
        self._watched: set[str] = set()
        self._gateway_id = ""
        """This process's gateway (role "all"), whose announcements are already counted."""
        self._allow_version = -1
        self._calls = asyncio.Semaphore(MAX_CALLS)
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self.conflict: str | None = None
        """Another ingest's id, while it holds the prefix."""
        self.batches = 0
        self.dropped = 0
        self.skipped = 0
        """Bodies that could not go on the bus (a NUL byte in them)."""

    # the ingest's calls ---------------------------------------------------------------------

    def publish(self, batch: Published) -> None:
        if self._stale:
            return  # the whole state is written at the (re)connect: this is in it
        pending, sent = self._pending, self._sent
        for code, body in batch:
            if b"\0" in body:
                self.skipped += 1
                continue
            pending.append(code)
            pending.append(body)
            sent[code] = body
        if len(pending) > 2 * MAX_PENDING:
            self._drop()
        self._kick.set()

    def _drop(self) -> None:
        """Forget what waits for the bus; gateways see the batch number skip and read the
        newest quotes, which are all written again."""
        if self._pending:
            self.dropped += len(self._pending) // 2
            self._pending = []
            self._seq += 1
        self._sent.clear()

    def watched(self, code: str) -> bool:
        return code in self._watched

    def report(self, status: IngestStatus) -> None:
        self._status, self._status_new = status, True

    @property
    def status(self) -> IngestStatus | None:
        """The newest report."""
        return self._status

    def bars(self, closed: list[StoredBar], forming: list[StoredBar]) -> None:
        self._bars += closed
        self._bars += forming

    def restored(self) -> None:
        """The market was loaded again: write it whole."""
        self._stale = True
        self._kick.set()

    def local_watch(self, code: str, delta: int) -> None:
        """A gateway in this process watches `code` (+1) or stops (-1)."""
        self._local[code] += delta
        if self._local[code] <= 0:
            del self._local[code]
        self._rewatch()

    # watching -------------------------------------------------------------------------------

    def on_watching(self, data: bytes) -> None:
        """A gateway's announcement: `w|u NUL gateway NUL code`, or `r NUL gateway` (read
        its codes again)."""
        op, _, rest = data.partition(b"\0")
        gid, _, code = rest.partition(b"\0")
        gateway = gid.decode(errors="replace")
        if gateway == self._gateway_id:
            return
        if op == b"r":
            self._spawn(self._read_watchers())
            return
        name = code.decode(errors="replace")
        watchers = self._remote.setdefault(name, set())
        if op == b"w":
            watchers.add(gateway)
        else:
            watchers.discard(gateway)
            if not watchers:
                del self._remote[name]
        self._rewatch()

    def _rewatch(self) -> None:
        """The codes watched anywhere; the newest body of each code that has just become
        watched goes on the bus at once, so the gateway that asked has it even if the
        product is quiet, and misses nothing since it read the newest quote."""
        watched = set(self._local) | set(self._remote)
        fresh = watched - self._watched
        self._watched = watched
        body_of = self._market.body
        republish = [(code, body) for code in fresh if (body := body_of(code)) is not None]
        if republish:
            self.publish(republish)

    async def _read_watchers(self) -> None:
        try:
            flat = await self._watchers(keys=[self._keys.gateways],
                                        args=[self._keys.prefix, lua.WHOLE])
        except FAILURES as exc:
            self._link.failed(exc)
            return
        remote: dict[str, set[str]] = {}
        i = 0
        while i < len(flat):
            gateway, count = flat[i].decode(errors="replace"), int(flat[i + 1])
            if gateway != self._gateway_id:
                for code in flat[i + 2:i + 2 + count]:
                    remote.setdefault(code.decode(errors="replace"), set()).add(gateway)
            i += 2 + count
        self._remote = remote
        self._rewatch()

    # writing --------------------------------------------------------------------------------

    async def start(self, gateway_id: str = "") -> None:
        """Take the prefix (waiting out a lease a previous ingest may still hold), then
        write the whole state in the background. Raises `PrefixInUse` when another ingest
        holds it; with Redis unreachable, starts anyway and keeps trying."""
        self._gateway_id = gateway_id
        deadline = time.monotonic() + self._lease_ms / 1000 + 1
        while not self._link.closing:
            try:
                holder = await self._hold(keys=[self._keys.ingest],
                                          args=[self.id, self._lease_ms])
            except FAILURES as exc:
                self._link.failed(exc)
                break
            if holder == 1:
                self._renewed = time.monotonic()
                break
            if time.monotonic() > deadline:
                raise PrefixInUse(
                    f"another ingest ({holder.decode(errors='replace')}) publishes to "
                    f"{self._link.url} under the prefix {self._keys.prefix!r}; stop it, or "
                    "give this one another [engine] prefix")
            await asyncio.sleep(0.25)
        self._tasks = [asyncio.create_task(self._write_forever(), name="redis-writer"),
                       asyncio.create_task(self._follow_watchers(), name="redis-watchers"),
                       asyncio.create_task(self._follow_allow(), name="redis-allow")]

    async def _write_forever(self) -> None:
        backoff = Backoff(initial=RETRY_FIRST, maximum=RETRY_MOST, reset_after=0)
        while not self._link.closing:
            try:
                if self._stale:
                    self._stale = False  # updates from here on are sent after it
                    if not await self._write_everything():
                        self._stale = True  # another ingest holds the prefix: wait
                        await asyncio.sleep(self._lease_ms / 3000)
                        continue
                    self.written.set()
                    self._link.ok()
                    backoff.reset()
                if not await self._write_changes():
                    self._idle.set()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._kick.wait(), TICK)
                    self._kick.clear()
            except Exception as exc:
                if isinstance(exc, FAILURES):
                    self._link.failed(exc)
                else:
                    log.exception("writing to redis failed")
                self._stale = True
                self._drop()
                self._bars = []
                await asyncio.sleep(backoff.next())

    async def _write_everything(self) -> bool:
        """The whole state, from the market as it is now: what waited is in it. The next
        batch's number skips, so gateways read the newest quotes again. False, and nothing
        written, while another ingest holds the prefix."""
        self._renewed = time.monotonic()
        self._held(await self._hold(keys=[self._keys.ingest], args=[self.id, self._lease_ms]))
        if self.conflict is not None:
            return False
        self._drop()
        self._seq += 1
        self._bars = []
        market, keys = self._market, self._keys
        windows: list[tuple[str, dict[bytes, int]]] = []
        older: list[_Older] = []
        for code, product in market.products.items():
            for interval in INTERVALS:
                encoded, _ = product.series[interval].newest(WINDOW[interval])
                windows.append((keys.bars(code, interval),
                                {bar: _open_ms(bar) for bar in encoded}))
                more = self._kept[interval] - len(encoded)
                if encoded and more > 0:  # kept beyond the market's window: from the store
                    older.append(_Older(len(windows) - 1, code, interval, more,
                                        _open_ms(encoded[-1]) - 1))
        if older:
            for wanted, extra in zip(older, await asyncio.to_thread(self._older, older),
                                     strict=True):
                windows[wanted.window][1].update(extra)
        latest = {code: body for code in market.products
                  if (body := market.body(code)) is not None and b"\0" not in body}
        self._sent = dict(latest)
        catalogue = encode({"categories": self._catalogue.categories,
                            "products": list(self._catalogue.products.values()),
                            "kept": self._kept})
        client = self._link.client
        async with client.pipeline(transaction=True) as pipe:
            pipe.delete(keys.latest)
            if latest:
                pipe.hset(keys.latest, mapping=latest)  # type: ignore[arg-type]
            pipe.set(keys.catalogue, catalogue)
            pipe.set(keys.catalogue_id,
                     hashlib.sha1(catalogue, usedforsecurity=False).hexdigest())
            await pipe.execute()
        for i in range(0, len(windows), CHUNK):
            async with client.pipeline(transaction=True) as pipe:
                for key, scored in windows[i:i + CHUNK]:
                    pipe.delete(key)
                    if scored:
                        pipe.zadd(key, scored)  # type: ignore[arg-type]
                await pipe.execute()
        self._allow_version = -1
        await self._share_allow()
        self._status_new = True
        log.info("redis written whole", extra={"redis": self._link.url,
                                                "products": len(market.products)})
        return True

    def _older(self, wanted: list[_Older]) -> list[dict[bytes, int]]:
        """Stored bars before the market's windows, encoded (in a thread of its own)."""
        out = []
        for one in wanted:
            series = self._market.products[one.code].series[one.interval]
            rows = self._store.read_bars(one.code, one.interval, one.rows, one.before_ms)
            out.append({series.encode(row): row[0] for row in rows})
        return out

    async def _write_changes(self) -> bool:
        """Write what came in since the last write; False when there was nothing."""
        now = time.monotonic()
        bus, self._pending = self._pending, []
        stored_only: list[str | bytes] = []
        if now - self._scanned >= QUIET_EVERY:
            self._scanned = now
            stored_only = self._quiet(bus)
        bars, self._bars = self._bars, []
        renew = now - self._renewed >= self._lease_ms / 3000
        status = self._status if self._status_new else None
        if not (bus or stored_only or bars or status or renew):
            return False
        keys = self._keys
        async with self._link.client.pipeline(transaction=False) as pipe:
            if renew:
                await self._hold(keys=[keys.ingest], args=[self.id, self._lease_ms],
                                 client=pipe)
            if (bus or stored_only) and self.conflict is None:
                size = 2 * MESSAGE_UPDATES
                chunks = [bus[i:i + size] for i in range(0, len(bus), size)] or [[]]
                for i, chunk in enumerate(chunks):
                    header = ""
                    if chunk:
                        header = f"{self.id}:{self._seq}"
                        self._seq += 1
                        self.batches += 1
                    stored = stored_only if i == len(chunks) - 1 else []
                    await self._publish(keys=[keys.latest], client=pipe, args=[
                        keys.updates, header, len(chunk) // 2, *chunk, *stored])
            if bars and self.conflict is None:
                bar_keys, bar_args = self._bar_arguments(bars)
                await self._bars_script(keys=bar_keys, args=bar_args, client=pipe)
            if status is not None:
                self._status_new = False
                pipe.set(keys.status, msgspec.json.encode(status), px=STATUS_TTL_MS)
            results = await pipe.execute()
        if renew:
            self._renewed = now
            self._held(results[0])
        return True

    def _held(self, holder: object) -> None:
        if holder == 1:
            if self.conflict is not None:
                log.warning("holding the redis prefix again", extra={"prefix": self._keys.prefix})
            self.conflict = None
            return
        other = holder.decode(errors="replace") if isinstance(holder, bytes) else str(holder)
        if self.conflict != other:
            log.error("another ingest publishes under this prefix: not publishing",
                      extra={"prefix": self._keys.prefix, "other": other})
        self.conflict = other

    def _quiet(self, bus: list[str | bytes]) -> list[str | bytes]:
        """Codes and bodies of products whose newest quote changed since it was stored
        (nobody watches them, or their update came while the whole state was being
        written): encoded now, once. Those of watched products are added to `bus`."""
        out: list[str | bytes] = []
        sent, body_of, watched = self._sent, self._market.body, self._watched
        for code, product in self._market.products.items():
            body = product.body
            if body is None:
                if not product.quote.started:
                    continue
                body = body_of(code)
            if body is not None and body is not sent.get(code) and b"\0" not in body:
                sent[code] = body
                into = bus if code in watched else out
                into.append(code)
                into.append(body)
        return out

    def _bar_arguments(self, bars: Iterable[StoredBar]) -> tuple[list[str], list[int | bytes]]:
        """The K-line script's keys and arguments: each key's bars, encoded."""
        by_key: dict[tuple[str, str], list[int | bytes]] = {}
        products = self._market.products
        for code, interval, row in bars:
            product = products.get(code)
            if product is None:
                continue
            encoded = by_key.setdefault((code, interval), [])
            encoded.append(row[0])
            encoded.append(product.series[interval].encode(row))
        keys: list[str] = []
        args: list[int | bytes] = []
        for (code, interval), pairs in by_key.items():
            keys.append(self._keys.bars(code, interval))
            args += [self._kept[interval] + 1, len(pairs) // 2, *pairs]
        return keys, args

    # the allow-list -------------------------------------------------------------------------

    async def _follow_allow(self) -> None:
        while not self._link.closing:
            await asyncio.sleep(ALLOW_EVERY)
            if not self._stale:
                try:
                    await self._share_allow()
                except FAILURES as exc:
                    self._link.failed(exc)
                except Exception:
                    log.exception("reading the allow-list failed")

    async def _share_allow(self) -> None:
        """The store's allow-list to Redis and every gateway, when newer than the last."""
        snapshot = await asyncio.to_thread(self._store.allow_list)
        if snapshot.version > self._allow_version:
            await self._announce(snapshot.version, encode_allow(snapshot))

    async def _announce(self, version: int, blob: bytes) -> None:
        keys = self._keys
        await self._allow(keys=[keys.allow, keys.allow_version],
                          args=[version, blob, keys.allow_changed])
        self._allow_version = max(self._allow_version, version)

    # gateways' calls ------------------------------------------------------------------------

    def on_call(self, data: bytes) -> None:
        self._spawn(self._answer(data))

    async def _answer(self, data: bytes) -> None:
        try:
            request = decode_request(data)
        except msgspec.DecodeError:
            log.warning("unreadable call to the ingest ignored", extra={"call": data[:100]})
            return
        if self._calls.locked():
            reply = Reply(request.id, "the ingest is busy: too many calls at once", 503)
        else:
            async with self._calls:
                reply = await self._reply(request.id, request.call)
        try:
            await self._link.client.publish(request.reply_to, encode(reply))
        except FAILURES as exc:
            self._link.failed(exc)

    async def _reply(self, call_id: int, call: object) -> Reply:
        try:
            if isinstance(call, KlinesCall):
                if call.code not in self._market.products or call.interval not in WINDOW:
                    return Reply(call_id, f"unknown code or interval: {call.code[:64]} "
                                          f"{call.interval[:8]}", 404)
                bars = await window_or_store(self._market, self._store, call.code,
                                             call.interval, call.rows, call.end_ms)
                return Reply(call_id, bars=bars)
            if isinstance(call, AllowAdd):
                with stored("the allow-list change"):
                    snapshot = await asyncio.to_thread(self._store.allow_add, call.cidr,
                                                       call.note)
                changed = True
            elif isinstance(call, AllowRemove):
                with stored("the allow-list change"):
                    changed, snapshot = await asyncio.to_thread(self._store.allow_remove,
                                                                call.cidr)
            else:
                return Reply(call_id, "unknown call", 400)
            await self._announce(snapshot.version, encode_allow(snapshot))
            return Reply(call_id, changed=changed, allow=snapshot)
        except TickwireError as exc:
            return Reply(call_id, exc.msg, exc.status)
        except FAILURES as exc:
            self._link.failed(exc)
            return Reply(call_id, f"the change is stored but not announced: {exc}", 503)

    # housekeeping ---------------------------------------------------------------------------

    async def _follow_watchers(self) -> None:
        while not self._link.closing:
            await asyncio.sleep(WATCHERS_EVERY)
            try:
                await self._read_watchers()
            except Exception:
                log.exception("reading the gateways' watched codes failed")

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settle(self) -> None:
        """Until everything handed over so far is written."""
        self._scanned = 0.0
        self._idle.clear()
        self._kick.set()
        await self._idle.wait()

    def health(self) -> dict[str, object]:
        state: dict[str, object] = {
            "id": self.id, "written": not self._stale, "batches": self.batches,
            "dropped": self.dropped, "watched": len(self._watched)}
        if self.conflict is not None:
            state["conflict"] = f"another ingest publishes under this prefix: {self.conflict}"
        return state

    async def finish(self) -> None:
        """Write what waits (for a moment) and let go of the prefix."""
        if not self._stale and self._link.up:
            with contextlib.suppress(TimeoutError, *FAILURES):
                await asyncio.wait_for(self.settle(), 2.0)
            with contextlib.suppress(*FAILURES):
                await self._let_go(keys=[self._keys.ingest], args=[self.id])

    async def close(self) -> None:
        for task in [*self._tasks, *self._background]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)

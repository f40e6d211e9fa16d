"""Relay: another server of this protocol (the vendor, or another tickwire) as a feed.

One to six upstream WebSockets (`connections`) carry every relayed code, whatever the number
of local clients; each push is served locally as the upstream wrote it. Local requests are
answered from this server's memory and store, never forwarded, and every upstream request
goes through the SDK's rate limits, so the relay stays within the upstream's limits (3
quotes, 5 K-line requests a second per code) whatever the local load.

K-lines: the upstream's windows of every interval are fetched and stored at start and after
every outage; between fetches bars are built from the pushes, and each bar this server
closes is then reconciled with the upstream's own (a fetch of the newest few bars, a few
seconds after the close), so stored closed bars are the upstream's and stay stored after
they leave the upstream's window.

Outages: while a connection is down the feed is `down` with the reason, the SDK reconnects
with a capped, jittered backoff, local clients keep the last quotes, and the clock stops:
no bars are made up for the outage. At reconnection the time since is left as a gap, then
filled with whatever the upstream has for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable

import aiohttp

from tickwire.client.aio import AsyncClient
from tickwire.client.events import Event
from tickwire.client.limits import Limits
from tickwire.client.models import Bars
from tickwire.config import RelayFeedConfig
from tickwire.errors import TickwireError, UnknownCode
from tickwire.feeds.base import FeedState, HistorySink, Sink
from tickwire.feeds.decode import BodyUpdates
from tickwire.market.bars import BarRow, Interval
from tickwire.market.clock import TimeZone
from tickwire.models import INTERVALS, WINDOW

log = logging.getLogger("tickwire.feeds.relay")

CLOCK_LAG_MS = 2_000
"""How far the relay's clock runs behind this machine's: a push stamped by the upstream a
little before a bar's end still lands in that bar."""
RECONCILE_AFTER = 3.0
"""Seconds after a bar's end that the upstream's own is fetched in its place."""
RECONCILE_ROWS = 3
"""Bars fetched to reconcile: the closed one, one before it, and the newly forming one."""
FETCHES_AT_ONCE = 16
"""Upstream K-line requests in flight at once (each code is also held to its own limit)."""
_DOWN_EVENTS = frozenset({"disconnected", "dead", "reconnecting", "failed"})


def _rows(bars: Bars) -> list[BarRow]:
    return [(b.open_ms, b.open, b.high, b.low, b.close, b.volume) for b in bars]


class _Link:
    """One upstream WebSocket and the codes it carries."""

    def __init__(self, feed: RelayFeed, codes: list[str]) -> None:
        self.feed = feed
        self.codes = codes
        self.up = False
        self.bodies = BodyUpdates()
        self.client = AsyncClient(feed.config.http_url, feed.config.ws_url or None,
                                  limits=Limits(), on_event=self.on_event)

    def on_event(self, event: Event) -> None:
        if event.kind == "connected":
            self.up = True
            self.bodies.forget()
            self.feed.reconnected(self)
        elif event.kind in _DOWN_EVENTS:
            self.up = False
            self.feed.went_down(f"upstream {self.client.ws_url}: {event.message}")

    async def pump(self, sink: Sink) -> None:
        """Every push of the link's codes, as it comes, to the ingest."""
        async with self.client.stream(self.codes, maxsize=100_000) as stream:
            while True:
                try:
                    async for quote in stream:
                        sink.publish([self.bodies.update(quote, quote.raw_json,
                                                         int(time.time() * 1000))])
                        self.feed.pushes += 1
                    return
                except UnknownCode as exc:  # the upstream no longer lists it: go on
                    log.warning("upstream refuses a code", extra={"error": str(exc)})


class RelayFeed:
    """Relays the upstream of `config` for `codes` (see the module's text)."""

    def __init__(self, config: RelayFeedConfig, codes: list[str], tz: TimeZone,
                 name: str = "relay") -> None:
        self.name = name
        self.config = config
        self.codes = codes
        self.tz = tz
        self.state = FeedState.CONNECTING
        self.error: str | None = None
        self.pushes = 0
        self.fetches = 0
        self.reconciled = 0
        self._links: list[_Link] = []
        self._sink: Sink | None = None
        self._windows: asyncio.Queue[_Link] = asyncio.Queue()
        self._filling = 0
        """Links whose windows are being fetched (the feed is live when none is)."""
        self._gate = asyncio.Semaphore(FETCHES_AT_ONCE)

    def status(self) -> dict[str, object]:
        return {"kind": "relay", "upstream": self.config.http_url, "codes": len(self.codes),
                "connections": len(self._links),
                "connected": sum(link.up for link in self._links),
                "pushes": self.pushes, "kline_fetches": self.fetches,
                "reconciled_bars": self.reconciled}

    # connection events (the SDK calls these on the loop) -----------------------------------

    def reconnected(self, link: _Link) -> None:
        sink = self._sink
        if sink is not None:
            # the time since the last push of these codes is a gap, filled by the upstream's
            # windows next; a code still forming its current bar goes on unchanged
            sink.skip_to(int(time.time() * 1000) - CLOCK_LAG_MS)
        self._filling += 1
        self._windows.put_nowait(link)
        self._settle()

    def went_down(self, why: str) -> None:
        if self.state is not FeedState.DOWN:
            log.warning("upstream down", extra={"feed": self.name, "error": why})
        self.state = FeedState.DOWN
        self.error = why

    def _settle(self) -> None:
        if all(link.up for link in self._links):
            self.error = None
            self.state = FeedState.LIVE if not self._filling else FeedState.CONNECTING

    # running ------------------------------------------------------------------------------

    async def run(self, sink: Sink) -> None:
        self._sink = sink
        count = min(self.config.connections, len(self.codes)) or 1
        self._links = [_Link(self, self.codes[i::count]) for i in range(count)]
        self._windows, self._filling = asyncio.Queue(), 0
        self.state, self.error = FeedState.CONNECTING, None
        try:
            async with contextlib.AsyncExitStack() as stack:
                for link in self._links:
                    await stack.enter_async_context(link.client)
                async with asyncio.TaskGroup() as tasks:
                    for link in self._links:
                        tasks.create_task(link.pump(sink))
                    tasks.create_task(self._clock(sink))
                    tasks.create_task(self._fill_windows(sink.history))
                    tasks.create_task(self._reconcile(sink.history))
        except ExceptionGroup as group:  # the supervisor shows the error itself, not a group
            raise group.exceptions[0] from None

    async def _clock(self, sink: Sink) -> None:
        """Closes bars on this machine's time, a little behind, while every link is up."""
        while True:
            await asyncio.sleep(0.5)
            if self._links and all(link.up for link in self._links):
                sink.advance(int(time.time() * 1000) - CLOCK_LAG_MS)

    async def _fill_windows(self, history: HistorySink | None) -> None:
        """The upstream's windows of every interval, for each link that (re)connected."""
        while True:
            link = await self._windows.get()
            try:
                if history is not None:
                    await self._latest_quotes(link)
                    await asyncio.gather(*(self._fetch(history, link, code, INTERVALS,
                                                       None) for code in link.codes))
            finally:
                self._filling -= 1
                self._settle()

    async def _latest_quotes(self, link: _Link) -> None:
        """The upstream's quotes now, so a quiet product has its quote here at once."""
        sink = self._sink
        try:
            quotes = await link.client.quotes(link.codes)
        except UnknownCode as exc:
            quotes = list(exc.found)
        except (TickwireError, aiohttp.ClientError, OSError) as exc:
            log.warning("upstream quotes failed", extra={"feed": self.name, "error": str(exc)})
            return
        if sink is not None and quotes:
            now = int(time.time() * 1000)
            sink.publish([link.bodies.update(q, q.raw_json, now) for q in quotes])

    async def _reconcile(self, history: HistorySink | None) -> None:
        """After each bar's end (plus `RECONCILE_AFTER`), the upstream's newest bars of that
        interval in place of this server's, for every code whose link is up."""
        intervals = [Interval(name, self.tz) for name in INTERVALS]
        due = {i.name: i.following(i.floor(int(time.time() * 1000))) for i in intervals}
        while True:
            now = int(time.time() * 1000)
            wake = min(due.values()) + int(RECONCILE_AFTER * 1000)
            if now < wake:
                await asyncio.sleep((wake - now) / 1000)
                continue
            ended = [i.name for i in intervals if due[i.name] + RECONCILE_AFTER * 1000 <= now]
            for interval in intervals:
                if interval.name in ended:
                    due[interval.name] = interval.following(interval.floor(now))
            if history is None:
                continue
            await asyncio.gather(*(
                self._fetch(history, link, code, ended, RECONCILE_ROWS)
                for link in self._links if link.up for code in link.codes))

    async def _fetch(self, history: HistorySink, link: _Link, code: str,
                     intervals: Iterable[str], rows: int | None) -> None:
        """Bars of `code` from the upstream (`rows`, or each interval's window), stored in
        place of this server's. A failure is logged; the next fetch tries again."""
        bars: dict[str, list[BarRow]] = {}
        async with self._gate:
            for interval in intervals:
                try:
                    got = await link.client.klines(code, interval, rows or WINDOW[interval])
                except (TickwireError, aiohttp.ClientError, OSError) as exc:
                    log.warning("upstream K-lines failed", extra={
                        "feed": self.name, "code": code, "interval": interval,
                        "error": str(exc)})
                    continue
                self.fetches += 1
                bars[interval] = _rows(got)
        if bars:
            history.load_history(code, bars, None)
            if rows is not None:
                self.reconciled += sum(max(len(r) - 1, 0) for r in bars.values())

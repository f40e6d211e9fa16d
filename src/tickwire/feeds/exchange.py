"""Exchange: a crypto exchange's public streams, through ccxt (`tickwire[exchanges]`).

Each symbol has two streams of its own, watched with ccxt.pro: its trades
(`watch_trades`) and its order book (`watch_order_book`). A trade is an update at the
exchange's trade time, priced at the trade, with its size and side (the aggressor: 2 buy,
1 sell); a book is an update of the top `depth` levels a side, without a price.

The order book is ccxt's: for Binance, the REST snapshot plus the diff stream by Binance's
documented rules, each diff's first update id checked against the previous one's last.
ccxt answers a gap by dropping that symbol's book and failing its watch
(`ChecksumError`); the feed counts a resync and watches the symbol again, which makes
ccxt subscribe again and fetch a new snapshot: only that symbol is resynchronised. A
crossed book (best bid at or above best ask) is never handed on: it is skipped and counted.

Clock: the exchange's event times (trade and book times) drive it, carried forward by this
machine's monotonic time since the newest event, `CLOCK_LAG_MS` behind, so quiet symbols
still close their bars; it stops while every stream of trades is down.

History: at start, before the streams, each symbol's windows of the intervals that the
exchange's candles can give as they are (`1m` to `1h`, where the service time zone's bars
line up with the exchange's UTC ones): 600 `1m`, 300 of the others. Days and months are
rolled up in the service time zone from the exchange's longest candle that lines up with
its day (UTC+8 on Binance: `8h`), 1,000 of them in one request (300 days, 11 months), and
today's statistics (open, high, low, volume, previous close) come from them; the older
months, up to 100, are fetched in the background once the streams run. When the
exchange cannot be reached at start, the streams start at once and each symbol's windows
are fetched when its first trades come. After a stream of trades
was down, the candles of the bars that ended during the outage are fetched, and the bar it
came back in once that bar has ended, so those bars are the exchange's own (no bar lost,
none short of the trades missed).

Renewal: exchanges end a connection after a while (Binance: 24 hours). Every
`RENEW_AFTER_S` the feed opens a new one beside the old, serves the new one's books once
each has come, and closes the old one `RENEW_OVERLAP` seconds later; a trade both hand on
is counted once, by its id (an exchange that gives trades no id could count a trade of
those seconds twice). No trade is missed, so no bar needs mending.

Outages: a stream that fails for a reason worth retrying (ccxt's `NetworkError` family:
the connection lost, `ExchangeNotAvailable`, `DDoSProtection`, `RateLimitExceeded`,
timeouts) leaves the feed `down` with that reason, and is watched again after a capped,
jittered backoff; clients keep the last quotes. Anything else is raised to the supervisor.

What ccxt does that shapes this (ccxt 4.5): a watch resolves only on a message that comes
while it is awaited, with what came since the last one; a trade that came while nothing
awaited is handed on with the next message, and ccxt keeps the newest 1,000 trades a
symbol by default (`TRADES_KEPT` here, the cache emptied at each read). So the streams
are awaited without pause, and fetches run beside them. ccxt also
spaces its REST requests by their weight (Binance: a 1,000-level snapshot every second at
most, behind any candle requests), so books of many symbols, and a resync, can take seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from tickwire.client.backoff import Backoff
from tickwire.config import ExchangeFeedConfig
from tickwire.feeds.base import FeedState, HistorySink, Sink
from tickwire.feeds.markets import code_of, make_exchange
from tickwire.market.bars import CLOSE, OPEN, BarRow, Interval, combine
from tickwire.market.clock import TimeZone
from tickwire.market.quotes import DayStats
from tickwire.models import BUY, SELL, WINDOW, Update

log = logging.getLogger("tickwire.feeds.exchange")

CLOCK_LAG_MS = 2_000
"""How far the feed's clock runs behind the exchange's newest event (carried forward by
this machine's time): a trade stamped a little before a bar's end still lands in it."""
TIMEFRAMES = {"1m": "1m", "5m": "5m", "15m": "15m", "30m": "30m", "1h": "1h"}
"""The intervals filled from the exchange's candles as they are, and ccxt's names of them."""
RECONCILE_ROWS = 2
"""Candles fetched to reconcile the bar a trade stream came back in, once it has ended."""
ROLLED = ("1d", "1M")
"""The intervals rolled up from the exchange's candles in the service time zone."""
ROLLUP_TIMEFRAMES = {"1d": 86_400_000, "12h": 43_200_000, "8h": 28_800_000,
                     "6h": 21_600_000, "4h": 14_400_000, "2h": 7_200_000, "1h": 3_600_000}
"""Candles that days and months may be rolled up from, longest first, by length in ms."""
ROLLUP_ROWS = 1_000
"""Candles asked per request for days and months (Binance gives at most 1,000): at start
one request, enough for the 300 days of the window with `8h` candles."""
ROLLUP_REQUESTS = 12
"""Requests at most for one roll-up after the start's: the older months (in the
background), the days and months of an outage."""
RENEW_AFTER_S = 23 * 3600.0
"""Seconds a connection is kept before a planned renewal: exchanges end theirs after a
while (Binance: 24 hours), and a renewal loses nothing where an ended one would."""
RENEW_TIMEOUT = 60.0
"""Seconds a renewal's new connection has to hand on every symbol's book; else it is
closed and the old one kept until the next renewal."""
RENEW_OVERLAP = 2.0
"""Seconds both connections of a renewal run side by side once the new one is up, so the
trades in flight on the old one still arrive."""
SEEN_TRADES = 4_096
"""Trade ids remembered per symbol to count a trade handed on twice once."""


def _network_error() -> tuple[type[BaseException], type[BaseException]]:
    import ccxt

    return ccxt.NetworkError, ccxt.ChecksumError


def _any_error() -> type[BaseException]:
    import ccxt

    return ccxt.BaseError  # type: ignore[no-any-return]


class _Recent:
    """The newest `SEEN_TRADES` trade ids of one symbol."""

    __slots__ = ("_ids", "_order")

    def __init__(self) -> None:
        self._ids: set[object] = set()
        self._order: deque[object] = deque()

    def add(self, trade_id: object) -> bool:
        """Remember `trade_id`; False if it was remembered already."""
        if trade_id in self._ids:
            return False
        self._ids.add(trade_id)
        self._order.append(trade_id)
        if len(self._order) > SEEN_TRADES:
            self._ids.discard(self._order.popleft())
        return True


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first error of a group of task groups."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


async def _stop(streams: asyncio.Task[None], exchange: Any) -> None:
    """End one connection's streams and close its exchange object."""
    streams.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await streams
    await exchange.close()


class ExchangeFeed:
    """Streams `config.symbols` of `config.exchange` (see the module's text)."""

    def __init__(self, config: ExchangeFeedConfig, tz: TimeZone,
                 name: str = "exchange") -> None:
        self.name = name
        self.config = config
        self.tz = tz
        self.codes = [code_of(symbol) for symbol in config.symbols]
        self.state = FeedState.CONNECTING
        self.error: str | None = None
        self.trades = 0
        self.books = 0
        self.crossed = 0
        """Books skipped because the best bid was at or above the best ask."""
        self.resyncs: dict[str, int] = {}
        """Books fetched again after a gap in the diff sequence, by code."""
        self.reconnects = 0
        self.candles = 0
        self.reconciled = 0
        """Bars replaced by the exchange's own after a trade stream came back."""
        self._due: list[tuple[int, int, str, str, str]] = []
        """(bar end, bar open, symbol, code, interval): bars to reconcile once the clock
        passes their end."""
        self._tasks: asyncio.TaskGroup | None = None
        self._unfilled: set[str] = set()
        """Symbols whose windows the exchange could not give at start."""
        self._exchange: Any = make_exchange(config)  # no request until `run`
        self._down: dict[str, str] = {}
        """Streams that are down ("trades BTC/USDT"), and why."""
        self._waiting: set[str] = set()
        """Books that have not come yet since the start: the feed is live once every
        symbol's has (a book comes at once; a quiet market's first trade may take long)."""
        self._event_ms: int | None = None
        self._event_at = 0.0
        self._advanced = 0
        self._books: dict[str, tuple[list[tuple[float, float]], list[tuple[float, float]]]] = {}
        self.renew_after = RENEW_AFTER_S
        """Seconds between planned renewals of the connection (`_connections`)."""
        self.renewals = 0
        self.duplicates = 0
        """Trades handed on twice (by both connections of a renewal), counted once."""
        self._generation = 0
        """The newest connection's number; each renewal opens the next."""
        self._book_generation: dict[str, int] = {}
        """The connection whose books are served, by symbol: a newer one's first book takes
        over, so a book never goes back to an older connection's."""
        self._seen: dict[str, _Recent] = {}
        self._renewing: list[Any] = []
        self._older: list[tuple[str, str, int]] = []
        """Month bars to fetch once the streams run: (symbol, code, before)."""
        """Exchange objects of a renewal not (or no longer) the feed's own."""

    def status(self) -> dict[str, object]:
        return {"kind": "exchange", "exchange": self.config.exchange,
                "symbols": len(self.config.symbols), "streams_down": len(self._down),
                "trades": self.trades, "books": self.books, "crossed_books": self.crossed,
                "resyncs": sum(self.resyncs.values()), "reconnects": self.reconnects,
                "renewals": self.renewals, "duplicate_trades": self.duplicates,
                "candles": self.candles}

    # running ------------------------------------------------------------------------------

    async def run(self, sink: Sink) -> None:
        exchange = self._exchange
        if exchange is None:  # a restart by the supervisor: a fresh exchange object
            exchange = self._exchange = make_exchange(self.config)
        self.state, self.error = FeedState.CONNECTING, None
        self._down.clear()
        self._books.clear()
        try:
            self._unfilled = set()
            for symbol, code in zip(self.config.symbols, self.codes, strict=True):
                if sink.history is not None and (self._unfilled or not await self._fill(
                        exchange, sink.history, symbol, code)):
                    self._unfilled.add(symbol)  # unreachable: no wait for every window
            self._waiting = {f"book {s}" for s in self.config.symbols}
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                for symbol, code, before in self._older:
                    assert sink.history is not None
                    tasks.create_task(self._older_months(exchange, sink.history, symbol,
                                                         code, before))
                self._older.clear()
                tasks.create_task(self._clock(sink))
                tasks.create_task(self._connections(sink, exchange))
        except ExceptionGroup as group:  # the supervisor shows the error itself, not a group
            raise _first(group) from None
        finally:
            opened = [self._exchange, *self._renewing]
            self._exchange, self._tasks = None, None
            self._renewing.clear()
            self._due.clear()
            for each in opened:
                await each.close()

    async def _connections(self, sink: Sink, exchange: Any) -> None:
        """The streams on `exchange`, renewed every `renew_after` seconds: a new connection
        is opened beside the old one, and the old one closed once the new one hands on
        every book, some seconds later (trades that both hand on are counted once, by
        their id), so no trade and no bar is lost to an exchange's connection limit."""
        assert self._tasks is not None
        generation = self._generation
        streams = self._tasks.create_task(self._streams(sink, exchange, generation))
        while True:
            await asyncio.sleep(self.renew_after)
            fresh = make_exchange(self.config)
            self._renewing.append(fresh)  # closed by `run` if it ends meanwhile
            self._generation += 1
            renewed = self._tasks.create_task(self._streams(sink, fresh, self._generation))
            try:
                async with asyncio.timeout(RENEW_TIMEOUT):
                    while any(self._book_generation.get(s, -1) < self._generation
                              for s in self.config.symbols):
                        await asyncio.sleep(0.05)
            except TimeoutError:  # the new connection did not come up: keep the old one
                log.warning("exchange renewal timed out: keeping the connection", extra={
                    "feed": self.name, "exchange": self.config.exchange})
                self._renewing.remove(fresh)
                await _stop(renewed, fresh)
                for symbol, served in self._book_generation.items():
                    if served == self._generation:  # the old connection's books again
                        self._book_generation[symbol] = generation
                continue
            await asyncio.sleep(RENEW_OVERLAP)
            old_streams, old = streams, exchange
            streams, exchange, generation = renewed, fresh, self._generation
            self._exchange = fresh  # and `old` is closed by `run` if it ends meanwhile
            self._renewing[self._renewing.index(fresh)] = old
            await _stop(old_streams, old)
            self._renewing.remove(old)
            self.renewals += 1

    async def _streams(self, sink: Sink, exchange: Any, generation: int) -> None:
        async with asyncio.TaskGroup() as tasks:
            for symbol, code in zip(self.config.symbols, self.codes, strict=True):
                tasks.create_task(self._watch_trades(exchange, sink, symbol, code))
                tasks.create_task(self._watch_book(exchange, sink, symbol, code, generation))

    async def _watch_trades(self, exchange: Any, sink: Sink, symbol: str, code: str) -> None:
        key = f"trades {symbol}"
        down_since: int | None = None
        backoff = Backoff()
        network, _ = _network_error()
        while True:
            try:
                trades = await exchange.watch_trades(symbol)
            except network as exc:
                if down_since is None:
                    down_since = self._clock_ms()
                await self._went_down(key, exc, backoff)
                continue
            updates = sorted((self._trade(code, t) for t in trades
                              if self._first_time(code, t)), key=lambda u: u.ts)
            cache = exchange.trades.get(symbol)  # handed on: ccxt need not keep them
            if hasattr(cache, "clear"):
                cache.clear()
            if down_since is not None and sink.history is not None and self._tasks is not None:
                # beside the stream, never in its way: ccxt hands on a trade that came while
                # nothing awaited it only with the next one, and keeps at most 1,000
                resumed = updates[0].ts if updates else self._clock_ms()
                self._tasks.create_task(self._refill(exchange, sink.history, symbol, code,
                                                     down_since, resumed))
            if symbol in self._unfilled and sink.history is not None and \
                    self._tasks is not None:
                self._unfilled.discard(symbol)
                self._tasks.create_task(self._fill(exchange, sink.history, symbol, code))
            down_since = None
            self._came_up(key, backoff)
            if updates:
                self.trades += len(updates)
                self._note(updates[-1].ts)
                sink.publish(updates)

    def _first_time(self, code: str, trade: dict[str, Any]) -> bool:
        """Whether `trade` was not handed on before (by its id; one without an id is)."""
        trade_id = trade.get("id")
        if trade_id is None:
            return True
        seen = self._seen.get(code)
        if seen is None:
            seen = self._seen[code] = _Recent()
        if seen.add(trade_id):
            return True
        self.duplicates += 1
        return False

    def _trade(self, code: str, trade: dict[str, Any]) -> Update:
        price, size = float(trade["price"]), float(trade["amount"])
        side = BUY if trade.get("side") == "buy" else SELL
        stamp = trade.get("timestamp")
        return Update(code, int(stamp) if stamp else self._clock_ms(), price,
                      trades=[(price, size, side)])

    async def _watch_book(self, exchange: Any, sink: Sink, symbol: str, code: str,
                          generation: int) -> None:
        key = f"book {symbol}"
        backoff = Backoff()
        network, gap = _network_error()
        depth = self.config.depth
        while True:
            try:
                book = await exchange.watch_order_book(symbol)
            except gap as exc:  # ccxt dropped the book: watching again resynchronises it
                self.resyncs[code] = self.resyncs.get(code, 0) + 1
                log.warning("order book gap: resynchronising", extra={
                    "feed": self.name, "symbol": symbol, "error": str(exc)[:200]})
                continue
            except network as exc:
                await self._went_down(key, exc, backoff)
                continue
            self._came_up(key, backoff)
            if generation < self._book_generation.get(symbol, -1):
                continue  # a newer connection's book is served (a renewal)
            self._book_generation[symbol] = generation
            bids = [(float(p), float(v)) for p, v, *_ in book["bids"][:depth]]
            asks = [(float(p), float(v)) for p, v, *_ in book["asks"][:depth]]
            if bids and asks and bids[0][0] >= asks[0][0]:
                self.crossed += 1
                continue
            if self._books.get(code) == (bids, asks):
                continue  # nothing changed in the levels served
            self._books[code] = (bids, asks)
            stamp = book.get("timestamp")  # none on a snapshot: at the feed's clock
            ts = int(stamp) if stamp else self._clock_ms()
            self.books += 1
            self._note(ts)
            sink.publish([Update(code, ts, None, bids, asks)])

    # state --------------------------------------------------------------------------------

    async def _went_down(self, key: str, exc: BaseException, backoff: Backoff) -> None:
        why = f"{self.config.exchange} {key}: {type(exc).__name__}: {str(exc)[:200]}"
        if key not in self._down:
            log.warning("exchange stream down", extra={"feed": self.name, "error": why})
        self._down[key] = why
        self.state, self.error = FeedState.DOWN, why
        await asyncio.sleep(backoff.next())

    def _came_up(self, key: str, backoff: Backoff) -> None:
        self._waiting.discard(key)
        if key in self._down:
            del self._down[key]
            self.reconnects += 1
            backoff.reset()
        if self._down:
            self.error = next(iter(self._down.values()))
        else:
            self.error = None
            self.state = FeedState.CONNECTING if self._waiting else FeedState.LIVE

    # clock --------------------------------------------------------------------------------

    def _note(self, ts: int) -> None:
        if self._event_ms is None or ts > self._event_ms:
            self._event_ms, self._event_at = ts, time.monotonic()

    def _clock_ms(self) -> int:
        """The exchange's newest event time carried forward by this machine's time."""
        if self._event_ms is None:
            return int(time.time() * 1000)
        return self._event_ms + int((time.monotonic() - self._event_at) * 1000)

    async def _clock(self, sink: Sink) -> None:
        while True:
            await asyncio.sleep(0.5)
            if self._event_ms is None or all(
                    f"trades {symbol}" in self._down for symbol in self.config.symbols):
                continue
            now = self._clock_ms() - CLOCK_LAG_MS
            if now > self._advanced:
                self._advanced = now
                sink.advance(now)
            due = [item for item in self._due if item[0] <= now]
            if due and sink.history is not None and self._tasks is not None:
                self._due = [item for item in self._due if item[0] > now]
                for _, start, symbol, code, interval in due:
                    self._tasks.create_task(self._reconcile(sink.history, symbol, code,
                                                            interval, start))

    # history ------------------------------------------------------------------------------

    async def _fill(self, exchange: Any, history: HistorySink, symbol: str,
                    code: str) -> bool:
        """The symbol's windows from the exchange's candles (see the module's text); False
        when the exchange could not be reached (it is filled when its trades first come)."""
        bars: dict[str, list[BarRow]] = {}
        for interval, timeframe in TIMEFRAMES.items():
            rows = await self._candles(exchange, symbol, interval, timeframe, WINDOW[interval])
            if rows is None:
                return False
            if rows:
                bars[interval] = rows
        candles = None
        rollup = self._rollup_timeframe(exchange)
        if rollup is not None:
            candles = await self._candles(exchange, symbol, "1d", rollup[0], ROLLUP_ROWS,
                                          aligned=False)
        if not candles:  # no timeframe that lines up with the day: the hours at least
            candles = bars.get("1h")
        stats = None
        if candles:
            for interval in ROLLED:
                rolled = self._rolled(candles, interval)[-WINDOW[interval]:]
                if rolled:
                    bars[interval] = rolled
            if "1d" in bars:
                stats = self._today(bars["1d"], candles)
            if rollup is not None and self._tasks is not None and "1M" in bars:
                self._tasks.create_task(self._older_months(
                    exchange, history, symbol, code, bars["1M"][0][0]))
            elif rollup is not None and "1M" in bars:
                self._older.append((symbol, code, bars["1M"][0][0]))
        if bars:
            history.load_history(code, bars, stats)
        return True

    def _rollup_timeframe(self, exchange: Any) -> tuple[str, int] | None:
        """The exchange's longest candle (name, ms) that lines up with the service time
        zone's day (UTC+8: `8h`, whose candles open at 16:00, 00:00 and 08:00 UTC)."""
        offered = getattr(exchange, "timeframes", None) or {}
        start = Interval("1d", self.tz).floor(self._clock_ms())
        for name, length in ROLLUP_TIMEFRAMES.items():
            if name in offered and start % length == 0:
                return name, length
        return None

    async def _older_months(self, exchange: Any, history: HistorySink, symbol: str,
                            code: str, before: int) -> None:
        """The month bars before `before` (up to `WINDOW["1M"]` months in all), rolled up
        from older candles in the background."""
        month = Interval("1M", self.tz)
        first = month.floor(self._clock_ms())
        for _ in range(WINDOW["1M"] - 1):
            first = month.floor(first - 1)
        months = await self._rolled_since(exchange, symbol, "1M", first, before)
        if months:
            history.load_history(code, {"1M": months}, None)

    async def _rolled_since(self, exchange: Any, symbol: str, interval: str, start: int,
                            end: int) -> list[BarRow]:
        """`symbol`'s bars of `interval` (`1d`, `1M`) opening from `start` to before `end`,
        rolled up from the exchange's candles (`ROLLUP_REQUESTS` requests at most: the
        newest of them, when the span is longer)."""
        rollup = self._rollup_timeframe(exchange)
        if rollup is None:
            return []
        timeframe, length = rollup
        since = max(start, end - ROLLUP_REQUESTS * ROLLUP_ROWS * length)
        candles: list[BarRow] = []
        while since < end:
            rows = await self._candles(exchange, symbol, interval, timeframe, ROLLUP_ROWS,
                                       since=since, aligned=False)
            if not rows:
                break
            candles.extend(row for row in rows if row[0] < end)
            since = rows[-1][0] + length
        return [row for row in self._rolled(candles, interval) if row[0] < end]
    async def _refill(self, exchange: Any, history: HistorySink, symbol: str, code: str,
                      since: int, resumed: int) -> None:
        """After `symbol`'s trades were down from `since` until a trade at `resumed`: the
        exchange's candles of the bars that ended before `resumed`, in place of those built
        here (a flat bar for the outage, a bar that lacks the trades missed), days and
        months rolled up; the bar that `resumed` falls in is fetched again once it has
        ended (`_reconcile`)."""
        bars: dict[str, list[BarRow]] = {}
        for interval, timeframe in TIMEFRAMES.items():
            aligned = Interval(interval, self.tz)
            current = aligned.floor(resumed)
            first = aligned.floor(since)
            limit = min(max(current - first, 0) // aligned.length + 1, WINDOW[interval])
            got = await self._candles(exchange, symbol, interval, timeframe, limit,
                                      since=first)
            rows = [row for row in got or () if row[0] < current]
            if rows:
                bars[interval] = rows
            self._due.append((aligned.following(current), current, symbol, code, interval))
        for interval in ROLLED:
            aligned = Interval(interval, self.tz)
            current = aligned.floor(resumed)
            rows = await self._rolled_since(exchange, symbol, interval, aligned.floor(since),
                                            current)
            if rows:
                bars[interval] = rows
            self._due.append((aligned.following(current), current, symbol, code, interval))
        if bars:
            history.load_history(code, bars, None)

    async def _reconcile(self, history: HistorySink, symbol: str, code: str,
                         interval: str, start: int) -> None:
        """The exchange's bar of `interval` opening at `start` (and the next, if ended) in
        place of those built here."""
        aligned = Interval(interval, self.tz)
        current = aligned.floor(self._clock_ms() - CLOCK_LAG_MS)
        if interval in ROLLED:
            rows = await self._rolled_since(self._exchange, symbol, interval, start, current)
        else:
            got = await self._candles(self._exchange, symbol, interval, TIMEFRAMES[interval],
                                      RECONCILE_ROWS, since=start)
            rows = [row for row in got or () if row[0] < current]
        if rows:
            self.reconciled += len(rows)
            history.load_history(code, {interval: rows}, None)

    async def _candles(self, exchange: Any, symbol: str, interval: str, timeframe: str,
                       limit: int, since: int | None = None,
                       aligned: bool = True) -> list[BarRow] | None:
        """`limit` candles of `symbol` from `since` (None: the newest), oldest first, when
        they line up with this server's bars of `interval` (or are to be rolled up into
        them: not `aligned`); none after a refusal (a window too long for the exchange),
        None when it cannot be reached (both logged)."""
        try:
            raw = await exchange.fetch_ohlcv(symbol, timeframe, since=since, limit=limit)
        except Exception as exc:  # any failure of the fetch is logged, none raised
            # (an exchange object closed by a renewal mid-fetch fails outside ccxt's errors)
            log.warning("exchange candles failed", extra={
                "feed": self.name, "symbol": symbol, "interval": interval,
                "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
            refused = isinstance(exc, _any_error()) and not isinstance(
                exc, _network_error()[0])
            return [] if refused else None
        rows = [(int(c[0]), float(c[1]), float(c[2]), float(c[3]), float(c[4]),
                 float(c[5] or 0.0)) for c in raw if None not in c[:5]]
        if not rows:
            return []
        if aligned and Interval(interval, self.tz).floor(rows[0][0]) != rows[0][0]:
            return []  # the service time zone's bars do not line up with the exchange's
        self.candles += len(rows)
        return rows

    def _rolled(self, candles: list[BarRow], interval: str) -> list[BarRow]:
        """Bars of `interval` (`1d`, `1M`) of the service time zone rolled up from
        `candles` (oldest first), the first left out unless its first candle opens it."""
        aligned = Interval(interval, self.tz)
        groups: dict[int, list[BarRow]] = {}
        for row in candles:
            groups.setdefault(aligned.floor(row[0]), []).append(row)
        bars = [combine(start, rows, 8) for start, rows in groups.items()]
        if bars and groups[bars[0][0]][0][0] != bars[0][0]:
            bars = bars[1:]
        return bars

    def _today(self, days: list[BarRow], candles: list[BarRow]) -> DayStats | None:
        """The quote's statistics of the newest day of `days`."""
        start, today_open, high, low, close, volume = days[-1]
        earlier = [row for row in candles if row[0] < start]
        last_close = earlier[-1][CLOSE] if earlier else today_open
        return DayStats(day=start, ts=candles[-1][0], price=close, open=today_open, high=high,
                        low=low, last_close=last_close, volume=volume,
                        amount=volume * (days[-1][OPEN] + high + low + close) / 4)

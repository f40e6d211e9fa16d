"""Exchange feed: updates a second that the exchange feed (ccxt) turns into quotes, one core.

A fake Binance sends real exchange data as fast as the socket takes it: the tests'
`FakeBinance` (`tests/feeds/fake_binance.py`: markets, depth snapshots and candles over
HTTP, the raw WebSocket streams), in a process of its own pinned to the other core, its CPU
measured so that a reader sees when it, not the feed, was the limit. It reads the real data
in place (`../shared/data`) and sends one event a WebSocket message, as Binance does
(compressed with permessage-deflate, which ccxt asks for and aiohttp's server grants), each
stamped with the fake's wall clock as it is sent:

- books: the depth diffs of the capture's four symbols (`cryptofeed_binance_depth`: a
  30-second capture of NKN/USDT, BLZ/ETH, LRC/BTC and RUNE/EUR) that follow their REST
  snapshots, which the fake serves; looped, each pass ending with one diff a symbol that
  sets every level the pass touched back to the snapshot's (so every pass goes through the
  capture's own books, never a crossed one), the update ids carried on so that they chain
  across passes as Binance's do;
- trades: the 12,477 real XRP/ETH trades (`freqtrade_binance_XRPETH`) as `aggTrade`
  events, looped, their ids carried on;
- both: one diff, then one trade, and so on.

Each captured symbol has one trade in the fake's past, at its book's best ask at the start
of the service day, so that the feed's fill at start gives its quote the day (a book before
any price shows nothing).

The feed runs in this process, pinned to one core, as `tickwire serve` runs it: the server
built by `tickwire.server.build` with one exchange feed of the five symbols (the history
fill, snapshots and subscriptions done before any clock starts), its ingest started (the
feed under its supervisor, a persist every 0.25 s into SQLite by the store's writer thread,
on the same core), and every product watched as if a WebSocket client held it, so that each
update handed on is encoded into a quote and published. A play is timed from asking the
fake to send until every trade is handed on and ccxt's book of each symbol holds the last
diff sent; this process's CPU time over the same span gives core µs per message and per
update. Books that ccxt applies between two reads of the feed are handed on as one, the
newest (the feed awaits without pause, but a read of the socket brings many diffs): under
this flood, far fewer books than diffs.

In the same run, the baselines, on the same core:

- ccxt alone: the same plays awaited with ccxt's `watch_trades` and `watch_order_book`,
  the feed's exchange options, nothing done with what they return: what ccxt (its
  parsing, its order books, aiohttp's WebSocket) costs before the feed does anything;
- the socket floor: an aiohttp WebSocket client opened as ccxt opens its own, subscribed to
  the same streams, reading each message's text and nothing more: what the messages cost
  before anyone parses them (ccxt alone less this is ccxt's own work);
- the ingest pipeline over the simulator's updates (`bench_ingest.py`'s `pipeline`, 300,000
  updates with full books), as the server runs it and with every product watched (every
  update encoded): the ingest benchmark's figures;
- cProfile over a quarter-sized play of both kinds at the end of the last run: the share
  of the time in ccxt, aiohttp, the feed and the ingest (the store's thread is not
  profiled).

Each run starts a fresh server and a fresh ccxt; the figures are the medians of the runs.

    .venv/bin/python benchmarks/bench_exchange.py            # the full run (about 4 minutes)
    .venv/bin/python benchmarks/bench_exchange.py --quick    # a tiny run for CI
"""

from __future__ import annotations

import asyncio
import cProfile
import importlib.util
import itertools
import json
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import benchlib
from aiohttp import web
from bench_ingest import encode_chunks, make_updates, pipeline
from benchlib import CLIENT_CORE, ROOT, SERVER_CORE, Child, table

from tickwire.config import Config, ExchangeFeedConfig, ServerConfig
from tickwire.feeds.base import FeedState
from tickwire.feeds.markets import make_exchange
from tickwire.market.bars import Interval
from tickwire.market.clock import TimeZone
from tickwire.server import build

sys.path.insert(0, str(ROOT))  # the tests' fake exchange, one copy of it
from tests.conftest import SHARED_DATA
from tests.feeds.fake_binance import (
    CAPTURED,
    SYMBOLS,
    XRPETH,
    Book,
    FakeBinance,
    capture_events,
    capture_markets,
    capture_snapshots,
    freqtrade_trades,
)

FEED_SYMBOLS = [*SYMBOLS, "XRP/ETH"]
STREAMS = [f"{symbol.lower()}@{name}" for symbol in [*CAPTURED, XRPETH.symbol]
           for name in ("depth@100ms", "aggTrade")]
"""The streams the feed subscribes to (and the socket floor, the same)."""
KINDS = {"books": "depth diffs, 4 symbols", "trades": "trades, XRP/ETH",
         "both": "diffs and trades, alternating"}
POLL = 0.002
"""Seconds between two looks at whether the feed has caught up."""
CATCH_UP = 60.0
"""Seconds the feed has to take in what the fake sent, after it sent the last message."""


# the fake exchange's streams -----------------------------------------------------------

def _template(data: dict[str, Any], fields: tuple[str, ...]) -> str:
    """`data` as JSON with `%(name)d` in place of the integer `fields` (filled in as it is
    sent)."""
    parts = []
    for key, value in data.items():
        text = f"%({key})d" if key in fields else json.dumps(value, separators=(",", ":"))
        parts.append(f"{json.dumps(key)}:{text}")
    return "{" + ",".join(parts) + "}"


Message = tuple[str, str, dict[str, int]]
"""(stream, template, its ids): the fake fills in the time (`E`, `T`) as it sends it."""


@dataclass
class _Diffs:
    """One symbol's depth diffs of a pass: (template, U, u) each, the last the reset."""

    stream: str
    diffs: list[tuple[str, int, int]]
    span: int
    """How far the update ids move on each pass."""
    snapshot_id: int


class Streams:
    """The fake's messages: the capture's depth diffs and the XRP/ETH trades, looped, with
    their ids carried on from pass to pass (see the module's text)."""

    def __init__(self, data: Path) -> None:
        snapshots = capture_snapshots(data)
        self.snapshots = {symbol: Book.of(snapshot) for symbol, snapshot in snapshots.items()}
        applied: dict[str, list[dict[str, Any]]] = {symbol: [] for symbol in CAPTURED}
        order: list[str] = []
        for _, event in capture_events(data):
            symbol = event["s"]
            if event.get("e") == "depthUpdate" and \
                    event["u"] > snapshots[symbol]["lastUpdateId"]:
                applied[symbol].append(event)  # what a client applies after the snapshot
                order.append(symbol)
        self.books: dict[str, _Diffs] = {}
        for symbol, events in applied.items():
            fields = ("E", "U", "u")
            diffs = [(_template(e, fields), e["U"], e["u"]) for e in events]
            reset_id = events[-1]["u"] + 1
            reset = {"e": "depthUpdate", "E": 0, "s": symbol, "U": 0, "u": 0,
                     **self._reset(self.snapshots[symbol], events)}
            diffs.append((_template(reset, fields), reset_id, reset_id))
            self.books[symbol] = _Diffs(f"{symbol.lower()}@depth@100ms", diffs,
                                        reset_id + 1 - events[0]["U"],
                                        snapshots[symbol]["lastUpdateId"])
        self.order = [*order, *CAPTURED]  # each pass: the capture's order, then the resets
        trades = freqtrade_trades(data)
        self.trades = [(_template(t, ("E", "T", "a", "f", "l")), t["a"], t["f"], t["l"])
                       for t in trades]
        self.trade_span = (trades[-1]["a"] + 1 - trades[0]["a"],
                           trades[-1]["l"] + 1 - trades[0]["f"])

    @staticmethod
    def _reset(snapshot: Book, events: list[dict[str, Any]]) -> dict[str, Any]:
        """Bids and asks that set each level `events` touched back to `snapshot`'s."""
        sides = {}
        for key, levels in (("b", snapshot.bids), ("a", snapshot.asks)):
            touched = sorted({price for e in events for price, _ in e[key]})
            sides[key] = [[price, levels.get(price, "0.00000000")] for price in touched]
        return sides

    @property
    def diffs_per_pass(self) -> int:
        return len(self.order)

    def snapshot_id(self, symbol: str, passes: int) -> int:
        """The update id of `symbol`'s book after `passes` whole passes."""
        books = self.books[symbol]
        return books.snapshot_id if passes == 0 else books.diffs[0][1] + passes * books.span - 1

    def diffs(self, first_pass: int, passes: int) -> Iterator[Message]:
        """The diffs of `passes` passes from `first_pass`."""
        for n in range(first_pass, first_pass + passes):
            at = dict.fromkeys(self.books, 0)
            for symbol in self.order:
                books = self.books[symbol]
                text, first, last = books.diffs[at[symbol]]
                at[symbol] += 1
                shift = n * books.span
                yield books.stream, text, {"U": first + shift, "u": last + shift}

    def trade_messages(self, first: int, count: int) -> Iterator[Message]:
        """`count` trades from the `first`-th, looped."""
        size = len(self.trades)
        by_id, by_raw_id = self.trade_span
        for n in range(first, first + count):
            text, agg, raw_first, raw_last = self.trades[n % size]
            loop = n // size
            yield ("xrpeth@aggTrade", text, {"a": agg + loop * by_id,
                                             "f": raw_first + loop * by_raw_id,
                                             "l": raw_last + loop * by_raw_id})


def interleaved(first: Iterator[Message], second: Iterator[Message]) -> Iterator[Message]:
    """One of `first`, one of `second`, and so on, then the rest of the longer."""
    for pair in itertools.zip_longest(first, second):
        yield from (message for message in pair if message is not None)


# the fake exchange's process -----------------------------------------------------------

class Fake:
    """The fake exchange and where its streams stand (passes and trades sent so far)."""

    def __init__(self, data: Path) -> None:
        self.streams = Streams(data)
        books = {symbol: Book(book.last_id, book.bids, book.asks)
                 for symbol, book in self.streams.snapshots.items()}
        self.exchange = FakeBinance([*capture_markets(data), XRPETH],
                                    {**books, "XRPETH": Book(last_id=1)})
        self.passes = 0
        self.trades = 0

    async def give_past(self) -> None:
        """Each captured symbol's past: one trade at its book's best ask at the start of
        the service day, so that the feed's fill at start gives its quote the day, as any
        listed market has, and its books are quoted (a quote without a price shows
        nothing)."""
        at = Interval("1d", TimeZone(ServerConfig().timezone)).floor(int(time.time() * 1000))
        for symbol, book in self.streams.snapshots.items():
            trade = {"e": "aggTrade", "E": at, "s": symbol, "a": 1, "p": min(book.asks,
                     key=Decimal), "q": "1", "f": 1, "l": 1, "T": at, "m": False, "M": True}
            await self.exchange.send(f"{symbol.lower()}@aggTrade", trade, deliver=False)

    def messages(self, kind: str, passes: int, trades: int) -> Iterator[Message]:
        diffs = self.streams.diffs(self.passes, passes if kind != "trades" else 0)
        sold = self.streams.trade_messages(self.trades, trades if kind != "books" else 0)
        return interleaved(diffs, sold)

    async def play(self, kind: str, passes: int, trades: int) -> dict[str, Any]:
        """Send a play as fast as the sockets take it; the ids it ended on."""
        sockets: dict[str, list[Any]] = {}
        for ws, subscribed in self.exchange.subscriptions.items():
            for stream in subscribed:
                sockets.setdefault(stream, []).append(ws)
        clock = time.time
        sent = 0
        began = time.perf_counter()
        for stream, text, ids in self.messages(kind, passes, trades):
            ids["E"] = ids["T"] = int(clock() * 1000)
            body = text % ids
            for ws in sockets.get(stream, ()):
                await ws.send_str(body)
            sent += 1
        seconds = time.perf_counter() - began
        if kind != "trades":
            self.passes += passes
            for symbol in CAPTURED:  # a snapshot asked from now on is this book's
                self.exchange.books[symbol].last_id = self.streams.snapshot_id(symbol,
                                                                              self.passes)
        sold = trades if kind != "books" else 0
        self.trades += sold
        return {"sent": sent, "seconds": seconds, "trades": sold,
                "nonces": {symbol: self.streams.snapshot_id(symbol, self.passes)
                           for symbol in CAPTURED}}

    async def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        if message["cmd"] == "streams":
            await self.exchange.wait_streams(set(message["streams"]), timeout=60)
            return {"ok": True}
        if message["cmd"] == "play":
            return await self.play(message["kind"], message["passes"], message["trades"])
        raise ValueError(f"unknown command {message['cmd']!r}")


async def fake_role(data: Path) -> None:
    fake = Fake(data)
    await fake.give_past()
    async with fake.exchange:
        benchlib.reply({"rest_url": fake.exchange.rest_url, "ws_url": fake.exchange.ws_url,
                        "diffs_per_pass": fake.streams.diffs_per_pass})
        await benchlib.serve_commands(fake.handle)


# what takes the streams in, in this process ---------------------------------------------

def ccxt_symbol(binance_id: str) -> str:
    base, quote = CAPTURED[binance_id]
    return f"{base}/{quote}"


class Taker:
    """Something in this process that takes the fake's streams in: its counts so far, and
    whether it has taken in all that a play sent."""

    name: str

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    def counts(self) -> dict[str, int]:
        raise NotImplementedError

    def caught_up(self, before: dict[str, int], sent: dict[str, Any]) -> bool:
        raise NotImplementedError

    def check(self) -> str | None:
        """What went wrong, if anything."""
        return None


class _ThroughCcxt(Taker):
    """A taker through a ccxt exchange object: caught up when every trade sent was taken
    and ccxt's book of each symbol holds the last diff sent."""

    def exchange(self) -> Any:
        raise NotImplementedError

    def caught_up(self, before: dict[str, int], sent: dict[str, Any]) -> bool:
        books = self.exchange().orderbooks
        return self.counts()["trades"] >= before["trades"] + sent["trades"] and all(
            ccxt_symbol(s) in books and books[ccxt_symbol(s)]["nonce"] == nonce
            for s, nonce in sent["nonces"].items())


class FeedServer(_ThroughCcxt):
    """The exchange feed with the server's ingest behind it, built as `tickwire serve`
    builds it (without its sockets), every product watched."""

    name = "feed"

    def __init__(self, urls: dict[str, str], workdir: Path) -> None:
        self.config = Config(
            server=ServerConfig(data_dir=str(workdir), log_format="json", log_level="warning"),
            feeds=[ExchangeFeedConfig("binance", FEED_SYMBOLS, rest_url=urls["rest_url"],
                                      ws_url=urls["ws_url"])])
        self.quotes = 0

    def _count(self, batch: list[tuple[str, bytes]]) -> None:
        self.quotes += len(batch)

    async def start(self) -> None:
        self.server = build(self.config)  # the markets asked of the fake, in a thread
        self.feed: Any = self.server.feeds[0]
        self.runner = web.AppRunner(self.server.app, handle_signals=False)
        await self.runner.setup()  # the gateway's tasks and the ingest, as at a server's start
        self.sink = self.server.ingest.runners[0].sink
        engine = self.server.engine
        engine.subscribe(self._count)
        for code in self.feed.codes:  # as if a WebSocket client held each product
            engine.watch(code)
        async with asyncio.timeout(120):
            while self.feed.state is not FeedState.LIVE:
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        await self.runner.cleanup()

    def exchange(self) -> Any:
        return self.feed._exchange  # ccxt's books: how far it got

    def counts(self) -> dict[str, int]:
        return {"updates": self.sink.updates, "quotes": self.quotes,
                "books": self.feed.books, "trades": self.feed.trades}

    def check(self) -> str | None:
        """What went wrong in the feed, if anything."""
        feed = self.feed
        if feed.crossed or feed.resyncs or feed.duplicates or feed.reconnects:
            return (f"crossed {feed.crossed}, resyncs {feed.resyncs}, duplicates "
                    f"{feed.duplicates}, reconnects {feed.reconnects}")
        return None


class CcxtAlone(_ThroughCcxt):
    """ccxt's watch_order_book and watch_trades of the same symbols, with the feed's
    exchange options, awaited without pause; nothing is done with what they return."""

    name = "ccxt alone"

    def __init__(self, urls: dict[str, str]) -> None:
        self._exchange = make_exchange(ExchangeFeedConfig(
            "binance", FEED_SYMBOLS, rest_url=urls["rest_url"], ws_url=urls["ws_url"]))
        self.books = 0
        self.trades = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def _watch_book(self, symbol: str) -> None:
        while True:
            await self._exchange.watch_order_book(symbol)
            self.books += 1

    async def _watch_trades(self, symbol: str) -> None:
        while True:
            self.trades += len(await self._exchange.watch_trades(symbol))

    async def start(self) -> None:
        for symbol in FEED_SYMBOLS:
            self._tasks.append(asyncio.create_task(self._watch_book(symbol)))
            self._tasks.append(asyncio.create_task(self._watch_trades(symbol)))
        async with asyncio.timeout(120):
            while self.books < len(FEED_SYMBOLS):
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._exchange.close()

    def exchange(self) -> Any:
        return self._exchange

    def counts(self) -> dict[str, int]:
        return {"updates": self.books + self.trades, "quotes": 0, "books": self.books,
                "trades": self.trades}


class SocketFloor(Taker):
    """The floor under ccxt: an aiohttp WebSocket client opened as ccxt opens its own
    (permessage-deflate asked), subscribed to the same streams, reading each message's
    text and nothing more."""

    name = "socket floor"

    def __init__(self, urls: dict[str, str]) -> None:
        self.url = urls["ws_url"]
        self.messages = 0

    async def start(self) -> None:
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(self.url, autoping=False, autoclose=False,
                                                compress=15, max_msg_size=10_485_760)
        await self.ws.send_json({"method": "SUBSCRIBE", "params": STREAMS, "id": 1})
        await self.ws.receive()  # the answer
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for _ in self.ws:
            self.messages += 1

    async def stop(self) -> None:
        self.reader.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)
        await self.ws.close()
        await self.session.close()

    def counts(self) -> dict[str, int]:
        return {"updates": self.messages, "quotes": 0, "books": 0, "trades": 0}

    def caught_up(self, before: dict[str, int], sent: dict[str, Any]) -> bool:
        return self.messages >= before["updates"] + sent["sent"]


# the timed plays --------------------------------------------------------------------------

async def play(taker: Taker, fake: Child, kind: str, passes: int, trades: int,
               profile: cProfile.Profile | None = None) -> dict[str, Any]:
    """Have the fake send one play and time `taker` taking it in (see the module's text)."""
    before = taker.counts()
    meter = benchlib.CpuMeter({"fake": fake.pid})
    began, began_cpu = time.perf_counter(), time.process_time()
    if profile is not None:
        profile.enable()
    fake.send({"cmd": "play", "kind": kind, "passes": passes, "trades": trades})
    sent = await asyncio.to_thread(fake.receive)
    deadline = time.monotonic() + CATCH_UP
    while not taker.caught_up(before, sent):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{taker.name} did not take in the {kind} play: "
                               f"{taker.counts()}, sent {sent}")
        await asyncio.sleep(POLL)
    seconds = time.perf_counter() - began
    cpu_seconds = time.process_time() - began_cpu  # this process, all its threads
    if profile is not None:
        profile.disable()
    cpu = meter.read()
    after = taker.counts()
    done = {key: after[key] - before[key] for key in after}
    return {
        "kind": kind, "messages": sent["sent"], "seconds": seconds, **done,
        "fake_send_seconds": sent["seconds"], "cpu_seconds": cpu_seconds,
        "bench_cpu": 100 * cpu_seconds / seconds, "fake_cpu": cpu["fake_cpu"],
        "others": max(0.0, cpu["others"] - 100 * cpu_seconds / seconds),
        "messages_per_s": sent["sent"] / seconds,
        "updates_per_s": done["updates"] / seconds, "quotes_per_s": done["quotes"] / seconds,
        "us_per_message": 1e6 * cpu_seconds / sent["sent"],
        "us_per_update": 1e6 * cpu_seconds / max(done["updates"], 1),
    }


async def run_plays(taker: Taker, fake: Child, sizes: dict[str, tuple[int, int]],
                    profile: cProfile.Profile | None = None) -> list[dict[str, Any]]:
    """`taker` started, each kind of play in turn, `taker` stopped; with a `profile`, one
    more play of both kinds under it, last."""
    await taker.start()
    await asyncio.to_thread(fake.ask, {"cmd": "streams", "streams": STREAMS})
    plays = [(kind, size, None) for kind, size in sizes.items()]
    if profile is not None:  # a quarter of the size: the profiler slows it down threefold
        passes, trades = sizes["both"]
        plays.append(("both", (max(1, passes // 4), max(1, passes // 4) * trades // passes),
                      profile))
    results = []
    try:
        for kind, (passes, trades), profiling in plays:
            result = await play(taker, fake, kind, passes, trades, profiling)
            problem = taker.check()
            if problem:
                raise RuntimeError(f"{taker.name}, {kind}: {problem}")
            result["profiled"] = profiling is not None
            results.append(result)
            print(f"  {taker.name:>10}, {kind:>6}{' (profiled)' if profiling else ''}: "
                  f"{result['messages']:,} messages in {result['seconds']:.2f} s, "
                  f"{result['updates_per_s']:,.0f} updates/s,\n"
                  f"    {result['us_per_message']:.1f} us/message; this process "
                  f"{result['bench_cpu']:.0f}% of its core, the fake {result['fake_cpu']:.0f}%,"
                  f" other work {result['others']:.0f}%", flush=True)
    finally:
        await taker.stop()
    return results


# where the time goes ----------------------------------------------------------------------

GROUPS = (
    ("/ccxt/async_support/base/ws/order_book", "ccxt: order books"),
    ("/ccxt/", "ccxt: messages, trades, futures"),
    ("/aiohttp/", "aiohttp: WebSocket frames"),
    ("/asyncio/", "event loop"),
    ("/uvloop/", "event loop"),
    ("/tickwire/feeds/", "feed (tickwire.feeds)"),
    ("/tickwire/", "ingest: market, encoding, engine"),
)
JSON_DECODE = "ccxt: JSON decode (orjson)"


def _group(func: tuple[str, int, str]) -> str | None:
    if "orjson.loads" in func[2] or "'loads' of 'orjson" in func[2]:
        return JSON_DECODE
    return next((name for needle, name in GROUPS if needle in func[0]), None)


def time_shares(profile: cProfile.Profile) -> dict[str, float]:
    """Each group's share of the profiled time (own time of its functions, and of the
    built-in functions they called, split by caller)."""
    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    totals: dict[str, float] = {}
    for func, (_, _, own, _, callers) in stats.items():
        group = _group(func)
        if group is None and func[0] == "~" and callers:  # a built-in: to its callers
            by_caller = sum(c[2] for c in callers.values()) or 1.0
            for caller, c in callers.items():
                name = _group(caller) or "other"
                totals[name] = totals.get(name, 0.0) + own * c[2] / by_caller
        else:
            totals[group or "other"] = totals.get(group or "other", 0.0) + own
    whole = sum(totals.values()) or 1.0
    return {name: 100 * seconds / whole
            for name, seconds in sorted(totals.items(), key=lambda kv: -kv[1])}


def heaviest(profile: cProfile.Profile, count: int) -> dict[str, float]:
    """The `count` functions of most cumulative time, as a share of the profiled time, by
    package path and name (`ccxt/base/exchange.py:safe_trade`)."""
    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    whole = sum(own for _, _, own, _, _ in stats.values()) or 1.0
    named = {}
    for (path, _, name), (_, _, _, cumulative, _) in stats.items():
        if path != "~":
            parts = Path(path).parts
            at = max((i for i, p in enumerate(parts) if p in ("ccxt", "tickwire", "aiohttp",
                                                              "asyncio")), default=-1)
            label = "/".join(parts[at:]) if at >= 0 else Path(path).name
            named[f"{label}:{name}"] = 100 * cumulative / whole
    return dict(sorted(named.items(), key=lambda kv: -kv[1])[:count])


# the baseline: the ingest over the simulator's updates ------------------------------------

def ingest_baselines(count: int, repeats: int, workdir: Path) -> dict[str, float]:
    """`bench_ingest.py`'s pipeline + SQLite over its simulator updates, as the server
    runs it and with every product watched: updates a second of this process's CPU time
    (the store's thread included, as for the feed), the median of `repeats`."""
    encoded = encode_chunks(make_updates(count))
    return {f"sim_{key}": count / statistics.median(
        pipeline(encoded, workdir, watched=watched, clock=time.process_time)[0]
        for _ in range(repeats))
        for key, watched in (("pipeline", False), ("pipeline_watched", True))}


# the run ----------------------------------------------------------------------------------

def play_sizes(messages: int, diffs_per_pass: int) -> dict[str, tuple[int, int]]:
    """(passes, trades) of each kind of play, about `messages` messages each."""
    passes = max(1, round(messages / diffs_per_pass))
    half = max(1, round(messages / 2 / diffs_per_pass))
    return {"books": (passes, 0), "trades": (0, messages),
            "both": (half, half * diffs_per_pass)}


def medians(runs: list[list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Per kind of play, the median of each figure over the runs."""
    kinds = [p["kind"] for p in runs[0]]
    return {kind: {key: statistics.median(p[key] for r in runs for p in r if p["kind"] == kind)
                   for key, value in runs[0][kinds.index(kind)].items()
                   if isinstance(value, int | float) and not isinstance(value, bool)}
            for kind in kinds}


def missing() -> str | None:
    """Why this benchmark cannot run here, if it cannot."""
    if importlib.util.find_spec("ccxt") is None:
        return "ccxt is not installed (the `exchanges` extra)"
    if not SHARED_DATA.is_dir():
        return f"the real exchange data is not at {SHARED_DATA}"
    return None


async def conduct(repeats: int, fake: Child, urls: dict[str, Any], workdir: Path,
                  sizes: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """The feed's and ccxt's runs, in turn; the last feed run ends with a profiled play."""
    runs: dict[str, list[list[dict[str, Any]]]] = {"feed": [], "ccxt": [], "floor": []}
    profile = cProfile.Profile()
    for n in range(repeats):
        print(f"run {n + 1} of {repeats}", flush=True)
        feed = await run_plays(FeedServer(urls, workdir / f"feed-{n}"), fake, sizes,
                               profile if n == repeats - 1 else None)
        runs["feed"].append([p for p in feed if not p["profiled"]])
        runs["ccxt"].append(await run_plays(CcxtAlone(urls), fake, sizes))
        runs["floor"].append(await run_plays(SocketFloor(urls), fake, sizes))
    return {"runs": runs, "profiled": feed[-1], "shares": time_shares(profile),
            "heaviest": heaviest(profile, 16)}


def main() -> None:
    p = benchlib.parser(__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=200_000,
                   help="messages the fake sends in each play (default 200,000)")
    p.add_argument("--repeats", type=int, default=3, help="runs of the plays (median)")
    p.add_argument("--role", choices=["conductor", "fake"], default="conductor",
                   help="(the fake exchange's process is this script with --role fake)")
    args = p.parse_args()
    if args.role == "fake":
        benchlib.run_async(fake_role(SHARED_DATA))
        return
    why = missing()
    if why:
        sys.exit(f"bench_exchange: {why}")
    if args.quick:
        args.messages, args.repeats = 2_000, 1
    sim_count = 3_000 if args.quick else 300_000
    background = benchlib.wait_for_quiet(patience=0 if args.quick else 120)
    fake = Child("fake", benchlib.pinned([sys.executable, __file__, "--role", "fake"],
                                         CLIENT_CORE, not args.no_pin))
    with benchlib.stopping(fake):
        urls = fake.receive()
        pinned = benchlib.pin_self(SERVER_CORE, not args.no_pin)
        sizes = play_sizes(args.messages, urls["diffs_per_pass"])
        print(f"exchange feed: ~{args.messages:,} messages a play, {args.repeats} runs; "
              + (f"the fake exchange on core {CLIENT_CORE}, this process on core "
                 f"{SERVER_CORE}" if pinned else "not pinned"), flush=True)
        with tempfile.TemporaryDirectory(prefix="tickwire-exchange-") as tmp:
            found = benchlib.run_async(conduct(args.repeats, fake, urls, Path(tmp), sizes))
            print("ingest pipeline over simulator updates (bench_ingest.py)", flush=True)
            baselines = ingest_baselines(sim_count, args.repeats, Path(tmp))
    report(args, found, baselines, background, pinned, sizes, urls["diffs_per_pass"])


def report(args: Any, found: dict[str, Any], baselines: dict[str, float], background: float,
           pinned: bool, sizes: dict[str, tuple[int, int]], diffs_per_pass: int) -> None:
    feed, alone, floor = (medians(found["runs"][key]) for key in ("feed", "ccxt", "floor"))
    rates: list[list[Any]] = []
    costs: list[list[Any]] = []
    for kind in KINDS:
        for label, m in ((f"feed + ingest: {kind}", feed[kind]),
                         (f"ccxt alone: {kind}", alone[kind]),
                         (f"socket floor: {kind}", floor[kind])):
            rates.append([label, m["messages_per_s"], m["updates_per_s"],
                          m["quotes_per_s"] if label.startswith("feed") else None,
                          m["bench_cpu"], m["fake_cpu"], m["others"]])
            costs.append([label, m["us_per_message"], m["us_per_update"],
                          1e6 / m["us_per_message"], 1e6 / m["us_per_update"]])
    for key, label in (("sim_pipeline", "ingest: sim updates"),
                       ("sim_pipeline_watched", "ingest: sim, all watched")):
        costs.append([label, None, 1e6 / baselines[key], None, baselines[key]])
    table(f"Exchange feed, one core: a second (medians of {args.repeats} runs)",
          ["path", "messages", "updates", "quotes", "core %", "fake %", "others %"], rates)
    table("... and core time (a core-second: 1e6 / us)",
          ["path", "us/message", "us/update", "msgs/core-s", "updates/core-s"], costs)
    share = found["shares"]
    table("Where the feed's time goes (cProfile, a play of both)", ["part", "% of time"],
          [[name, value] for name, value in share.items()])
    table("The heaviest calls (cumulative)", ["function", "% of time"],
          [[name, value] for name, value in found["heaviest"].items()])
    both = feed["both"]
    quick = args.quick
    result: dict[str, Any] = {
        "background_busy": background,
        "settings": {"messages": args.messages, "repeats": args.repeats, "pinned": pinned,
                     "plays": {k: {"passes": p, "diffs": p * diffs_per_pass if k != "trades"
                                   else 0, "trades": t} for k, (p, t) in sizes.items()},
                     "diffs_per_pass": diffs_per_pass, "symbols": FEED_SYMBOLS,
                     "quick": quick},
        "feed": feed, "ccxt_alone": alone, "socket_floor": floor, "runs": found["runs"],
        "profiled": found["profiled"], "time_shares": share,
        "heaviest_calls": found["heaviest"], "ingest": baselines,
        "targets": {
            "every trade handed on; each book ccxt's after the last diff, none crossed, "
            "no resync": {"figure": f"{both['updates']:,.0f} updates of both kinds",
                          "met": None if quick else True},
        },
    }
    benchlib.write_result(args.out, "exchange-quick" if quick else "exchange", result)


if __name__ == "__main__":
    main()

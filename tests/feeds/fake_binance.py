"""A local fake of Binance's public spot API, enough for ccxt: markets, depth snapshots,
klines and the raw WebSocket streams (`/ws/<n>`, SUBSCRIBE by id), on a free port.

The fake keeps the truth: each symbol's whole book (a snapshot and every diff the test
sends, applied by Binance's rules) and every trade sent, so its snapshots and klines are
the exchange's state at the fake's "now" (the newest event sent), whether or not a diff or
a trade reached the client. Events are sent by the test (`send`); `deliver=False` applies
one without sending it (a gap, a trade during an outage); `drop_connections` closes every
socket. The real capture is read in place from `../shared/data`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from aiohttp import WSMsgType, web

CAPTURE = "cryptofeed_binance_depth_2021-10-12"
TRADES = "freqtrade_binance_XRPETH_2019-10-11"
CAPTURED = {"NKNUSDT": ("NKN", "USDT"), "BLZETH": ("BLZ", "ETH"), "LRCBTC": ("LRC", "BTC"),
            "RUNEEUR": ("RUNE", "EUR")}
"""The capture's markets: Binance's symbol id, base and quote."""
SYMBOLS = [f"{base}/{quote}" for base, quote in CAPTURED.values()]
INTERVAL_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
               "1h": 3_600_000, "8h": 28_800_000, "1d": 86_400_000}

Side = dict[str, str]
Level = tuple[float, float]


@dataclass
class Book:
    """One symbol's book by Binance's rules: a snapshot, then diffs with `u` past it."""

    last_id: int
    bids: Side = field(default_factory=dict)
    asks: Side = field(default_factory=dict)

    @classmethod
    def of(cls, snapshot: dict[str, Any]) -> Book:
        return cls(snapshot["lastUpdateId"], {p: q for p, q in snapshot["bids"]},
                   {p: q for p, q in snapshot["asks"]})

    def apply(self, diff: dict[str, Any]) -> bool:
        """Apply a `depthUpdate` that is not older than the book; whether it was."""
        if diff["u"] <= self.last_id:
            return False
        for side, changes in ((self.bids, diff["b"]), (self.asks, diff["a"])):
            for price, qty in changes:
                if Decimal(qty) == 0:
                    side.pop(price, None)
                else:
                    side[price] = qty
        self.last_id = diff["u"]
        return True

    def levels(self, depth: int) -> tuple[list[Level], list[Level]]:
        """The top `depth` levels a side, best first, as floats."""
        bids = sorted(self.bids, key=Decimal, reverse=True)[:depth]
        asks = sorted(self.asks, key=Decimal)[:depth]
        return ([(float(p), float(self.bids[p])) for p in bids],
                [(float(p), float(self.asks[p])) for p in asks])

    def snapshot(self, limit: int) -> dict[str, Any]:
        bids = sorted(self.bids, key=Decimal, reverse=True)[:limit]
        asks = sorted(self.asks, key=Decimal)[:limit]
        return {"lastUpdateId": self.last_id, "bids": [[p, self.bids[p]] for p in bids],
                "asks": [[p, self.asks[p]] for p in asks]}


# the real data, read in place ---------------------------------------------------------------

def capture_snapshots(data: Path) -> dict[str, dict[str, Any]]:
    """The capture's REST depth snapshots by Binance symbol id."""
    found = {}
    for line in (data / CAPTURE / "BINANCE.http.0.0").read_text().splitlines():
        if not line.strip():
            continue
        url, _, rest = line.partition(" -> ")
        symbol = parse_qs(urlparse(url).query)["symbol"][0]
        found[symbol] = json.loads(rest.partition(": ")[2])
    return found


def capture_events(data: Path) -> list[tuple[str, dict[str, Any]]]:
    """The capture's stream messages, in order, as (stream, data)."""
    events = []
    for line in (data / CAPTURE / "BINANCE.ws.1.0").read_text().splitlines()[1:]:
        _, _, text = line.partition(": ")
        if text:
            message = json.loads(text)
            events.append((message["stream"], message["data"]))
    return events


def freqtrade_trades(data: Path) -> list[dict[str, Any]]:
    """The XRPETH trades as Binance's `aggTrade` events."""
    with gzip.open(data / TRADES / "XRP_ETH-trades.json.gz") as f:
        trades = json.load(f)
    return [{"e": "aggTrade", "E": t["info"]["T"], "s": "XRPETH", **t["info"]} for t in trades]


def freqtrade_klines(data: Path) -> list[list[float]]:
    """Binance's own 1m candles of XRPETH: [open_ms, o, h, l, c, volume]."""
    rows: list[list[float]] = json.loads((data / TRADES / "XRP_ETH-1m.json").read_text())
    return rows


def decimals_of(prices: Iterator[str]) -> int:
    """The fewest decimals that write every one of `prices` exactly."""
    most = 0
    for price in prices:
        exponent = Decimal(price).normalize().as_tuple().exponent
        most = max(most, -exponent if isinstance(exponent, int) else 0)
    return most


def capture_markets(data: Path) -> list[Listed]:
    """The capture's markets as the fake lists them, tick and step read off the snapshots."""
    snapshots = capture_snapshots(data)
    markets = []
    for symbol, (base, quote) in CAPTURED.items():
        levels = snapshots[symbol]["bids"] + snapshots[symbol]["asks"]
        tick = decimals_of(p for p, _ in levels)
        step = decimals_of(q for _, q in levels)
        markets.append(Listed(symbol, base, quote, f"{10.0 ** -tick:.{tick}f}",
                              f"{10.0 ** -step:.{step}f}" if step else "1"))
    return markets


def in_order_within(published: list[Any], expected: list[Any]) -> None:
    """Each published book is one of the exchange's books, in the exchange's order (books
    between two awaits of ccxt are not each handed on)."""
    at = 0
    for n, book in enumerate(published):
        while at < len(expected) and expected[at] != book:
            at += 1
        assert at < len(expected), f"book {n} of {len(published)} is no book of the exchange"


# the fake -------------------------------------------------------------------------------------

@dataclass
class Listed:
    """One market the fake lists."""

    symbol: str  # "NKNUSDT"
    base: str
    quote: str
    tick: str  # "0.00010000"
    step: str


XRPETH = Listed("XRPETH", "XRP", "ETH", "0.00000001", "1")
"""The market of the real trades (`freqtrade_trades`)."""


class FakeBinance:
    def __init__(self, markets: list[Listed], books: dict[str, Book] | None = None) -> None:
        self.markets = {m.symbol: m for m in markets}
        self.books = books or {}
        self.trades: dict[str, list[dict[str, Any]]] = {m.symbol: [] for m in markets}
        self.now_ms = 0
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.subscriptions: dict[web.WebSocketResponse, set[str]] = {}
        self.subscribes = 0
        self.connections = 0
        """WebSockets accepted, ever."""
        self.klines_down = False
        """While set, klines are answered 503 (the exchange unavailable)."""
        self._runner: web.AppRunner | None = None
        self.port = 0

    # lifecycle
    async def __aenter__(self) -> FakeBinance:
        app = web.Application()
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/api/v3/depth", self._depth)
        app.router.add_get("/api/v3/klines", self._klines)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/ws/{stream}", self._ws)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.drop_connections()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v3"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    # what the test does
    def streams(self) -> set[str]:
        return set().union(*self.subscriptions.values()) if self.subscriptions else set()

    async def wait_streams(self, wanted: set[str], timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            while not wanted <= self.streams():
                await asyncio.sleep(0.01)

    async def send(self, stream: str, data: dict[str, Any], deliver: bool = True) -> None:
        """Apply one event to the truth; send it to the sockets subscribed to `stream`."""
        symbol = data["s"]
        if data.get("e") == "depthUpdate":
            self.books[symbol].apply(data)
        elif data.get("e") == "aggTrade":
            self.trades[symbol].append(data)
        self.now_ms = max(self.now_ms, data.get("E", 0))
        if not deliver:
            return
        text = json.dumps(data)
        for ws, streams in list(self.subscriptions.items()):
            if stream in streams and not ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_str(text)

    async def drop_connections(self) -> None:
        for ws in list(self.subscriptions):
            await ws.close(code=1001, message=b"going away")
        self.subscriptions.clear()

    # REST
    async def _exchange_info(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.query)))
        symbols = [{
            "symbol": m.symbol, "status": "TRADING", "baseAsset": m.base,
            "baseAssetPrecision": 8, "quoteAsset": m.quote, "quotePrecision": 8,
            "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8, "orderTypes": ["LIMIT", "MARKET"],
            "icebergAllowed": True, "ocoAllowed": True, "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False, "permissions": ["SPOT"],
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": m.tick, "maxPrice": "1000000.0",
                 "tickSize": m.tick},
                {"filterType": "LOT_SIZE", "minQty": m.step, "maxQty": "9000000.0",
                 "stepSize": m.step},
            ],
        } for m in self.markets.values()]
        return web.json_response({"timezone": "UTC", "serverTime": self.now_ms,
                                  "rateLimits": [], "exchangeFilters": [],
                                  "symbols": symbols})

    def _unknown(self, symbol: str) -> web.Response:
        return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)

    async def _depth(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.query)))
        symbol = request.query.get("symbol", "")
        if symbol not in self.books:
            return self._unknown(symbol)
        limit = int(request.query.get("limit", "100"))
        return web.json_response(self.books[symbol].snapshot(limit))

    async def _klines(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.query)))
        symbol = request.query.get("symbol", "")
        if self.klines_down:
            return web.Response(status=503, text="Service Unavailable")
        if symbol not in self.trades:
            return self._unknown(symbol)
        length = INTERVAL_MS.get(request.query.get("interval", ""))
        if length is None:
            return web.json_response({"code": -1120, "msg": "Invalid interval."}, status=400)
        trades = self.trades[symbol]
        start = request.query.get("startTime")
        limit = int(request.query.get("limit", "500"))
        # only the trades of the candles asked for (and the one before, for a quiet start)
        times = [t["T"] for t in trades]
        if start is not None:
            first = int(start)
            last = first + limit * length
        else:
            last = times[-1] - times[-1] % length + length if times else 0
            first = last - limit * length
        lo = max(bisect.bisect_left(times, first) - 1, 0)
        rows = klines(trades[lo:bisect.bisect_left(times, last)], length)
        rows = [r for r in rows if first <= r[0] < last]
        return web.json_response(rows)

    # WebSocket
    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        self.subscriptions[ws] = set()
        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    continue
                body = json.loads(message.data)
                method, params = body.get("method"), body.get("params", [])
                if method == "SUBSCRIBE":
                    self.subscriptions.setdefault(ws, set()).update(params)
                    self.subscribes += 1
                elif method == "UNSUBSCRIBE":
                    self.subscriptions.setdefault(ws, set()).difference_update(params)
                await ws.send_str(json.dumps({"result": None, "id": body.get("id")}))
        finally:
            self.subscriptions.pop(ws, None)
        return ws


def klines(trades: list[dict[str, Any]], length: int) -> list[list[Any]]:
    """Binance's candles of `trades` (in time order): each interval [start, start + length)
    with a trade; one without between them is flat at the previous close, volume 0."""
    rows: list[list[Any]] = []
    for trade in trades:
        start = trade["T"] - trade["T"] % length
        price, qty = Decimal(trade["p"]), Decimal(trade["q"])
        while rows and rows[-1][0] + length < start:  # quiet intervals
            close = rows[-1][4]
            rows.append([rows[-1][0] + length, close, close, close, close, Decimal(0), 0])
        if rows and rows[-1][0] == start:
            row = rows[-1]
            row[2], row[3] = max(row[2], price), min(row[3], price)
            row[4] = price
            row[5] += qty
            row[6] += 1
        else:
            rows.append([start, price, price, price, price, qty, 1])
    return [[s, str(o), str(h), str(lo), str(c), str(v), s + length - 1, "0", n, "0", "0", "0"]
            for s, o, h, lo, c, v, n in rows]

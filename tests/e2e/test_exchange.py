"""A real server with an exchange feed of a local fake Binance (the real ccxt, real sockets)
replaying the real capture: every `Depth` a client is pushed is Binance's book at some
update, in order, and `getQuote.php` ends on the book of the last diff, level for level."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.server import start_server
from tests.feeds.fake_binance import (
    CAPTURED,
    SYMBOLS,
    Book,
    FakeBinance,
    capture_events,
    capture_markets,
    capture_snapshots,
    in_order_within,
)

pytest.importorskip("ccxt", reason="the exchanges extra (ccxt) is not installed")

WATCHED = ["nknusdt", "lrcbtc"]


def depth_of(body: dict[str, Any]) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    depth = body["Depth"]
    if depth == []:
        return [], []
    return ([(level[f"BP{i}"], level[f"BV{i}"]) for i, level in enumerate(depth["Buy"], 1)],
            [(level[f"SP{i}"], level[f"SV{i}"]) for i, level in enumerate(depth["Sell"], 1)])


async def test_served_depth_is_the_exchange_book_level_for_level(shared_data: Path,
                                                                 tmp_path: Path) -> None:
    snapshots = capture_snapshots(shared_data)
    truth = {symbol: Book.of(snapshot) for symbol, snapshot in snapshots.items()}
    expected = {symbol.lower(): [book.levels(10)] for symbol, book in truth.items()}
    pushed: dict[str, list[dict[str, Any]]] = {code: [] for code in WATCHED}
    fake = FakeBinance(capture_markets(shared_data),
                       {symbol: Book.of(snapshot) for symbol, snapshot in snapshots.items()})
    async with fake:
        server = await asyncio.to_thread(
            start_server, tmp_path, '[[feeds]]\nkind = "exchange"\nexchange = "binance"\n'
            f'symbols = {json.dumps(SYMBOLS)}\nrest_url = "{fake.rest_url}"\n'
            f'ws_url = "{fake.ws_url}"\n', ready=False)
        try:
            async with aiohttp.ClientSession() as session, \
                    session.ws_connect(server.ws_url) as ws:
                await ws.send_json({"Key": ",".join(WATCHED)})

                async def read() -> None:
                    async for message in ws:
                        body = json.loads(message.data)["body"]
                        pushed[body["StockCode"]].append(body)

                reader = asyncio.create_task(read())
                await fake.wait_streams({f"{s.lower()}@depth@100ms" for s in CAPTURED}, 60)
                for stream, data in capture_events(shared_data):
                    symbol = data["s"]
                    if data.get("e") == "depthUpdate" and truth[symbol].apply(data):
                        expected[symbol.lower()].append(truth[symbol].levels(10))
                    await fake.send(stream, data)
                    await asyncio.sleep(0.003)
                final: dict[str, Any] = {}
                async with asyncio.timeout(30):
                    while set(final) != set(WATCHED):
                        await asyncio.sleep(0.1)
                        for code in WATCHED:
                            async with session.get(f"{server.url}/getQuote.php",
                                                   params={"code": code}) as answer:
                                quote = await answer.json()
                            if quote["code"] == 200 and \
                                    depth_of(quote["data"]["body"]) == expected[code][-1]:
                                final[code] = quote["data"]["body"]
                reader.cancel()
        finally:
            server.stop()
    for code in WATCHED:  # a trade may come before the symbol's first book: no levels yet
        books = [book for book in map(depth_of, pushed[code]) if book != ([], [])]
        assert books, code
        in_order_within(books, expected[code])
    nkn = final["nknusdt"]  # the capture's one NKNUSDT trade: 58 at 0.3528, an aggressive buy
    assert (nkn["Price"], nkn["lastSize"], nkn["BS"][0]["direction"]) == (0.3528, 58, 2)
    bids, asks = expected["nknusdt"][-1]
    assert (nkn["BP1"], nkn["BV1"], nkn["SP1"], nkn["SV1"]) == (*bids[0], *asks[0])

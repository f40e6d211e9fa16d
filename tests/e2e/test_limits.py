"""PROTOCOL section 4: rate limits per client IP, only the product over its limit refused."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.e2e.server import Server

pytestmark = pytest.mark.asyncio

OTHER_CODES = ["fx_seurusd", "fx_susdjpy", "hf_GC", "nf_RB0", "nf_AU0", "ethusdt", "xrpusdt",
               "HX_HSI", "TW_TXF", "nodepth"]


async def fetch(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, str], Any]:
    async with session.get(url) as resp:
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


async def next_second() -> None:
    """Let every one-second window of earlier tests pass."""
    await asyncio.sleep(1.05)


async def test_fourth_quote_of_one_code_refused_while_ten_others_pass(
    strict_server: Server,
) -> None:
    base = strict_server.url
    async with aiohttp.ClientSession() as session:
        await next_second()
        for _ in range(3):
            assert (await fetch(session, f"{base}/getQuote.php?code=btcusdt"))[0] == 200
        status, headers, body = await fetch(session, f"{base}/getQuote.php?code=btcusdt")
        assert status == 429
        assert body["code"] == 429 and body["data"] is None and "btcusdt" in body["msg"]
        assert int(headers["Retry-After"]) >= 1
        statuses = await asyncio.gather(*(
            fetch(session, f"{base}/getQuote.php?code={code}")
            for code in OTHER_CODES for _ in range(3)
        ))
        assert [s[0] for s in statuses] == [200] * 30
        await next_second()
        assert (await fetch(session, f"{base}/getQuote.php?code=btcusdt"))[0] == 200


async def test_multi_code_quote_counts_once_per_code(strict_server: Server) -> None:
    base = strict_server.url
    async with aiohttp.ClientSession() as session:
        await next_second()
        for _ in range(3):
            status, _, body = await fetch(session, f"{base}/getQuote.php?code=btcusdt,ethusdt")
            assert status == 200 and len(body["data"]["body"]) == 2
        assert (await fetch(session, f"{base}/getQuote.php?code=ethusdt"))[0] == 429
        assert (await fetch(session, f"{base}/getQuote.php?code=xrpusdt"))[0] == 200


async def test_sixth_kline_request_of_one_code_refused(strict_server: Server) -> None:
    base = strict_server.url
    url = f"{base}/redis.php?code=btcusdt&time=1m&rows=5"
    async with aiohttp.ClientSession() as session:
        await next_second()
        for _ in range(5):
            assert (await fetch(session, url))[0] == 200
        status, headers, body = await fetch(session, url)
        assert status == 429 and "Retry-After" in headers and body["code"] == 429
        assert (await fetch(session, f"{base}/redis.php?code=ethusdt&time=1m"))[0] == 200


@pytest.mark.parametrize("path", ["/getCategory.php", "/getSymbolList.php?category=4"])
async def test_third_category_or_symbol_request_refused(strict_server: Server, path: str) -> None:
    async with aiohttp.ClientSession() as session:
        await next_second()
        assert (await fetch(session, strict_server.url + path))[0] == 200
        assert (await fetch(session, strict_server.url + path))[0] == 200
        status, _, body = await fetch(session, strict_server.url + path)
        assert status == 429 and body["code"] == 429


async def test_limits_are_shown_in_healthz(strict_server: Server) -> None:
    async with aiohttp.ClientSession() as session:
        _, _, health = await fetch(session, f"{strict_server.url}/healthz")
    assert health["limits"] == {"quote_per_code": 3, "kline_per_code": 5, "category": 2,
                                "symbols": 2, "ws_connections_per_ip": 6}

"""Client-side rate limiting keeps normal use free of 429s, against real servers' limits."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.client.conftest import Events
from tests.e2e.conftest import small_config
from tests.e2e.server import Server, start_server
from tickwire import AsyncClient, Limits

QUICK_QUOTES = 25
"""Quotes per code per second on `limited`: a burst of 100 then takes 4 s, not 33."""


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("limited"), small_config(
        f"[limits]\nquote_per_code = {QUICK_QUOTES}\n"))
    yield srv
    srv.stop()


async def test_a_burst_of_100_quotes_for_one_code_meets_no_429(limited: Server) -> None:
    events = Events()
    async with AsyncClient(limited.url, limits=Limits(quote_per_code=QUICK_QUOTES),
                           retries=0, on_event=events) as client:
        loop = asyncio.get_running_loop()
        began = loop.time()
        quotes = await asyncio.gather(*(client.quote("btcusdt") for _ in range(100)))
        took = loop.time() - began
    assert len(quotes) == 100 and {q.code for q in quotes} == {"btcusdt"}
    assert client.rate_limited == 0 and events.of("rate_limited") == []
    assert took >= 100 / QUICK_QUOTES - 1.2  # it was paced, not lucky


async def test_protocol_limits_on_every_path_at_once(protocol_limits: Server) -> None:
    async with AsyncClient(protocol_limits.url, retries=0) as client:
        results = await asyncio.gather(
            *(client.quote("ethusdt") for _ in range(7)),
            *(client.quotes(["ethusdt", "xrpusdt"]) for _ in range(2)),
            *(client.klines("ethusdt", "1m", 5) for _ in range(11)),
            *(client.categories() for _ in range(5)),
            *(client.symbols(4) for _ in range(5)),
        )
    assert len(results) == 30 and client.rate_limited == 0


async def test_a_429_that_comes_anyway_is_retried_after_retry_after(limited: Server) -> None:
    events = Events()
    async with AsyncClient(limited.url, limits=Limits.none(), retries=3,
                           on_event=events) as client:
        quotes = await asyncio.gather(*(client.quote("xrpusdt")
                                        for _ in range(QUICK_QUOTES + 10)))
    assert len(quotes) == QUICK_QUOTES + 10
    assert client.rate_limited >= 10
    waits = [e.delay for e in events.of("rate_limited")]
    assert waits and all(w >= 1 for w in waits)  # the server's Retry-After, in whole seconds

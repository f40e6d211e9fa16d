"""Nothing waits without a bound: a server that accepts connections and never answers, or
one that is not there, fails every call within its timeout, async and sync."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.client.conftest import Events
from tests.e2e.server import free_port
from tickwire import AsyncClient, Client, ConnectionLost
from tickwire.client.aio import DEFAULT_TIMEOUT

TIMEOUT = 0.5
SLACK = 2.0
"""Seconds a call may take past its timeout (a loaded machine), far below a second try."""


def test_every_wait_has_a_stated_default() -> None:
    assert DEFAULT_TIMEOUT == 10.0
    client = AsyncClient()
    assert client._http.timeout == DEFAULT_TIMEOUT
    assert client._hub.reply_timeout == DEFAULT_TIMEOUT


async def test_an_http_call_fails_within_its_timeout_without_a_retry(silent_url: str) -> None:
    events = Events()
    async with AsyncClient(silent_url, timeout=TIMEOUT, on_event=events) as client:
        began = time.monotonic()
        with pytest.raises(ConnectionLost) as caught:
            await client.quote("btcusdt")
    assert time.monotonic() - began < TIMEOUT + SLACK
    assert caught.value.msg == f"cannot reach {silent_url}/getQuote.php: no answer within 0.5 s"
    assert events.of("retrying") == []


def test_the_sync_client_too(silent_url: str) -> None:
    with Client(silent_url, timeout=TIMEOUT) as client:
        began = time.monotonic()
        with pytest.raises(ConnectionLost, match=r"no answer within 0\.5 s"):
            client.categories()
        assert time.monotonic() - began < TIMEOUT + SLACK


async def test_a_websocket_that_never_opens_fails_ready_and_subscribe(silent_url: str) -> None:
    async with AsyncClient(silent_url, timeout=5, connect_timeout=TIMEOUT) as client:
        began = time.monotonic()
        with pytest.raises(ConnectionLost) as caught:
            await client.stream(["btcusdt"]).ready()
        assert time.monotonic() - began < TIMEOUT + SLACK
        ws_url = silent_url.replace("http", "ws") + "/ws"
        assert caught.value.msg == f"cannot reach {ws_url}: no answer within 0.5 s"
        with pytest.raises(ConnectionLost):
            await asyncio.wait_for(client.subscribe(["btcusdt"], print), TIMEOUT + SLACK)


async def test_nothing_listening_fails_ready_at_once() -> None:
    async with AsyncClient(f"http://127.0.0.1:{free_port()}") as client:
        began = time.monotonic()
        with pytest.raises(ConnectionLost, match=r"cannot reach ws://.*: cannot connect: "
                                                 r"connection refused"):
            await client.stream(["btcusdt"]).ready()
    assert time.monotonic() - began < SLACK  # the first attempt's failure, not the timeout

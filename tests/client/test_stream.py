"""Streaming over one WebSocket: subscriptions, heartbeats, dead connections, reconnects."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import time
import urllib.request
from collections.abc import Callable

import pytest

from tests.client.conftest import Events
from tests.e2e.conftest import small_config
from tests.e2e.server import Server, free_port, start_server
from tickwire import AsyncClient, Backoff, Quote, Stream, UnknownCode


async def codes_seen(stream: Stream, seconds: float) -> dict[str, int]:
    """How many quotes of each code arrive in `seconds`."""
    seen: dict[str, int] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        quote = await stream.get(left)
        if quote is not None:
            seen[quote.code] = seen.get(quote.code, 0) + 1
    return seen


async def until_codes(stream: Stream, codes: set[str], timeout: float = 10) -> float:
    """Read until every code has come; returns when (loop time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    missing = set(codes)
    while missing:
        quote = await stream.get(max(0.01, deadline - loop.time()))
        if quote is None:
            raise AssertionError(f"no quote of {sorted(missing)} within {timeout} s")
        missing.discard(quote.code)
    return loop.time()


def health(server: Server) -> dict[str, object]:
    with urllib.request.urlopen(server.url + "/healthz", timeout=5) as resp:
        value: dict[str, object] = json.loads(resp.read())
    return value


async def test_stream_snapshot_then_updates(live: Server) -> None:
    async with AsyncClient(live.url) as client, client.stream(["btcusdt", "ethusdt"]) as s:
        first = await s.get(5)
        assert isinstance(first, Quote) and first.code in {"btcusdt", "ethusdt"}
        seen = await codes_seen(s, 1.0)
    assert set(seen) == {"btcusdt", "ethusdt"} and sum(seen.values()) >= 5


async def test_async_for_and_subscribe_unsubscribe_while_running(live: Server) -> None:
    async with AsyncClient(live.url) as client:
        stream = client.stream("btcusdt")
        got: list[str] = []
        async for quote in stream:
            got.append(quote.code)
            if len(got) == 3:
                await stream.subscribe(["ethusdt", "xrpusdt"])
            if len(got) == 4:
                await stream.unsubscribe("btcusdt")
                break
        assert stream.codes == {"ethusdt", "xrpusdt"}
        await codes_seen(stream, 0.3)  # let pushes already on the way pass
        seen = await codes_seen(stream, 1.0)
        await stream.close()
        assert set(seen) == {"ethusdt", "xrpusdt"}
        assert await stream.get(0.1) is None and stream.closed


async def test_every_subscription_shares_one_websocket(vendorish: Server) -> None:
    srv = vendorish
    async with AsyncClient(srv.url) as client:
        a = client.stream(["btcusdt", "ethusdt"])
        b = client.stream(["ethusdt", "xrpusdt"])
        callback_codes: set[str] = set()
        sub = await client.subscribe(["nodepth"], lambda q: callback_codes.add(q.code))
        await until_codes(a, {"btcusdt", "ethusdt"})
        await until_codes(b, {"ethusdt", "xrpusdt"})  # a late joiner gets the last quote too
        await asyncio.sleep(0.5)
        state = health(srv)
        assert state["connections"] == 1 and state["subscriptions"] == 4
        assert callback_codes == {"nodepth"}
        await a.close()  # ethusdt stays: b still wants it
        await asyncio.sleep(0.3)
        assert health(srv)["subscriptions"] == 3
        assert "ethusdt" in await codes_seen(b, 1.0)
        await sub.close()
        await b.close()
        await asyncio.sleep(0.3)
        assert health(srv)["subscriptions"] == 0


async def test_callbacks_may_be_async_and_may_fail(live: Server) -> None:
    seen: list[str] = []

    async def on_quote(quote: Quote) -> None:
        seen.append(quote.code)
        if len(seen) == 1:
            raise RuntimeError("a broken callback")

    async with AsyncClient(live.url) as client:
        sub = await client.subscribe("ethusdt", on_quote)
        for _ in range(100):
            if len(seen) >= 3:
                break
            await asyncio.sleep(0.05)
        await sub.subscribe("xrpusdt")
        assert sub.codes == {"ethusdt", "xrpusdt"}
        await sub.close()
    assert len(seen) >= 3


async def test_heartbeats_are_sent_and_answered(live: Server) -> None:
    async with AsyncClient(live.url, heartbeat=0.2) as client, client.stream("nodepth") as s:
        await asyncio.sleep(1.0)
        assert client._hub.pongs >= 3
        assert client.connection_state == "connected" and not s.closed


async def test_server_error_messages_become_events(live: Server) -> None:
    events = Events()
    async with AsyncClient(live.url, on_event=events) as client, \
            client.stream(["nope", "btcusdt"]) as s:
        with pytest.raises(UnknownCode):
            await until_codes(s, {"btcusdt"})
        await until_codes(s, {"btcusdt"})
        event = await events.wait_for("server_error")
    assert event.status == 404 and event.message.endswith("unknown code: nope")


async def test_kill_and_restart_resumes_every_subscription(tmp_path: object) -> None:
    from pathlib import Path

    workdir = Path(str(tmp_path))
    port = free_port()
    data_dir = workdir / "data"
    server = start_server(workdir / "a", small_config(), data_dir=data_dir, port=port)
    events = Events()
    backoff = Backoff(initial=0.1, maximum=0.8, reset_after=1.0)
    try:
        async with AsyncClient(server.url, heartbeat=0.5, connect_timeout=1.0,
                               backoff=backoff, on_event=events) as client:
            stream = client.stream(["btcusdt", "ethusdt", "nodepth"])
            await until_codes(stream, {"btcusdt", "ethusdt", "nodepth"})
            await asyncio.sleep(1.0)  # healthy for longer than reset_after
            server.kill()
            await events.wait_for("reconnecting", 3)
            # while the server is down: one code more, one less
            await stream.subscribe("xrpusdt")
            await stream.unsubscribe("ethusdt")
            server = await asyncio.to_thread(start_server, workdir / "b", small_config(),
                                             data_dir=data_dir, port=port)
            await events.wait_for("connected", 2, timeout=15)
            await codes_seen(stream, 0.2)
            seen = await codes_seen(stream, 1.5)
            assert set(seen) == {"btcusdt", "nodepth", "xrpusdt"}
            assert client.connection_state == "connected"
    finally:
        server.stop()
    delays = [e.delay for e in events.of("reconnecting")]
    assert delays[0] <= 0.1  # reset: the first connection had been healthy
    assert all(b >= a for a, b in itertools.pairwise(delays[:4]))  # 0.1 0.2 0.4 0.8
    assert max(delays) <= 0.8 and len(delays) >= 3
    assert [e.attempt for e in events.of("reconnecting")][:3] == [1, 2, 3]
    assert events.of("disconnected") or events.of("dead")


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
async def test_a_frozen_server_is_detected_within_two_heartbeats(
        fresh_server: Callable[..., Server]) -> None:
    server = fresh_server()
    heartbeat = 0.5
    events = Events()
    async with AsyncClient(server.url, heartbeat=heartbeat, connect_timeout=0.5,
                           backoff=Backoff(initial=0.1, maximum=0.5),
                           on_event=events) as client:
        stream = client.stream(["btcusdt", "ethusdt"])
        await until_codes(stream, {"btcusdt", "ethusdt"})
        await codes_seen(stream, 0.3)
        os.kill(server.proc.pid, signal.SIGSTOP)
        frozen_at = time.time()
        try:
            dead = await events.wait_for("dead", timeout=5)
            await events.wait_for("reconnecting", timeout=2)
            await events.wait_for("connecting", 2, timeout=2)  # a new connection is tried
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        assert dead.at - frozen_at <= 2 * heartbeat + 0.3
        await events.wait_for("connected", 2, timeout=10)
        seen = await codes_seen(stream, 1.0)
        assert set(seen) == {"btcusdt", "ethusdt"}

"""One rule for unknown codes everywhere: `UnknownCode`, naming them, async and sync alike.

Against a real server, and against a small WebSocket server that, like a tickwire server on
a plain `/ws`, answers unknown codes only on a connection opened with `?errors=1`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.client.conftest import SMALL_CODES, fake_server
from tests.e2e.server import Server
from tickwire import AsyncClient, Client, NotFound, Quote, UnknownCode

SURFACES_WITHIN = 1.0
"""Seconds an unknown code may take to surface on an open connection."""


async def test_quotes_names_the_unknown_codes_and_keeps_the_others(live: Server) -> None:
    async with AsyncClient(live.url) as client:
        with pytest.raises(UnknownCode) as mixed:
            await client.quotes(["hf_GC", "nope", "btcusdt", "nada"])
        with pytest.raises(UnknownCode) as every:
            await client.quotes(["nope", "nada"])
        with pytest.raises(UnknownCode) as one:
            await client.quote("nope")
    assert mixed.value.codes == ("nope", "nada")
    assert mixed.value.msg == "unknown codes: nope, nada"
    assert [q.code for q in mixed.value.found] == ["hf_GC", "btcusdt"]
    assert every.value.codes == ("nope", "nada") and every.value.found == []
    assert one.value.msg == "unknown code: nope" and isinstance(one.value, NotFound)


async def test_codes_over_several_requests_are_all_named(live: Server) -> None:
    unknown = [f"zz{i}" for i in range(60)]
    async with AsyncClient(live.url) as client:
        with pytest.raises(UnknownCode) as caught:
            await client.quotes([*SMALL_CODES, *unknown, "btcusdt"])
    assert caught.value.codes == tuple(unknown)
    assert [q.code for q in caught.value.found] == list(SMALL_CODES)
    assert caught.value.msg == ("unknown codes: " + ", ".join(unknown[:10]) + " and 50 more")


def test_quote_of_a_list_is_a_type_error_naming_quotes(live: Server) -> None:
    with Client(live.url) as client, pytest.raises(TypeError, match=r"use quotes\(\)"):
        client.quote(["btcusdt", "ethusdt"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"use quotes\(\)"):
        asyncio.run(AsyncClient(live.url).quote("btcusdt,ethusdt"))


async def first_quote(client: AsyncClient) -> None:
    """Until the client's WebSocket is open and pushing."""
    async with client.stream(["btcusdt"]) as stream:
        assert await stream.get(10) is not None


async def test_a_stream_of_an_unknown_code_raises_at_once(live: Server) -> None:
    async with AsyncClient(live.url) as client:
        await first_quote(client)
        async with client.stream(["nosuch"]) as stream:
            with pytest.raises(UnknownCode) as caught:
                async with asyncio.timeout(SURFACES_WITHIN):
                    async for _ in stream:
                        pass
            assert caught.value.codes == ("nosuch",) and stream.codes == frozenset()


async def test_a_stream_goes_on_with_its_known_codes(live: Server) -> None:
    async with AsyncClient(live.url) as client, \
            client.stream(["btcusdt", "nosuch"]) as stream:
        with pytest.raises(UnknownCode, match="unknown code: nosuch"):
            await stream.get(10)
        quote = await stream.get(10)
        assert isinstance(quote, Quote) and quote.code == "btcusdt"
        assert stream.codes == {"btcusdt"}


async def test_ready_and_subscribe_raise_for_the_codes_refused(live: Server) -> None:
    async with AsyncClient(live.url) as client, client.stream(["btcusdt"]) as stream:
        await stream.ready()
        await stream.subscribe(["ethusdt", "zzz"])
        with pytest.raises(UnknownCode) as caught:
            await stream.ready()
        assert caught.value.codes == ("zzz",) and stream.codes == {"btcusdt", "ethusdt"}
        seen = {(await stream.get(10) or Quote("none")).code for _ in range(20)}
        assert seen <= {"btcusdt", "ethusdt"}  # raised once, not again by a read

        with pytest.raises(UnknownCode, match="unknown code: qqq"):
            await client.subscribe(["xrpusdt", "qqq"], print)
        assert "xrpusdt" not in client._hub._refs  # nothing stays subscribed

        quotes: list[Quote] = []
        async with await client.subscribe("xrpusdt", quotes.append) as subscription:
            with pytest.raises(UnknownCode, match="unknown code: www"):
                await subscription.subscribe(["nodepth", "www"])
            assert subscription.codes == {"xrpusdt", "nodepth"}


def test_the_sync_client_raises_the_same(live: Server) -> None:
    with Client(live.url) as client:
        with pytest.raises(UnknownCode) as caught:
            for _ in client.stream(["nosuch"]):
                pass
        assert caught.value.codes == ("nosuch",)
        with pytest.raises(UnknownCode) as quotes:
            client.quotes("btcusdt,nosuch")
        assert [q.code for q in quotes.value.found] == ["btcusdt"]
        with pytest.raises(UnknownCode, match="unknown code: qqq"):
            client.subscribe(["xrpusdt", "qqq"], print)
        with client.subscribe("xrpusdt", print) as subscription, \
                pytest.raises(UnknownCode, match="unknown code: www"):
            subscription.subscribe("www")


# a server that answers errors only to those who ask -----------------------------------------

class OptInServer:
    """`/ws` that pushes btcusdt and, only on `?errors=1`, refuses any other code."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        self.queries.append(request.rel_url.raw_query_string)
        errors = request.query.get("errors") == "1"
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            data = json.loads(message.data)
            if "ping" in data:
                await ws.send_json({"pong": data["ping"]})
            for code in data.get("Key", "").split(","):
                if code == "btcusdt":
                    await ws.send_json({"body": {"StockCode": code, "Price": 1.5}})
                elif code and errors:
                    await ws.send_json({"code": 404, "msg": f"unknown code: {code}"})
        return ws


@pytest.fixture
async def opt_in() -> AsyncIterator[OptInServer]:
    fake = OptInServer()
    app = web.Application()
    app.router.add_get("/ws", fake.handle)
    async with fake_server(app) as url:
        fake.url = url
        yield fake


async def test_the_stream_opts_in_to_error_replies(opt_in: OptInServer) -> None:
    async with AsyncClient(opt_in.url) as client, \
            client.stream(["btcusdt", "nosuch"]) as stream:
        with pytest.raises(UnknownCode, match="unknown code: nosuch"):
            await stream.ready()
        quote = await stream.get(5)
        assert quote is not None and quote.price == 1.5
    ws_url = opt_in.url.replace("http", "ws") + "/ws?token=a%20b&errors=0"
    async with AsyncClient(opt_in.url, ws_url) as client, client.stream("btcusdt") as stream:
        await stream.ready()
    assert opt_in.queries == ["errors=1", "token=a%20b&errors=1"]

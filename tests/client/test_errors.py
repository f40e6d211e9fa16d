"""Each status maps to its exception, carrying the server's `msg`.

The statuses a tickwire server gives on request are checked against one; the rest (5xx,
an envelope `code` under HTTP 200, gzip without a header, a refused handshake) against a
small vendor-like server on a real socket.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from tests.client.conftest import Events, fake_server
from tests.e2e.server import Server, free_port
from tickwire import (
    AsyncClient,
    BadRequest,
    ConnectionLost,
    Limits,
    NotAuthorized,
    NotFound,
    RateLimited,
    ServerError,
    TickwireError,
)


async def test_400_bad_request_names_the_parameter(live: Server) -> None:
    async with AsyncClient(live.url) as client:
        with pytest.raises(BadRequest) as caught:
            await client.klines("btcusdt", "2m")
        with pytest.raises(ValueError):
            await client.klines("btcusdt", rows=0)
    assert caught.value.status == 400 and "bad parameter time" in caught.value.msg


async def test_404_not_found_carries_the_message(live: Server) -> None:
    async with AsyncClient(live.url) as client:
        with pytest.raises(NotFound) as code:
            await client.quote("nope")
        with pytest.raises(NotFound) as category:
            await client.symbols(99)
        with pytest.raises(NotFound):
            await client.klines("nope")
    assert code.value.msg == "unknown code: nope"
    assert category.value.msg == "unknown category: 99"


async def test_429_rate_limited_when_retries_are_spent(protocol_limits: Server) -> None:
    async with AsyncClient(protocol_limits.url, limits=Limits.none(), retries=0) as client:
        results = await asyncio.gather(*(client.quote("TW_TXF") for _ in range(6)),
                                       return_exceptions=True)
    refused = [r for r in results if isinstance(r, RateLimited)]
    assert len(refused) == 3
    assert all(r.retry_after >= 1 and r.msg.startswith("rate limited: TW_TXF")
               for r in refused)


async def test_403_not_authorized_from_the_allow_list(
        fresh_server: Callable[..., Server]) -> None:
    # The test runs on loopback, so it comes as an outsider through a trusted proxy.
    locked = fresh_server('[access]\nallow = ["127.0.0.1/32"]\n'
                          'trusted_proxies = ["127.0.0.1"]\n')
    outsider = {"X-Forwarded-For": "203.0.113.9"}
    async with AsyncClient(locked.url, headers=outsider) as client:
        with pytest.raises(NotAuthorized) as http:
            await client.categories()
        stream = client.stream(["btcusdt"])
        with pytest.raises(NotAuthorized):
            await asyncio.wait_for(anext(stream), 10)
    assert http.value.msg == "IP 203.0.113.9 is not authorized"


async def test_nothing_listening_is_connection_lost() -> None:
    events = Events()
    async with AsyncClient(f"http://127.0.0.1:{free_port()}", retries=1,
                           on_event=events) as client:
        with pytest.raises(ConnectionLost) as caught:
            await client.categories()
    assert "cannot reach" in caught.value.msg and "refused" in caught.value.msg
    assert [e.kind for e in events] == ["retrying"]


# a vendor-like server ---------------------------------------------------------------------

class Vendor:
    """Answers each path from a script of (status, body, headers); counts requests."""

    def __init__(self) -> None:
        self.script: dict[str, list[tuple[int, bytes, dict[str, str]]]] = {}
        self.hits: dict[str, int] = {}
        self.url = ""

    def answer(self, path: str, *answers: tuple[int, Any] | tuple[int, Any, dict[str, str]]
               ) -> None:
        self.script[path] = [(a[0], a[1] if isinstance(a[1], bytes) else
                              json.dumps(a[1]).encode(), a[2] if len(a) > 2 else {})
                             for a in answers]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path.lstrip("/")
        self.hits[path] = self.hits.get(path, 0) + 1
        answers = self.script[path]
        status, body, headers = answers[min(self.hits[path], len(answers)) - 1]
        return web.Response(status=status, body=body, headers=headers,
                            content_type="application/json")


@pytest.fixture
async def vendor() -> AsyncIterator[Vendor]:
    fake = Vendor()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", fake.handle)
    async with fake_server(app) as url:
        fake.url = url
        yield fake


ERROR = {"code": 500, "msg": "internal error", "data": None}
CATEGORIES = {"code": 200, "msg": "success", "data": {"list": [{"id": "1", "name": "外汇"}]}}


async def test_5xx_is_retried_then_server_error(vendor: Vendor) -> None:
    vendor.answer("getCategory.php", (500, ERROR))
    events = Events()
    async with AsyncClient(vendor.url, retries=2, on_event=events) as client:
        with pytest.raises(ServerError) as caught:
            await client.categories()
    assert caught.value.msg == "internal error" and caught.value.status == 500
    assert vendor.hits["getCategory.php"] == 3
    assert [e.kind for e in events] == ["retrying", "retrying"]


async def test_a_passing_5xx_is_survived(vendor: Vendor) -> None:
    vendor.answer("getCategory.php", (503, b"<html>busy</html>"), (502, b""), (200, CATEGORIES))
    async with AsyncClient(vendor.url) as client:
        cats = await client.categories()
    assert [c.id for c in cats] == ["1"] and vendor.hits["getCategory.php"] == 3


async def test_a_429_is_retried_after_retry_after(vendor: Vendor) -> None:
    vendor.answer("getCategory.php",
                  (429, {"code": 429, "msg": "slow down", "data": None}, {"Retry-After": "1"}),
                  (200, CATEGORIES))
    events = Events()
    async with AsyncClient(vendor.url, on_event=events) as client:
        loop = asyncio.get_running_loop()
        began = loop.time()
        await client.categories()
        assert loop.time() - began >= 0.95
    assert events.of("rate_limited")[0].delay == 1.0 and client.rate_limited == 1


@pytest.mark.parametrize(("code", "exc"), [(400, BadRequest), (403, NotAuthorized),
                                           (404, NotFound), (429, RateLimited),
                                           (500, ServerError), (418, TickwireError)])
async def test_an_error_code_inside_a_200_envelope(vendor: Vendor, code: int,
                                                   exc: type[TickwireError]) -> None:
    vendor.answer("getCategory.php", (200, {"code": code, "msg": f"no {code}", "data": None}))
    async with AsyncClient(vendor.url, retries=0) as client:
        with pytest.raises(exc) as caught:
            await client.categories()
    assert caught.value.msg == f"no {code}" and caught.value.status == code


@pytest.mark.parametrize("status", [400, 403, 404])
async def test_http_statuses_without_a_json_body(vendor: Vendor, status: int) -> None:
    vendor.answer("getSymbolList.php", (status, b"nope"))
    async with AsyncClient(vendor.url) as client:
        with pytest.raises(TickwireError) as caught:
            await client.symbols(1)
    assert caught.value.status == status and caught.value.msg == f"HTTP {status}: nope"
    assert vendor.hits["getSymbolList.php"] == 1  # 4xx other than 429 is never retried


async def test_gzip_body_without_content_encoding(vendor: Vendor) -> None:
    vendor.answer("getCategory.php", (200, gzip.compress(json.dumps(CATEGORIES).encode())))
    async with AsyncClient(vendor.url) as client:
        assert [c.name for c in await client.categories()] == ["外汇"]


async def test_kline_error_object_instead_of_an_array(vendor: Vendor) -> None:
    vendor.answer("redis.php", (200, {"code": 404, "msg": "no such product", "data": None}))
    async with AsyncClient(vendor.url) as client:
        with pytest.raises(NotFound, match="no such product"):
            await client.klines("x")


async def test_websocket_handshake_refused_ends_the_stream(vendor: Vendor) -> None:
    vendor.answer("ws", (403, {"code": 403, "msg": "IP 1.2.3.4 is not authorized"}))
    events = Events()
    async with AsyncClient(vendor.url, on_event=events) as client:
        stream = client.stream(["btcusdt"])
        with pytest.raises(NotAuthorized, match="403"):
            await asyncio.wait_for(anext(stream), 10)
    assert events.of("failed") and client.connection_state == "closed"


@pytest.mark.parametrize("body", [b"<html>oops</html>", b'{"code":200,"msg":"success"}',
                                  b'{"code":200,"msg":"success","data":{"list":7}}'])
async def test_a_malformed_answer_is_a_server_error(vendor: Vendor, body: bytes) -> None:
    vendor.answer("getCategory.php", (200, body))
    vendor.answer("redis.php", (200, b'[[1, "x"]]'))
    async with AsyncClient(vendor.url) as client:
        with pytest.raises(ServerError, match="malformed"):
            await client.categories()
        with pytest.raises(ServerError, match="malformed K-line answer"):
            await client.klines("x")

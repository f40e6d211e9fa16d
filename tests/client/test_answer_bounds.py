"""An answer bigger than any of the protocol's (a broken or hostile server, an upstream of a
relay) is a `ServerError`, whether it comes plain, compressed without saying so, or as a
declared gzip: the client never holds more than `MAX_ANSWER_BYTES` of it."""

from __future__ import annotations

import gzip
import zlib

import pytest
from aiohttp import web

from tests.client.conftest import fake_server
from tickwire import AsyncClient, ServerError
from tickwire.client.http import MAX_ANSWER_BYTES

HUGE = MAX_ANSWER_BYTES + 1


def bomb() -> bytes:
    """A gzip member of a few KiB that inflates past the bound."""
    pack = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b" " * (1024 * 1024)
    return b"".join(pack.compress(chunk) for _ in range(HUGE // len(chunk) + 1)) + pack.flush()


async def plain(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    for _ in range(HUGE // 65_536 + 1):
        await response.write(b" " * 65_536)
    return response


async def undeclared(request: web.Request) -> web.Response:
    return web.Response(body=bomb(), content_type="application/json")


async def declared(request: web.Request) -> web.Response:
    return web.Response(body=bomb(), content_type="application/json",
                        headers={"Content-Encoding": "gzip"})


async def small_gzip(request: web.Request) -> web.Response:
    return web.Response(body=gzip.compress(b'{"code":200,"msg":"success","data":{"list":[]}}'),
                        content_type="application/json")


@pytest.mark.parametrize("handler", [plain, undeclared, declared])
async def test_an_answer_over_the_bound_is_a_server_error(handler: object) -> None:
    app = web.Application()
    app.router.add_get("/getCategory.php", handler)  # type: ignore[arg-type]
    async with fake_server(app) as url, AsyncClient(url, timeout=30) as client:
        with pytest.raises(ServerError) as caught:
            await client.categories()
    assert f"answer over {MAX_ANSWER_BYTES} bytes" in caught.value.msg


async def test_a_small_gzip_answer_still_reads() -> None:
    app = web.Application()
    app.router.add_get("/getCategory.php", small_gzip)
    async with fake_server(app) as url, AsyncClient(url) as client:
        assert await client.categories() == []

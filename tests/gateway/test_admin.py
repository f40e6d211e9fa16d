"""The admin token's comparison, and what an internal error lets out."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.e2e.server import SMALL_CATALOGUE
from tickwire.config import load_config
from tickwire.gateway import admin
from tickwire.gateway.responses import SERVER
from tickwire.server import build


def test_the_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """By `hmac.compare_digest`, of digests of one length whatever was sent (so an early
    stop on a length that differs tells nothing either)."""
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert admin._same_secret("Bearer t0ken", "Bearer t0ken")
    for guess in ("", "Bearer", "Bearer t0ke", "Bearer t0ken!", "Bearer \udcff" * 1000):
        assert not admin._same_secret(guess, "Bearer t0ken")
    assert len(compared) == 6
    assert {(len(a), len(b)) for a, b in compared} == {(32, 32)}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    config = load_config(None, {"server.data_dir": str(tmp_path / "data"),
                                "server.catalogue": str(SMALL_CATALOGUE)}, environ={})
    config.feeds[0].history = False  # type: ignore[union-attr]
    server = build(config)

    async def fails(request: web.Request) -> web.Response:
        raise RuntimeError(f"secret detail at {Path(__file__)}")

    server.app.router.add_get("/fails", fails)
    async with TestClient(TestServer(server.app)) as test_client:
        yield test_client


async def test_an_internal_error_is_a_bare_500(
        client: TestClient) -> None:  # type: ignore[type-arg]
    async with client.get("/fails") as resp:
        assert resp.status == 500
        assert resp.headers["Server"] == SERVER
        assert await resp.json() == {"code": 500, "msg": "internal error", "data": None}

"""Shared test fixtures: where the real exchange data lives; which tests are slow; a real
redis-server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_server import RedisServer, require_redis, start_redis

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """`../shared/data` beside the checkout; tests that need it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real exchange data not found at {SHARED_DATA} "
                    "(../shared is not beside this clone)")
    return SHARED_DATA


SLOW_FOLDERS = ("e2e", "client", "browser")
"""Tests that start real server processes (and a browser): `pytest -m "not slow"` leaves
them out."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent.name in SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def silent_address() -> Iterator[str]:
    """`host:port` of a socket that accepts connections (into its backlog) and never
    answers: what a hung server looks like to a client."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        yield f"127.0.0.1:{silent.getsockname()[1]}"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session (tests keep apart by key prefix); skips, saying
    why, where redis-server is not installed."""
    require_redis()
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()

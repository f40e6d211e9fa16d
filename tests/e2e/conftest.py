"""Real servers for end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import SMALL_CATALOGUE, Server, start_server

GENEROUS_LIMITS = """
[limits]
quote_per_code = 100000
kline_per_code = 100000
category = 100000
symbols = 100000
"""


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server with the shipped catalogue and history, rate limits out of the way."""
    srv = start_server(tmp_path_factory.mktemp("server"), GENEROUS_LIMITS)
    yield srv
    srv.stop()


@pytest.fixture
def small_server_config() -> str:
    """Config text for a quick server over the small test catalogue."""
    return f'catalogue = "{SMALL_CATALOGUE}"\n'


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A small-catalogue server with the protocol's default rate limits."""
    srv = start_server(tmp_path_factory.mktemp("strict"),
                       f'catalogue = "{SMALL_CATALOGUE}"\n')
    yield srv
    srv.stop()


def small_config(extra: str = "") -> str:
    return f'catalogue = "{SMALL_CATALOGUE}"\n{extra}'


__all__ = ["Path", "small_config"]

"""Shared test fixtures: where the real exchange data lives; which tests are slow."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """`../shared/data` beside the checkout; tests that need it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real exchange data not found at {SHARED_DATA} "
                    "(../shared is not beside this clone)")
    return SHARED_DATA


SLOW_FOLDERS = ("e2e", "client")
"""Tests that start real server processes: `pytest -m "not slow"` leaves them out."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent.name in SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)

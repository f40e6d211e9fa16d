"""Shared test fixtures: where the real exchange data lives."""

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

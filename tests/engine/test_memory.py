"""What only the memory engine has: its SQLite store behind the allow-list."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.engine.conftest import Harness
from tickwire.errors import TickwireError


@pytest.mark.parametrize("harness", ["memory"], indirect=True)
async def test_an_allow_list_change_the_store_cannot_write_is_a_503(
        harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = harness.ingest.store

    def full(*args: object) -> object:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "allow_add", full)
    monkeypatch.setattr(store, "allow_remove", full)
    for change in (harness.engine.allow_add("10.0.0.0/8", ""),
                   harness.engine.allow_remove("10.0.0.0/8")):
        with pytest.raises(TickwireError) as refused:
            await change
        assert refused.value.status == 503
        assert "database or disk is full" in refused.value.msg
    assert (await harness.engine.allow_list()).entries == []

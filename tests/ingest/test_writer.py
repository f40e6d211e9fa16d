"""The store writer loses nothing when the store fails: it keeps each batch until committed,
retries, says so once, and drops only beyond its stated bound (counted)."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest

from tickwire.engine.sqlite import SqliteStore
from tickwire.ingest.writer import StoreWriter
from tickwire.market.quotes import DayStats
from tickwire.market.state import StoredBar

T0 = 1_763_431_200_000
MINUTE = 60_000


class FullDisk(SqliteStore):
    """A real SQLite store whose writes fail, as on a full disk, while `full` is set."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.full = False
        self.attempts = 0

    def write(self, bars: object, stats: object) -> None:  # type: ignore[override]
        self.attempts += 1
        if self.full:
            raise sqlite3.OperationalError("database or disk is full")
        super().write(bars, stats)  # type: ignore[arg-type]


def bar(i: int, close: float = 1.0) -> StoredBar:
    return ("btcusdt", "1m", (T0 + i * MINUTE, 1.0, 2.0, 0.5, close, 3.0))


def stored(store: SqliteStore) -> dict[int, float]:
    return {row[0]: row[4] for row in store.read_bars("btcusdt", "1m", 1000, None)}


@pytest.fixture
def disk(tmp_path: Path) -> FullDisk:
    return FullDisk(tmp_path / "tickwire.sqlite3")


def test_a_failed_batch_stays_and_newer_values_win(disk: FullDisk) -> None:
    writer = StoreWriter(disk, idle_wait=3600)
    writer.close()  # no thread: this test flushes by hand
    disk.full = True
    writer.put([bar(0), bar(1)], [bar(2, close=5.0)], [("btcusdt", DayStats(price=5.0))])
    with pytest.raises(sqlite3.OperationalError):
        writer.flush()
    assert writer.pending == 3
    writer.put([bar(2, close=6.0)], [bar(3, close=7.0)], [("btcusdt", DayStats(price=7.0))])
    with pytest.raises(sqlite3.OperationalError):
        writer.flush()
    disk.full = False
    writer.flush()
    assert writer.pending == 0 and writer.rows_written == 4
    assert stored(disk) == {T0: 1.0, T0 + MINUTE: 1.0, T0 + 2 * MINUTE: 6.0,
                            T0 + 3 * MINUTE: 7.0}
    assert disk.load_stats()["btcusdt"].price == 7.0


def test_an_outage_is_retried_logged_once_and_reported(disk: FullDisk,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    disk.full = True
    with caplog.at_level(logging.INFO, logger="tickwire.store"):
        writer = StoreWriter(disk, retry=(0.01, 0.05))
        writer.put([bar(i) for i in range(10)], [], [])
        deadline = time.monotonic() + 10
        while disk.attempts < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert disk.attempts >= 4  # retried
        health = writer.health()
        assert health["state"] == "failing" and not writer.ok
        assert health["error"] == "OperationalError: database or disk is full"
        assert health["pending_bars"] == 10
        disk.full = False
        while not writer.ok and time.monotonic() < deadline:
            time.sleep(0.02)
        writer.close()
    assert writer.ok and writer.health()["state"] == "ok"
    assert len(stored(disk)) == 10
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.msg for r in errors] == ["store cannot write; keeping changes in memory and "
                                       "retrying"]
    assert all(r.exc_info is None for r in caplog.records)  # no traceback every retry
    assert [r.msg for r in caplog.records if r.levelno == logging.WARNING] == [
        "store writing again"]


def test_beyond_the_bound_the_oldest_bars_are_dropped_and_counted(disk: FullDisk) -> None:
    writer = StoreWriter(disk, max_pending=5, idle_wait=3600)
    writer.close()
    disk.full = True
    writer.put([bar(i) for i in range(8)], [], [])
    assert writer.pending == 5 and writer.dropped_bars == 3
    assert writer.health()["dropped_bars"] == 3
    disk.full = False
    writer.flush()
    assert sorted(stored(disk)) == [T0 + i * MINUTE for i in range(3, 8)]


def test_close_writes_what_waits(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "tickwire.sqlite3")
    writer = StoreWriter(store, idle_wait=3600)
    writer.put([bar(0)], [bar(1)], [])
    writer.close()
    assert len(stored(store)) == 2

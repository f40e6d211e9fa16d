"""Durability: a kill -9 loses at most the last second and never leaves a bad bar."""

from __future__ import annotations

import itertools
import json
import signal
import sqlite3
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.e2e.conftest import small_config
from tests.e2e.server import Server, start_server

MINUTE = 60_000


def get_json(server: Server, path: str) -> Any:
    with urllib.request.urlopen(server.url + path, timeout=10) as resp:
        return json.loads(resp.read())


def db(server: Server) -> sqlite3.Connection:
    return sqlite3.connect(server.data_dir / "tickwire.sqlite3")


def assert_no_gaps(rows: list[list[Any]], step: int) -> None:
    stamps = [r[0] for r in rows]
    assert stamps == sorted(stamps, reverse=True)
    assert all(a - b == step for a, b in itertools.pairwise(stamps))


def test_kill_9_then_restart_keeps_every_bar(tmp_path: Path) -> None:
    first = start_server(tmp_path, small_config())
    time.sleep(2)
    before = get_json(first, "/redis.php?code=btcusdt&time=1m&rows=600")
    day_before = get_json(first, "/redis.php?code=btcusdt&time=1d&rows=1")[0]
    fetched_ms = int(time.time() * 1000)
    time.sleep(1.2)  # more than the store's flush interval, less than a lost second matters
    first.kill()
    killed_ms = int(time.time() * 1000)

    with db(first) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = conn.execute(
            "SELECT open_ms FROM bars WHERE code='btcusdt' AND interval='1m' ORDER BY open_ms"
        ).fetchall()
    stamps = [s for (s,) in stored]
    assert len(stamps) == len(set(stamps)) >= 600
    assert all(b - a == MINUTE for a, b in itertools.pairwise(stamps))

    second = start_server(tmp_path, small_config(), data_dir=first.data_dir)
    try:
        after = get_json(second, "/redis.php?code=btcusdt&time=1m&rows=600")
        assert_no_gaps(after, MINUTE)
        closed_before = {r[0]: r for r in before if r[0] + MINUTE <= fetched_ms}
        after_by_time = {r[0]: r for r in after}
        for open_ms, row in closed_before.items():
            if open_ms in after_by_time:
                assert after_by_time[open_ms] == row
        assert after[-1][0] <= min(closed_before) + 10 * MINUTE
        assert after[0][0] >= killed_ms - killed_ms % MINUTE
        day_after = get_json(second, "/redis.php?code=btcusdt&time=1d&rows=1")[0]
        assert day_after[0] == day_before[0] or day_after[0] > day_before[0]
        if day_after[0] == day_before[0]:
            assert day_after[1] == day_before[1]  # same open
            assert day_after[6] >= day_before[6]  # nothing counted before the fetch was lost
            assert day_after[2] >= day_before[2] and day_after[3] <= day_before[3]
    finally:
        assert second.stop(signal.SIGTERM) == 0
    assert "stopped; store flushed" in second.log()


def test_restart_does_not_refill_history(tmp_path: Path) -> None:
    first = start_server(tmp_path / "a", small_config())
    first.stop()
    second = start_server(tmp_path / "b", small_config(), data_dir=first.data_dir)
    second.stop()
    assert "filling history" in first.log()
    assert "filling history" not in second.log()
    assert "restored from store" in second.log()


def test_history_is_kept_beyond_the_served_window(tmp_path: Path) -> None:
    first = start_server(tmp_path, small_config())
    first.stop()
    with db(first) as conn:
        (oldest,) = conn.execute(
            "SELECT min(open_ms) FROM bars WHERE code='btcusdt' AND interval='1m'"
        ).fetchone()
        older = [("btcusdt", "1m", oldest - (i + 1) * MINUTE, 100.0 + i, 101.0 + i, 99.0 + i,
                  100.5 + i, float(i)) for i in range(2000)]
        conn.executemany("INSERT INTO bars VALUES (?,?,?,?,?,?,?,?)", older)
    second = start_server(tmp_path, small_config(), data_dir=first.data_dir)
    try:
        newest = get_json(second, "/redis.php?code=btcusdt&time=1m&rows=600")
        assert len(newest) == 600 and newest[-1][0] >= oldest
        page = get_json(second, f"/redis.php?code=btcusdt&time=1m&rows=600&end={oldest - 1}")
        assert len(page) == 600
        assert page[0][:5] == [oldest - MINUTE, 100, 101, 99, 100.5]
        assert_no_gaps(page, MINUTE)
        deepest = get_json(
            second, f"/redis.php?code=btcusdt&time=1m&rows=600&end={oldest - 1800 * MINUTE}")
        assert len(deepest) == 201 and deepest[-1][0] == oldest - 2000 * MINUTE
    finally:
        second.stop()

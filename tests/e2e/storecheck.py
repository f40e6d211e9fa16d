"""What a store must be after any fault: a sound database whose bars are well formed.

Used by the crash, power-cut and disk tests over the round-the-clock products of the small
catalogue, so that no check depends on the hour.
"""

from __future__ import annotations

import itertools
import json
import shutil
import sqlite3
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.e2e.server import Server

ROUND_THE_CLOCK = ("btcusdt", "ethusdt", "xrpusdt", "nodepth")
"""The small catalogue's 24/7 products: every minute of theirs has a bar."""
MINUTE = 60_000
STEPS = {"1m": MINUTE, "5m": 5 * MINUTE, "15m": 15 * MINUTE, "30m": 30 * MINUTE,
         "1h": 60 * MINUTE}
"""Intervals of a fixed length, whose bars of a 24/7 product follow each other."""
DB_FILES = ("tickwire.sqlite3", "tickwire.sqlite3-wal", "tickwire.sqlite3-shm")
PRICE_SLACK = 0.006
"""Served prices are rounded to the product's precision (2 decimals here); stored ones not."""
VOLUME_SLACK = 1e-4

Row = tuple[int, float, float, float, float, float]


def get_json(server: Server, path: str) -> Any:
    with urllib.request.urlopen(server.url + path, timeout=10) as resp:
        return json.loads(resp.read())


def db_path(data_dir: Path) -> Path:
    return data_dir / DB_FILES[0]


def stored_bars(path: Path, code: str, interval: str) -> list[Row]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT open_ms, open, high, low, close, volume FROM bars"
            " WHERE code = ? AND interval = ? ORDER BY open_ms", (code, interval)).fetchall()
    return rows


def check_store(path: Path, codes: tuple[str, ...] = ROUND_THE_CLOCK,
                steps: dict[str, int] = STEPS) -> int:
    """Assert the database is sound and its bars well formed: `PRAGMA integrity_check`
    ok, each bar's low and high around its open and close, volume not negative, open times
    strictly increasing and, for `steps`, one bar after the other without a hole (the
    caller keeps each outage shorter than the shortest of them). Returns the bars checked."""
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        intervals = [i for (i,) in conn.execute("SELECT DISTINCT interval FROM bars")]
    checked = 0
    for code in codes:
        for interval in intervals:
            rows = stored_bars(path, code, interval)
            checked += len(rows)
            for open_ms, o, h, low, c, v in rows:
                assert low <= min(o, c) and h >= max(o, c) and v >= 0, (code, interval, open_ms)
            stamps = [r[0] for r in rows]
            assert all(a < b for a, b in itertools.pairwise(stamps)), (code, interval)
            step = steps.get(interval)
            if step is not None:
                holes = [(a, b) for a, b in itertools.pairwise(stamps) if b - a != step]
                assert not holes, (code, interval, holes[:3])
    return checked


class Snapshot:
    """The newest 1m bars and today's bar of each product as served at one moment."""

    def __init__(self, server: Server, codes: tuple[str, ...] = ROUND_THE_CLOCK) -> None:
        self.began_ms = int(time.time() * 1000)
        self.bars = {(code, interval): get_json(
            server, f"/redis.php?code={code}&time={interval}&rows={rows}")
            for code in codes for interval, rows in (("1m", 5), ("1d", 1))}

    def assert_kept(self, path: Path) -> int:
        """Assert the store at `path` keeps everything this snapshot saw: a bar closed a
        second before the reading began exactly, any other with at least the volume and
        range read. Returns the bars compared."""
        compared = 0
        for (code, interval), served in self.bars.items():
            stored = {r[0]: r for r in stored_bars(path, code, interval)}
            for open_ms, o, h, low, c, _, v in served:
                row = stored.get(open_ms)
                assert row is not None, (code, interval, open_ms, "lost")
                _, so, sh, sl, sc, sv = row
                assert abs(so - o) <= PRICE_SLACK, (code, interval, open_ms, row, o)
                if interval == "1m" and open_ms + MINUTE <= self.began_ms - 1000:
                    closed = (sh, sl, sc, sv), (h, low, c, v)
                    assert all(abs(a - b) <= PRICE_SLACK for a, b in zip(*closed, strict=True))
                else:
                    assert sv >= v - VOLUME_SLACK, (code, interval, open_ms, "volume lost")
                    assert sh >= h - PRICE_SLACK and sl <= low + PRICE_SLACK
                compared += 1
        return compared


def copy_store(data_dir: Path, into: Path) -> Path:
    """Copy the database's files (those there are) into a new data dir `into`."""
    into.mkdir(parents=True)
    for name in DB_FILES:
        if (data_dir / name).exists():
            shutil.copyfile(data_dir / name, into / name)
    return into

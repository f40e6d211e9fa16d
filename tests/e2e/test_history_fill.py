"""History is never left half-filled: a first fill cut short by kill -9 goes on at the next
start, and a product added to the config gets its history then too."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.e2e.conftest import GENEROUS_LIMITS, small_config
from tests.e2e.server import Server, free_port, start_server, write_config
from tickwire.catalogue import load_catalogue
from tickwire.models import WINDOW

MY_PRODUCT = """
[[products]]
code = "my_index"
name = "我的指数"
category = "7"
precision = 1
hours = "24/7"
price = 1234.5
"""


def get_json(server: Server, path: str) -> Any:
    with urllib.request.urlopen(server.url + path, timeout=10) as resp:
        return json.loads(resp.read())


def stored_codes(database: Path) -> int:
    """Products with bars committed to the store (0 while it does not exist yet)."""
    if not database.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        try:
            return int(conn.execute("SELECT count(DISTINCT code) FROM bars").fetchone()[0])
        except sqlite3.OperationalError:
            return 0  # the schema is not there yet


def kill_during_first_fill(workdir: Path) -> tuple[Path, int]:
    """Start a server on an empty store and kill -9 it as soon as some products' history is
    committed; returns the data dir and how many products were stored by then."""
    workdir.mkdir(parents=True)
    data_dir = workdir / "data"
    config = workdir / "tickwire.toml"
    write_config(config, free_port(), data_dir, GENEROUS_LIMITS)
    proc = subprocess.Popen([sys.executable, "-m", "tickwire", "serve", "--config",
                             str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    database = data_dir / "tickwire.sqlite3"
    try:
        deadline = time.monotonic() + 60
        while stored_codes(database) == 0:
            assert time.monotonic() < deadline and proc.poll() is None, "no history stored"
            time.sleep(0.005)
    finally:
        proc.kill()
        proc.wait()
    return data_dir, stored_codes(database)


def test_a_first_fill_killed_midway_is_completed_at_the_next_start(tmp_path: Path) -> None:
    codes = catalogue_codes()
    total = len(codes)
    for attempt in range(5):  # the kill must land while the fill is under way
        data_dir, stored = kill_during_first_fill(tmp_path / f"try{attempt}")
        if 0 < stored < total:
            break
    else:
        raise AssertionError("could not kill a server during its first history fill")
    server = start_server(tmp_path / "restart", GENEROUS_LIMITS, data_dir=data_dir)
    try:
        for code in codes:
            for interval, window in WINDOW.items():
                bars = get_json(server, f"/redis.php?code={code}&time={interval}&rows={window}")
                assert len(bars) == window, (code, interval, len(bars))
    finally:
        server.stop()
    assert stored_codes(data_dir / "tickwire.sqlite3") == total


def catalogue_codes() -> list[str]:
    return list(load_catalogue(None).products)


def test_a_product_added_to_the_config_gets_its_history_at_the_next_start(
        tmp_path: Path) -> None:
    first = start_server(tmp_path, small_config(GENEROUS_LIMITS))
    before = get_json(first, "/redis.php?code=btcusdt&time=1d&rows=300")
    first.stop()
    second = start_server(tmp_path, small_config(GENEROUS_LIMITS + MY_PRODUCT),
                          data_dir=first.data_dir)
    try:
        for interval, window in WINDOW.items():
            bars = get_json(second, f"/redis.php?code=my_index&time={interval}&rows={window}")
            assert len(bars) == window, (interval, len(bars))
        after = get_json(second, "/redis.php?code=btcusdt&time=1d&rows=300")
        assert after[1:] == before[1:]  # what was stored is never drawn again
    finally:
        second.stop()
